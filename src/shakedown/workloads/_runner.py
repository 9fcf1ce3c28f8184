"""The runner: N worker threads, each with its own client, draw operations from a generator
and record them into a ``History`` (process = worker number) until the generator is
exhausted, the time limit passes or ``stop()`` is called. It runs in the background
(``start``/``stop``/``join``) so a test can inject faults meanwhile, and always closes its
clients."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from shakedown.history import History, Op
from shakedown.workloads._client import Classifier, Client, Completion, default_classifier
from shakedown.workloads._generators import Generator, Operation, Phases
from shakedown.workloads._recorder import record, record_failure

ClientFactory = Callable[[int], Client]


@dataclass(frozen=True)
class RunSummary:
    """What a run did: completions by type and by operation, why it stopped, and errors that
    are not operation outcomes (a client that failed to close, a generator that raised)."""

    operations: int
    completions: dict[str, int]
    by_f: dict[str, dict[str, int]]
    duration_s: float
    stop_reason: str  # "exhausted" | "time limit" | "stopped" | "error"
    errors: tuple[str, ...] = ()
    history: History = field(default_factory=History, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "operations": self.operations,
            "completions": dict(self.completions),
            "by_f": {f: dict(c) for f, c in self.by_f.items()},
            "duration_s": self.duration_s,
            "stop_reason": self.stop_reason,
            "errors": list(self.errors),
        }


class _SharedSource:
    """Serializes draws from one generator across worker threads."""

    def __init__(self, generator: Generator) -> None:
        self._lock = threading.Lock()
        self._iterator: Iterator[Operation] = iter(generator)
        self.error: str | None = None

    def draw(self) -> Operation | None:
        with self._lock:
            if self.error is not None:
                return None
            try:
                operation = next(self._iterator, None)
            except Exception as exc:
                self.error = f"generator raised {type(exc).__name__}: {exc}"
                return None
            if operation is not None and not isinstance(operation, Operation):
                self.error = f"generator yielded {operation!r}, not an Operation"
                return None
            return operation


class _Worker:
    """One worker's client, created and opened lazily, so a client that cannot open yet (the
    service is down) is retried on the next operation instead of ending the worker."""

    def __init__(self, process: int, factory: ClientFactory) -> None:
        self.process = process
        self._factory = factory
        self._client: Client | None = None
        self._opened = False

    def client(self) -> Client:
        if self._client is None:
            self._client = self._factory(self.process)
        if not self._opened:
            self._client.open()
            self._opened = True
        return self._client

    def close(self) -> str | None:
        if self._client is None:
            return None
        try:
            self._client.close()
        except Exception as exc:
            return f"worker {self.process}: closing the client raised {type(exc).__name__}: {exc}"
        finally:
            self._client, self._opened = None, False
        return None


class Runner:
    """Run a workload: ``Runner(make_client, generator, concurrency=4, time_limit=5).run()``,
    or ``start()`` it, inject faults, then ``stop()`` and ``join()``.

    ``make_client(worker_number)`` builds each worker's client; ``generator`` is an iterable of
    ``Operation`` or ``phases(...)``. A client that fails to open records the drawn operation
    as ``fail`` (nothing was sent) and the worker waits ``open_retry_s`` before the next one.
    """

    def __init__(
        self,
        make_client: ClientFactory,
        generator: Generator | Phases,
        *,
        concurrency: int = 1,
        history: History | None = None,
        time_limit: float | None = None,
        classifier: Classifier = default_classifier,
        open_retry_s: float = 0.1,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        self.history = history if history is not None else History()
        self.concurrency = concurrency
        self._make_client = make_client
        self._steps = generator.steps if isinstance(generator, Phases) else (generator,)
        self._time_limit = time_limit
        self._classifier = classifier
        self._open_retry_s = open_retry_s
        self._stop = threading.Event()
        self._deadline = float("inf")
        self._errors: list[str] = []
        self._stop_reason = "exhausted"
        self._controller: threading.Thread | None = None
        self._summary: RunSummary | None = None
        self._first_index = 0

    def __enter__(self) -> Runner:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
        self.join()

    @property
    def running(self) -> bool:
        return self._controller is not None and self._controller.is_alive()

    def start(self) -> Runner:
        if self._controller is not None:
            raise RuntimeError("this runner was already started; make a new Runner")
        self._controller = threading.Thread(target=self._control, name="shakedown-runner")
        self._controller.daemon = True
        self._controller.start()
        return self

    def stop(self) -> None:
        """Ask the workers to stop: no new operation starts; in-flight ones complete."""
        if not self._stop.is_set():
            self._stop_reason = "stopped"
            self._stop.set()

    def join(self, timeout: float | None = None) -> RunSummary:
        """Wait for the run to end and return its summary."""
        if self._controller is None:
            raise RuntimeError("the runner was not started")
        self._controller.join(timeout)
        if self._controller.is_alive() or self._summary is None:
            raise TimeoutError(
                f"workload still running after {timeout}s: an operation is stuck in a client "
                "(give the client a timeout) or the generator never ends (call stop())"
            )
        return self._summary

    def run(self) -> RunSummary:
        return self.start().join()

    def _control(self) -> None:
        started = time.monotonic()
        self._first_index = len(self.history)
        if self._time_limit is not None:
            self._deadline = started + self._time_limit
        workers = [_Worker(n, self._make_client) for n in range(self.concurrency)]
        try:
            for step in self._steps:
                if self._should_stop():
                    break
                self._run_phase(workers, _SharedSource(step))
        finally:
            self._errors += [e for w in workers if (e := w.close())]
            self._summary = self._summarize(time.monotonic() - started)

    def _run_phase(self, workers: list[_Worker], source: _SharedSource) -> None:
        threads = [
            threading.Thread(target=self._work, args=(w, source), name=f"shakedown-worker-{n}")
            for n, w in enumerate(workers)
        ]
        for thread in threads:
            thread.daemon = True
            thread.start()
        for thread in threads:
            thread.join()
        if source.error is not None:
            self._fail(source.error)

    def _should_stop(self) -> bool:
        if not self._stop.is_set() and time.monotonic() >= self._deadline:
            self._stop_reason = "time limit"
            self._stop.set()
        return self._stop.is_set()

    def _fail(self, error: str) -> None:
        self._errors.append(error)
        self._stop_reason = "error"
        self._stop.set()

    def _work(self, worker: _Worker, source: _SharedSource) -> None:
        try:
            while not self._should_stop():
                operation = source.draw()
                if operation is None or self._should_stop():
                    return
                self._perform(worker, operation)
        except Exception as exc:  # a bug in the runner or recorder, not an operation outcome
            self._fail(f"worker {worker.process} crashed: {type(exc).__name__}: {exc}")

    def _perform(self, worker: _Worker, operation: Operation) -> Op:
        try:
            client = worker.client()
        except Exception as exc:
            self.history.append(worker.process, "invoke", operation.f, operation.value)
            failed = RuntimeError(f"could not open the client: {type(exc).__name__}: {exc}")
            completion = record_failure(self.history, worker.process, operation, failed, _unsent)
            self._stop.wait(self._open_retry_s)
            return completion
        return record(self.history, worker.process, client, operation, self._classifier)

    def _summarize(self, duration_s: float) -> RunSummary:
        ops = self.history.ops()[self._first_index :]
        mine = [op for op in ops if isinstance(op.process, int)]
        done = [op for op in mine if op.type != "invoke"]
        by_f: dict[str, Counter[str]] = {}
        for op in done:
            by_f.setdefault(op.f, Counter())[op.type] += 1
        return RunSummary(
            operations=len(done),
            completions=dict(Counter(op.type for op in done)),
            by_f={f: dict(c) for f, c in by_f.items()},
            duration_s=duration_s,
            stop_reason=self._stop_reason,
            errors=tuple(self._errors),
            history=self.history,
        )


def _unsent(f: str, error: BaseException) -> Completion:
    """An operation whose client could not even open was never sent: a definite failure."""
    return "fail"
