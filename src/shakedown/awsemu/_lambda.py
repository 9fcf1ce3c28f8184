"""Lambda, natively: ``Invoke`` runs the function's handler in a worker process of its own
(``_lambda_worker``) instead of the Docker container moto would need.

The function itself (code, handler, runtime, environment, timeout, memory, reserved
concurrency) is moto's: created by ``CreateFunction`` or from the topology, read from moto's
Lambda backend at each invocation. This module keeps the execution environments: warm workers
are reused, a new one is cold-started when all are busy, up to the reserved concurrency (then
``TooManyRequestsException``); a worker that overruns the timeout is killed. Each invocation
writes ``START``/``END``/``REPORT`` lines, with what the handler printed between them, to the
function's log file."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import math
import os
import signal
import socket
import sys
import threading
import time
import uuid
import zipfile
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._children import child_env, kill_child, max_rss_mb, start_child
from ._events import Events
from ._settings import ComputeSettings

WORKER = str(Path(__file__).with_name("_lambda_worker.py"))
INIT_TIMEOUT = 10.0  # seconds: Lambda's limit on a function's init phase


class Throttled(Exception):
    """No concurrency left for the function."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class NotRunnable(Exception):
    """A function this emulator cannot run natively (not a Python zip function)."""


@dataclass(frozen=True)
class Function:
    """What running one function needs, read from moto's model."""

    name: str
    arn: str
    version: str
    runtime: str
    handler: str
    code_dir: Path
    code_sha: str
    env: dict[str, str]
    timeout: float
    memory: int
    reserved: int | None

    @property
    def key(self) -> tuple[str, str, str]:
        """Workers are shared by invocations of the same code and configuration only."""
        config = json.dumps([self.handler, self.env, self.timeout, self.memory, self.runtime],
                            sort_keys=True)
        return (self.name, self.code_sha, config)


@dataclass
class Outcome:
    """One invocation's result: the payload (the handler's JSON or the error's) and
    ``error`` (None, or the error type, for ``X-Amz-Function-Error: Unhandled``)."""

    request_id: str
    payload: bytes
    error: str | None = None
    log: str = ""
    cold: bool = False
    duration_ms: float = 0.0


class FunctionLog:
    """The log file of one function, shared by its workers: whole lines under one lock."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file = path.open("a", encoding="utf-8", errors="replace")
        self._lock = threading.Lock()

    def write(self, text: str) -> None:
        with self._lock:
            self._file.write(text if text.endswith("\n") else text + "\n")
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            self._file.close()


class Worker:
    """One execution environment: a worker process, its channel and its output."""

    def __init__(self, function: Function, settings: ComputeSettings, log: FunctionLog) -> None:
        self.function = function
        self.stream = (time.strftime("%Y/%m/%d/", time.gmtime())
                       + f"[{function.version}]{uuid.uuid4().hex}")
        self.started = time.time()
        self.invocations = 0
        self.init_ms = 0.0
        self.busy = False
        ours, theirs = socket.socketpair()
        env = child_env({**_runtime_env(function, settings, self.stream),
                         "_SHAKEDOWN_LAMBDA_FD": str(theirs.fileno())})
        try:
            with log.path.open("ab") as output:
                self.popen = start_child([sys.executable, "-P", WORKER], env=env,
                                         cwd=function.code_dir, stdout=output,
                                         pass_fds=[theirs.fileno()])
        finally:
            theirs.close()
        self.channel = ours
        self._reader = ours.makefile("rb")

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def receive(self, timeout: float) -> dict[str, Any] | None:
        """The next message from the worker; None when it died; TimeoutError when late."""
        self.channel.settimeout(max(timeout, 0.001))
        line = self._reader.readline()
        if not line:
            return None
        message: dict[str, Any] = json.loads(line)
        return message

    def send(self, message: dict[str, Any]) -> None:
        self.channel.sendall(json.dumps(message).encode() + b"\n")

    def kill(self) -> None:
        kill_child(self.popen)
        self.close()

    def close(self) -> None:
        for closable in (self._reader, self.channel):
            with contextlib.suppress(OSError):
                closable.close()

    def describe(self) -> dict[str, Any]:
        return {"function": self.function.name, "pid": self.pid, "pgid": self.pid,
                "busy": self.busy, "invocations": self.invocations,
                "log_stream": self.stream, "started": self.started, "alive": self.alive()}


def _runtime_env(function: Function, settings: ComputeSettings, stream: str) -> dict[str, str]:
    """The variables Lambda sets in an execution environment, the function's own, and the
    emulator's address so that the handler's SDK calls come back here."""
    return {
        **function.env,
        "AWS_LAMBDA_FUNCTION_NAME": function.name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory),
        "AWS_LAMBDA_FUNCTION_VERSION": function.version,
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function.name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": stream,
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{function.runtime}",
        "AWS_REGION": settings.region, "AWS_DEFAULT_REGION": settings.region,
        "AWS_ACCESS_KEY_ID": settings.access_key_id,
        "AWS_SECRET_ACCESS_KEY": settings.secret_access_key,
        "AWS_SESSION_TOKEN": "shakedown-session",
        "AWS_ENDPOINT_URL": settings.endpoint,
        "LAMBDA_TASK_ROOT": str(function.code_dir),
        "_HANDLER": function.handler,
        "TZ": ":UTC",
        "PYTHONDONTWRITEBYTECODE": "1",
    }


@dataclass
class Pool:
    """The workers of one function configuration: idle ones, and how many are in use."""

    idle: deque[Worker] = field(default_factory=deque)
    every: list[Worker] = field(default_factory=list)
    active: int = 0


class LambdaRuntime:
    """Runs invocations in pools of workers, one pool per function configuration."""

    def __init__(self, settings: ComputeSettings, events: Events) -> None:
        self.settings = settings
        self.events = events
        self._pools: dict[tuple[str, str, str], Pool] = {}
        self._logs: dict[str, FunctionLog] = {}
        self._lock = threading.Lock()
        self._extract_lock = threading.Lock()
        self._active = 0  # invocations of functions without reserved concurrency
        self._async: set[threading.Thread] = set()
        self._generation = 0  # bumped by reset: queued async invocations of before are dropped
        self._functions: dict[str, tuple[tuple[Any, ...], Function]] = {}

    # -- functions, from moto's model ----------------------------------------------------
    def function(self, model: Any) -> Function:
        """A runnable description of moto's ``LambdaFunction``; NotRunnable when it is not
        a Python zip function. Kept per state of the model: a warm invoke does not rebuild
        it (paths, environment) each time."""
        state = (id(model), model.code_sha_256, model.version, model.reserved_concurrency,
                 model.run_time, model.handler, model.timeout, model.memory_size,
                 getattr(model, "package_type", "Zip"),
                 tuple(sorted((model.environment_vars or {}).items())))
        cached = self._functions.get(model.function_arn)
        if cached is not None and cached[0] == state:
            return cached[1]
        function = self._describe(model)
        self._functions[model.function_arn] = (state, function)
        return function

    def _describe(self, model: Any) -> Function:
        runtime = str(model.run_time or "")
        if getattr(model, "package_type", "Zip") != "Zip":
            raise NotRunnable(f"function {model.function_name} is a container image function: "
                              "shakedown runs zip functions with a python3.x runtime")
        if not runtime.startswith("python3"):
            raise NotRunnable(f"runtime {runtime or '(none)'} of function "
                              f"{model.function_name}: shakedown runs python3.x functions "
                              "natively, with the emulator's Python "
                              f"{sys.version_info.major}.{sys.version_info.minor}")
        sha = str(model.code_sha_256)
        declared = self.settings.functions.get(model.function_name)
        if declared is not None and declared.get("code_sha") == sha:
            code_dir = Path(declared["code_dir"])
        else:
            code_dir = self._extract(model.function_name, sha, model.code_bytes)
        reserved = model.reserved_concurrency
        return Function(
            name=model.function_name, arn=model.function_arn, version=str(model.version),
            runtime=runtime, handler=str(model.handler or ""), code_dir=code_dir, code_sha=sha,
            env={str(k): str(v) for k, v in (model.environment_vars or {}).items()},
            timeout=float(model.timeout or 3), memory=int(model.memory_size or 128),
            reserved=None if reserved in (None, "") else int(reserved))

    def _extract(self, name: str, sha: str, code: bytes) -> Path:
        """Unpack a function's zip once per code version."""
        digest = base64.b32encode(base64.b64decode(sha + "=" * (-len(sha) % 4))).decode()
        target = self.settings.data_dir / "lambda" / f"{name}-{digest[:16].lower()}"
        with self._extract_lock:
            if not target.exists():
                partial = target.with_suffix(".partial")
                partial.mkdir(parents=True, exist_ok=True)
                with zipfile.ZipFile(io.BytesIO(code)) as archive:
                    archive.extractall(partial)
                os.replace(partial, target)
        return target

    # -- invocations -------------------------------------------------------------------
    def invoke(self, function: Function, payload: bytes, client_context: Any = None,
               invocation_type: str = "RequestResponse") -> Outcome:
        """Run one invocation and wait for it; Throttled when no concurrency is left."""
        request_id = str(uuid.uuid4())
        try:
            pool, worker = self._acquire(function)
        except Throttled as exc:
            self.events.emit("lambda.invoke", function=function.name, request_id=request_id,
                             invocation_type=invocation_type, outcome="throttled",
                             error=exc.reason)
            raise
        log = self._log(function.name)
        cold = worker is None
        keep = False
        outcome: Outcome | None = None
        try:
            init_ms = 0.0
            if worker is None:
                worker, init_error, init_ms = self._cold_start(function, log, pool)
                if init_error is not None:
                    outcome = self._failed_init(function, log, request_id, init_error, init_ms)
                    return outcome
            outcome, keep = self._run(function, worker, log, request_id, payload,
                                      client_context, init_ms)
            outcome.cold = cold
            return outcome
        finally:
            self._release(function, pool, worker, keep)
            self.events.emit(
                "lambda.invoke", function=function.name, request_id=request_id,
                invocation_type=invocation_type, cold=cold,
                pid=worker.pid if worker is not None else None,
                duration_ms=round(outcome.duration_ms, 3) if outcome else None,
                outcome="ok" if outcome is not None and outcome.error is None else "error",
                error=outcome.error if outcome is not None else "emulator error")

    def _acquire(self, function: Function) -> tuple[Pool, Worker | None]:
        with self._lock:
            pool = self._pools.setdefault(function.key, Pool())
            in_use = sum(p.active for k, p in self._pools.items() if k[0] == function.name)
            if function.reserved is not None:
                if in_use >= function.reserved:
                    raise Throttled("ReservedFunctionConcurrentInvocationLimitExceeded")
            elif self._active >= self.settings.account_concurrency:
                raise Throttled("ConcurrentInvocationLimitExceeded")
            else:
                self._active += 1
            pool.active += 1
            while pool.idle:
                worker = pool.idle.popleft()
                if worker.alive():
                    worker.busy = True
                    return pool, worker
                pool.every.remove(worker)
                worker.close()
            return pool, None

    def _release(self, function: Function, pool: Pool, worker: Worker | None,
                 keep: bool) -> None:
        with self._lock:
            pool.active -= 1
            if function.reserved is None:
                self._active -= 1
            if worker is None:
                return
            worker.busy = False
            if keep and worker.alive() and pool is self._pools.get(function.key):
                pool.idle.append(worker)
                return
            if worker in pool.every:
                pool.every.remove(worker)
        if worker.alive():
            worker.kill()
        else:
            worker.close()

    def _cold_start(self, function: Function, log: FunctionLog, pool: Pool
                    ) -> tuple[Worker, dict[str, Any] | None, float]:
        began = time.perf_counter()
        worker = Worker(function, self.settings, log)
        worker.busy = True
        with self._lock:
            pool.every.append(worker)
        try:
            message = worker.receive(INIT_TIMEOUT)
        except TimeoutError:
            message = {"type": "init_error", "error": {
                "errorType": "Sandbox.Timedout", "stackTrace": [],
                "errorMessage": f"Error: init phase took more than {INIT_TIMEOUT:.2f} seconds"}}
        init_ms = (time.perf_counter() - began) * 1000
        if message is None:
            code = worker.popen.wait(5)
            message = {"type": "init_error", "error": {
                "errorType": "Runtime.ExitError", "stackTrace": [],
                "errorMessage": f"Runtime exited with error: {_exit_reason(code)}"}}
        worker.init_ms = init_ms
        if message.get("type") == "ready":
            return worker, None, init_ms
        return worker, dict(message.get("error") or {}), init_ms

    def _failed_init(self, function: Function, log: FunctionLog, request_id: str,
                     error: dict[str, Any], init_ms: float) -> Outcome:
        error_type = str(error.get("errorType", "Runtime.Unknown"))
        error = {**error, "requestId": request_id}
        log.write(f"INIT_REPORT Init Duration: {init_ms:.2f} ms\tPhase: init\tStatus: error"
                  f"\tError Type: {error_type}")
        lines = [f"START RequestId: {request_id} Version: {function.version}",
                 f"END RequestId: {request_id}",
                 f"REPORT RequestId: {request_id}\tDuration: {init_ms:.2f} ms\t"
                 f"Billed Duration: {math.ceil(init_ms)} ms\tMemory Size: {function.memory} MB"
                 f"\tMax Memory Used: 0 MB\tStatus: error\tError Type: {error_type}"]
        log.write("\n".join(lines))
        return Outcome(request_id, json.dumps(error).encode(), error=error_type,
                       log="\n".join(lines) + "\n", cold=True, duration_ms=init_ms)

    def _run(self, function: Function, worker: Worker, log: FunctionLog, request_id: str,
             payload: bytes, client_context: Any, init_ms: float) -> tuple[Outcome, bool]:
        """Send one invocation to a ready worker; (outcome, keep the worker)."""
        start = f"START RequestId: {request_id} Version: {function.version}"
        log.write(start)
        began = time.perf_counter()
        deadline = time.time() + function.timeout
        worker.invocations += 1
        answer: dict[str, Any] | None
        status = ""
        try:
            worker.send({"id": request_id, "event": payload.decode("utf-8"),
                         "deadline_ms": int(deadline * 1000), "arn": function.arn,
                         "client_context": client_context})
            answer = worker.receive(function.timeout)
        except TimeoutError:
            answer, status = None, "timeout"
        except OSError:
            answer = None
        duration = (time.perf_counter() - began) * 1000
        reported = (answer or {}).get("max_rss_kb")
        memory = max(1, int(reported) // 1024) if reported else max_rss_mb(worker.pid)
        if status == "timeout":
            worker.kill()
        printed = str((answer or {}).get("log") or "")
        if printed and not printed.endswith("\n"):
            printed += "\n"
        if answer is None and status != "timeout":
            worker.kill()
            status = "error"
            error = {"errorType": "Runtime.ExitError",
                     "errorMessage": f"RequestId: {request_id} Error: Runtime exited with "
                                     f"error: {_exit_reason(worker.popen.returncode)}"}
        elif status == "timeout":
            error = {"errorType": "Sandbox.Timedout",
                     "errorMessage": f"RequestId: {request_id} Error: Task timed out after "
                                     f"{function.timeout:.2f} seconds"}
            now = time.time()
            line = (time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
                    + f".{int(now * 1000) % 1000:03d}Z {request_id} Task timed out after "
                    f"{function.timeout:.2f} seconds")
            log.write(line)
            printed += line + "\n"
        elif answer is not None and answer.get("ok"):
            error = None
        else:
            error = dict((answer or {}).get("error") or {})
        report = (f"REPORT RequestId: {request_id}\tDuration: {duration:.2f} ms\t"
                  f"Billed Duration: {max(1, math.ceil(duration))} ms\t"
                  f"Memory Size: {function.memory} MB\tMax Memory Used: {memory} MB")
        if init_ms:
            report += f"\tInit Duration: {init_ms:.2f} ms"
        if status:
            report += f"\tStatus: {status}"
        end = f"END RequestId: {request_id}"
        log.write(f"{end}\n{report}")
        text = f"{start}\n{printed}{end}\n{report}\n"
        if error is None and answer is not None:
            return Outcome(request_id, str(answer["payload"]).encode(), log=text,
                           duration_ms=duration), True
        error_type = str(error.get("errorType", "Unhandled")) if error else "Unhandled"
        return Outcome(request_id, json.dumps(error).encode(), error=error_type, log=text,
                       duration_ms=duration), answer is not None and worker.alive()

    def invoke_async(self, function: Function, payload: bytes) -> None:
        """``InvocationType=Event``: queued, run when concurrency allows (Lambda's internal
        queue), retried while throttled; the caller does not wait."""
        generation = self._generation

        def run() -> None:
            delay = 0.02
            try:
                while generation == self._generation:
                    try:
                        self.invoke(function, payload, invocation_type="Event")
                        return
                    except Throttled:
                        time.sleep(delay)
                        delay = min(delay * 2, 1.0)
            finally:
                with self._lock:
                    self._async.discard(thread)

        thread = threading.Thread(target=run, daemon=True, name="lambda-event")
        with self._lock:
            self._async.add(thread)
        thread.start()

    # -- logs, state, stop -------------------------------------------------------------
    def _log(self, name: str) -> FunctionLog:
        with self._lock:
            if name not in self._logs:
                self._logs[name] = FunctionLog(self.settings.log_path("lambda", name))
            return self._logs[name]

    def workers(self) -> list[dict[str, Any]]:
        with self._lock:
            return [w.describe() for p in self._pools.values() for w in p.every]

    def reset(self, keep_declared: bool = True) -> None:
        """moto's reset forgets every function: stop their workers, except the idle workers
        of declared functions, which come back identical (same code, same configuration)
        when the declared resources are created again; warm, as Lambda keeps them."""
        with self._lock:
            self._generation += 1
            stopped: list[Worker] = []
            for key, pool in list(self._pools.items()):
                declared = self.settings.functions.get(key[0], {}).get("code_sha") == key[1]
                if keep_declared and declared and not pool.active:
                    continue
                stopped.extend(pool.every)
                del self._pools[key]
        for worker in stopped:
            worker.kill()

    def shutdown(self) -> None:
        self.reset(keep_declared=False)
        with self._lock:
            logs = list(self._logs.values())
            self._logs.clear()
        for log in logs:
            log.close()


def _exit_reason(code: int | None) -> str:
    """How Lambda words a runtime's end: ``signal: killed``, ``exit status 1``."""
    if code is None or code >= 0:
        return f"exit status {code}"
    try:
        name = signal.Signals(-code).name.removeprefix("SIG").lower()
    except ValueError:
        name = str(-code)
    return f"signal: {'killed' if name == 'kill' else name}"
