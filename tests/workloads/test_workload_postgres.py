"""The PostgreSQL workloads against a real server, checked by the matching checker; and the
same workloads while the server is killed or frozen: the run ends in bounded time and the
history holds fail and info entries, never a hang."""

import contextlib
import signal
import socket
import time
from collections.abc import Callable

import psutil
import pytest

from bounds import hang_bound
from shakedown.checkers import bank, set_full
from shakedown.history import History
from shakedown.services import PostgresService
from shakedown.waits import eventually
from shakedown.workloads import DefiniteFailure, IndeterminateFailure, Runner
from shakedown.workloads.postgres import WORKLOADS, AppendClient, PgOptions, RegisterClient
from shakedown.workloads.postgres import append as append_workload
from shakedown.workloads.postgres import bank as bank_workload
from shakedown.workloads.postgres import register as register_workload

StartPostgres = Callable[..., PostgresService]  # the start_postgres fixture


def test_append_workload_is_a_valid_set(pg_url: str) -> None:
    append_workload.setup(pg_url)
    summary = Runner(
        WORKLOADS["append"].clients(pg_url),
        append_workload.generator(rate=400, seconds=0.8),
        concurrency=4,
    ).run()
    assert summary.completions == {"ok": summary.operations} and summary.operations > 100
    result = set_full(summary.history, append_workload.final_read(pg_url))
    assert result.validity == "valid", result.explanation
    assert result.counts["read"] == summary.operations


def test_bank_workload_keeps_the_total(pg_url: str) -> None:
    total = bank_workload.setup(pg_url, accounts=4, balance=20)
    summary = Runner(
        WORKLOADS["bank"].clients(pg_url),
        bank_workload.generator(rate=400, seconds=0.8, seed=3, accounts=4, max_amount=15),
        concurrency=4,
    ).run()
    assert summary.by_f["read"]["ok"] > 10
    assert summary.by_f["transfer"]["ok"] > 10
    assert "info" not in summary.completions
    result = bank(summary.history, bank_workload.final_read(pg_url), total)
    assert result.validity == "valid", result.explanation
    assert result.counts["reads"] == summary.by_f["read"]["ok"]


def test_bank_transfer_without_funds_fails_without_effect(pg_url: str) -> None:
    bank_workload.setup(pg_url, accounts=2, balance=5)
    client = bank_workload.BankClient(pg_url)
    client.open()
    try:
        with pytest.raises(DefiniteFailure, match="cannot move 6"):
            client.invoke("transfer", {"from": 0, "to": 1, "amount": 6})
        assert client.invoke("read", None) == ("ok", {"0": 5, "1": 5})
    finally:
        client.close()


def test_register_workload_reads_what_was_written(pg_url: str) -> None:
    register_workload.setup(pg_url)
    summary = Runner(
        WORKLOADS["register"].clients(pg_url),
        register_workload.generator(rate=400, seconds=0.5, seed=5),
        concurrency=3,
    ).run()
    assert set(summary.by_f) == {"read", "write", "cas"}
    assert summary.by_f["cas"].get("fail", 0) > 0  # a cas whose expected value was stale
    written = {op.value for op in summary.history.ops() if op.f == "write" and op.type == "ok"}
    written |= {op.value[1] for op in summary.history.ops() if op.f == "cas" and op.type == "ok"}
    reads = {op.value for op in summary.history.ops() if op.f == "read" and op.type == "ok"}
    assert reads <= written | {None}
    assert register_workload.final_read(pg_url) in written


def test_server_errors_are_definite_and_refused_connections_too(pg_url: str) -> None:
    append_workload.setup(pg_url)
    client = AppendClient(pg_url)
    client.open()
    try:
        assert client.invoke("add", 1) == ("ok", 1)
        with pytest.raises(DefiniteFailure, match="UniqueViolation"):
            client.invoke("add", 1)
        assert client.invoke("add", 2) == ("ok", 2)  # the connection is still usable
        with pytest.raises(DefiniteFailure, match="no operation 'pop'"):
            client.invoke("pop", None)
    finally:
        client.close()
    nowhere = RegisterClient(f"postgresql://postgres@127.0.0.1:{free_port()}/postgres")
    with pytest.raises(DefiniteFailure, match="cannot connect"):
        nowhere.invoke("write", 1)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def signal_server(db: PostgresService, signum: int) -> None:
    """Signal the postmaster and every backend. Each backend calls setsid(), so a signal to
    the postmaster's process group misses them; the postmaster is held stopped meanwhile so
    it cannot fork a backend that escapes the signal."""
    postmaster = psutil.Process(db.pids[0])
    postmaster.suspend()
    for process in (*postmaster.children(recursive=True), postmaster):
        with contextlib.suppress(psutil.NoSuchProcess):
            process.send_signal(signum)
    if signum not in (signal.SIGSTOP, signal.SIGKILL):
        postmaster.resume()


def run_with_fault(
    db: PostgresService, fault: Callable[[History], float], options: PgOptions
) -> tuple[History, set[int], float, float]:
    """Run the append workload against ``db``; once writes succeed apply ``fault`` (which
    undoes itself and returns the history time at which it did), then stop once writes
    succeed again. Returns the history, the final read, the time the fault was undone and how
    long the run took."""
    url = db.url
    append_workload.setup(url)
    runner = Runner(
        lambda n: AppendClient(url, options=options),
        append_workload.generator(rate=300),
        concurrency=4,
    )
    started = time.monotonic()
    runner.start()
    try:
        eventually(lambda: oks_after(runner.history, 0.0) >= 20, timeout=10,
                   description="writes succeed before the fault")
        undone = fault(runner.history)
        eventually(lambda: oks_after(runner.history, undone) >= 20, timeout=20,
                   description="writes succeed again after the fault")
    finally:
        runner.stop()
        summary = runner.join(timeout=hang_bound(15))
    return summary.history, append_workload.final_read(url), undone, \
        time.monotonic() - started


def oks_after(history: History, since: float) -> int:
    return sum(1 for op in history.ops() if op.type == "ok" and op.time > since)


def test_a_killed_server_yields_fail_and_info_and_no_hang(start_postgres: StartPostgres) -> None:
    # synchronous_commit is off by default for speed: a crash would lose acknowledged commits
    db = start_postgres(settings={"synchronous_commit": "on"})

    def kill_then_restart(history: History) -> float:
        killed = history.now()
        signal_server(db, signal.SIGKILL)
        # Connections are refused meanwhile: wait until the workload saw it.
        eventually(lambda: any(op.type == "fail" and op.time > killed for op in history.ops()),
                   timeout=10, description="a write refused while the server is down")
        db.start_again()
        return history.now()

    history, final, _, elapsed = run_with_fault(db, kill_then_restart, PgOptions())
    assert elapsed < hang_bound(60)
    types = [op.type for op in history.ops()]
    assert "info" in types and "fail" in types
    errors = {op.error.split(":")[0] for op in history.ops() if op.error}
    assert errors <= {"IndeterminateFailure", "DefiniteFailure", "RuntimeError"}
    result = set_full(history, final)
    assert result.validity == "valid", result.explanation
    assert result.counts["info"] == result.counts["recovered"] + result.counts["indeterminate"]


def test_a_frozen_server_times_out_instead_of_hanging(start_postgres: StartPostgres) -> None:
    db = start_postgres()
    options = PgOptions(op_timeout_s=0.5)

    def freeze(history: History) -> float:
        frozen = history.now()
        signal_server(db, signal.SIGSTOP)
        try:
            # Frozen until an operation gave up (after op_timeout_s) while the server slept.
            eventually(lambda: any(op.type == "info" and op.time > frozen
                                   for op in history.ops()),
                       timeout=10, description="an operation timed out on the frozen server")
            return history.now()
        finally:
            signal_server(db, signal.SIGCONT)

    # freeze() resumes the server only once an operation gave up: a client that waited for
    # the server instead would fail that wait.
    history, final, _, elapsed = run_with_fault(db, freeze, options)
    assert elapsed < hang_bound(60)
    timed_out = [(invoke, done) for invoke, done in history.completions()
                 if done is not None and done.type == "info"]
    assert timed_out
    for invoke, done in timed_out:
        assert "connection lost, outcome unknown" in (done.error or "")
        assert done.time - invoke.time >= 0.45, "gave up before op_timeout_s (0.5 s)"
    assert set_full(history, final).validity == "valid"


def test_indeterminate_is_what_a_lost_write_connection_raises(pg_url: str) -> None:
    append_workload.setup(pg_url)
    client = AppendClient(pg_url, options=PgOptions(op_timeout_s=0.3))
    client.open()
    try:
        with pytest.raises(IndeterminateFailure, match="connection lost"):
            client.session.run(lambda conn: conn.execute("SELECT pg_sleep(2)"), writes=True)
        assert client.invoke("add", 7) == ("ok", 7)  # reconnected
    finally:
        client.close()


def test_a_cancelled_write_is_unknown_and_a_cancelled_read_failed(pg_url: str) -> None:
    """A statement cancelled by its timeout (SQLSTATE 57014) may have committed elsewhere (a
    Citus worker answers the coordinator after its commit): a write's outcome is unknown, a
    read's is a failure; a constraint violation stays definite."""
    append_workload.setup(pg_url)
    client = AppendClient(pg_url, options=PgOptions(statement_timeout_s=0.2, op_timeout_s=5))
    client.open()
    try:
        with pytest.raises(IndeterminateFailure, match="QueryCanceled"):
            client.session.run(lambda conn: conn.execute("SELECT pg_sleep(2)"), writes=True)
        with pytest.raises(DefiniteFailure, match="QueryCanceled"):
            client.session.run(lambda conn: conn.execute("SELECT pg_sleep(2)"), writes=False)
        assert client.invoke("add", 3) == ("ok", 3)  # the connection stayed usable
        with pytest.raises(DefiniteFailure, match="UniqueViolation"):
            client.invoke("add", 3)
    finally:
        client.close()
