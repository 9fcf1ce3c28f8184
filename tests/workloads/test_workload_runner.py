"""The runner, recorder and generators with a small in-memory client (the framework under
test, not a stand-in for a service)."""

import threading
import time
from typing import Any

import pytest

from bounds import hang_bound
from shakedown.checkers import set_full
from shakedown.history import History
from shakedown.waits import eventually
from shakedown.workloads import (
    Completion,
    DefiniteFailure,
    IndeterminateFailure,
    Operation,
    Runner,
    limit,
    once,
    phases,
    rate_limit,
    repeat,
    sequential,
    time_limit,
)


def count(history: History, kind: str) -> int:
    return sum(1 for op in history.ops() if op.type == kind)


class MemorySet:
    """A set shared by the clients, with a switch to make adds fail in a chosen way."""

    def __init__(self) -> None:
        self.values: set[int] = set()
        self.lock = threading.Lock()
        self.failure: type[Exception] | None = None
        self.apply_before_failing = False
        self.opened = 0
        self.closed = 0


class MemoryClient:
    def __init__(self, store: MemorySet) -> None:
        self.store = store

    def open(self) -> None:
        with self.store.lock:
            self.store.opened += 1

    def close(self) -> None:
        with self.store.lock:
            self.store.closed += 1

    def invoke(self, f: str, value: Any) -> tuple[Completion, Any]:
        with self.store.lock:
            if f == "read":
                return "ok", sorted(self.store.values)
            if self.store.failure is not None:
                if self.store.apply_before_failing:
                    self.store.values.add(value)
                raise self.store.failure(f"add {value} failed")
            self.store.values.add(value)
            return "ok", value


def test_records_invoke_and_completion_pairs_per_worker() -> None:
    store = MemorySet()
    summary = Runner(
        lambda n: MemoryClient(store), limit(sequential("add"), 40), concurrency=4
    ).run()
    assert summary.stop_reason == "exhausted"
    assert summary.operations == 40
    assert summary.completions == {"ok": 40}
    pairs = summary.history.completions()
    assert len(pairs) == 40
    assert all(done is not None and done.process == inv.process for inv, done in pairs)
    assert {inv.process for inv, _ in pairs} <= {0, 1, 2, 3}
    assert 1 <= store.opened == store.closed <= 4  # clients open on their first operation
    assert set_full(summary.history, store.values).validity == "valid"


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        (DefiniteFailure, "fail"),
        (IndeterminateFailure, "info"),
        (RuntimeError, "info"),
        (ConnectionRefusedError, "fail"),
    ],
)
def test_exception_types_are_classified(failure: type[Exception], expected: str) -> None:
    store = MemorySet()
    store.failure = failure
    summary = Runner(lambda n: MemoryClient(store), limit(sequential("add"), 3)).run()
    assert summary.completions == {expected: 3}
    errors = [op.error for op in summary.history.ops() if op.type == expected]
    assert errors[0] == f"{failure.__name__}: add 0 failed"


def test_a_classifier_hook_decides_for_other_exceptions() -> None:
    store = MemorySet()
    store.failure = KeyError
    summary = Runner(
        lambda n: MemoryClient(store), limit(sequential("add"), 2), classifier=lambda f, exc: "fail"
    ).run()
    assert summary.completions == {"fail": 2}


def test_indeterminate_adds_that_took_effect_are_recovered() -> None:
    store = MemorySet()
    store.failure, store.apply_before_failing = IndeterminateFailure, True
    summary = Runner(lambda n: MemoryClient(store), limit(sequential("add"), 5)).run()
    result = set_full(summary.history, store.values)
    assert result.validity == "valid"
    assert result.counts["recovered"] == 5


def test_stops_at_the_time_limit() -> None:
    store = MemorySet()
    started = time.monotonic()
    summary = Runner(
        lambda n: MemoryClient(store),
        rate_limit(sequential("add"), 200),
        concurrency=2,
        time_limit=0.3,
    ).run()
    assert 0.25 < time.monotonic() - started < hang_bound(5.0)
    assert summary.stop_reason == "time limit"
    assert summary.operations > 10
    assert store.opened == store.closed == 2


def test_runs_in_the_background_until_stopped() -> None:
    store = MemorySet()
    with Runner(
        lambda n: MemoryClient(store), rate_limit(sequential("add"), 500), concurrency=3
    ) as runner:
        eventually(lambda: count(runner.history, "ok") >= 10, description="adds succeed")
        assert runner.running
        store.failure = IndeterminateFailure  # a fault injected meanwhile
        eventually(lambda: count(runner.history, "info") >= 3, description="adds fail")
    summary = runner.join()
    assert not runner.running
    assert summary.stop_reason == "stopped"
    assert summary.completions["ok"] > 0 and summary.completions["info"] > 0
    assert store.opened == store.closed == 3


def test_phases_finish_every_worker_before_the_next_phase() -> None:
    store = MemorySet()
    summary = Runner(
        lambda n: MemoryClient(store),
        phases(time_limit(rate_limit(sequential("add"), 300), 0.2), once("read")),
        concurrency=4,
    ).run()
    ops = summary.history.ops()
    last = ops[-1]
    assert last.f == "read" and last.type == "ok"
    assert all(op.f == "add" for op in ops[:-2])
    assert set(last.value) == store.values  # the read saw every add: they had all finished
    assert summary.by_f["read"] == {"ok": 1}


def test_a_client_that_cannot_open_records_failures_and_retries() -> None:
    store = MemorySet()
    attempts = {"n": 0}

    class Flaky(MemoryClient):
        def open(self) -> None:
            attempts["n"] += 1
            if attempts["n"] <= 2:
                raise ConnectionError("refused")
            super().open()

    summary = Runner(lambda n: Flaky(store), limit(sequential("add"), 5), open_retry_s=0.01).run()
    assert summary.completions == {"fail": 2, "ok": 3}
    first = summary.history.ops()[1]
    assert first.error == "RuntimeError: could not open the client: ConnectionError: refused"
    assert store.opened == store.closed == 1


def test_clients_are_closed_when_the_generator_breaks() -> None:
    store = MemorySet()

    def broken() -> Any:
        yield Operation("add", 1)
        raise ValueError("bad generator")

    summary = Runner(lambda n: MemoryClient(store), broken(), concurrency=2).run()
    assert summary.stop_reason == "error"
    assert "generator raised ValueError: bad generator" in summary.errors[0]
    assert store.closed == store.opened


def test_a_client_that_fails_to_close_is_reported() -> None:
    class BadClose(MemoryClient):
        def close(self) -> None:
            raise OSError("close failed")

    summary = Runner(lambda n: BadClose(MemorySet()), once("read")).run()
    assert summary.errors == ("worker 0: closing the client raised OSError: close failed",)


def test_join_times_out_on_a_stuck_client_and_the_history_shows_it() -> None:
    release = threading.Event()

    class Stuck(MemoryClient):
        def invoke(self, f: str, value: Any) -> tuple[Completion, Any]:
            release.wait(5)
            return "ok", value

    runner = Runner(lambda n: Stuck(MemorySet()), repeat("read")).start()
    eventually(runner.history.ops, description="the first operation is invoked")
    runner.stop()
    try:
        with pytest.raises(TimeoutError, match="still running"):
            runner.join(timeout=0.2)
        assert [op.type for op in runner.history.ops()] == ["invoke"]
    finally:
        release.set()
    assert runner.join(timeout=5).completions == {"ok": 1}


def test_records_into_a_given_history_and_its_file(tmp_path: Any) -> None:
    history = History(tmp_path / "history.jsonl")
    history.append("nemesis", "info", "start", None)
    summary = Runner(
        lambda n: MemoryClient(MemorySet()), limit(sequential("add"), 3), history=history
    ).run()
    history.close()
    assert summary.operations == 3
    assert len(History.load(tmp_path / "history.jsonl")) == 7


def test_rejects_a_zero_concurrency() -> None:
    with pytest.raises(ValueError, match="concurrency"):
        Runner(lambda n: MemoryClient(MemorySet()), once("read"), concurrency=0)


def test_a_runner_starts_once() -> None:
    runner = Runner(lambda n: MemoryClient(MemorySet()), once("read"))
    runner.run()
    with pytest.raises(RuntimeError, match="already started"):
        runner.start()
