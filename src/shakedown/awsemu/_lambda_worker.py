"""A Lambda execution environment: ``python -P _lambda_worker.py`` imports one function's handler
from its code directory, then runs invocations one at a time, received from the emulator over a
socket (one JSON line each way). Run as a script, standard library only: a worker imports what
the handler imports and nothing of shakedown or moto.

What it does as AWS's Python runtime does: the handler is ``module.function`` found on the code
directory; a context object carries the request id, the deadline, the function's name, ARN,
memory and log group/stream; the root logger writes ``[LEVEL] time request-id message``; an
error is answered as ``errorMessage``/``errorType``/``requestId``/``stackTrace``, an import
failure as ``Runtime.ImportModuleError`` and its kin. Output goes to stdout, the function's log
file (appended to by the emulator too: it writes START before sending an invocation and
END/REPORT once answered, so the lines stay in order); what the invocation printed through
``sys.stdout``/``sys.stderr`` also travels back with the answer (``X-Amz-Log-Result``)."""

from __future__ import annotations

import importlib
import json
import logging
import os
import resource
import socket
import sys
import time
import traceback
from collections.abc import Callable
from types import TracebackType
from typing import Any

CAPTURE_LIMIT = 64 * 1024
_request_id = "-"


class Tee:
    """A text stream that writes through and keeps what the running invocation wrote."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self.captured: list[str] = []
        self.size = 0

    def write(self, text: str) -> int:
        if self.size < CAPTURE_LIMIT:
            self.captured.append(text)
            self.size += len(text)
        return int(self._stream.write(text))

    def take(self) -> str:
        text = "".join(self.captured)
        self.captured, self.size = [], 0
        return text

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


_out = Tee(sys.stdout)
_err = Tee(sys.stderr)
sys.stdout, sys.stderr = _out, _err


class LambdaContext:
    """The context object a Python handler receives."""

    def __init__(self, request_id: str, deadline_ms: int, arn: str,
                 client_context: Any = None) -> None:
        self.aws_request_id = request_id
        self.invoked_function_arn = arn
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.client_context = client_context
        self.identity = None
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))

    def log(self, message: str) -> None:
        sys.stdout.write(message)

    def __repr__(self) -> str:
        return (f"LambdaContext([aws_request_id={self.aws_request_id},"
                f"function_name={self.function_name},"
                f"invoked_function_arn={self.invoked_function_arn}])")


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.aws_request_id = _request_id
        return True


def _setup_logging() -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter(
        "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s",
        "%Y-%m-%dT%H:%M:%S"))
    logging.Formatter.converter = time.gmtime
    handler.addFilter(_RequestIdFilter())
    logging.getLogger().addHandler(handler)


def _stack(tb: TracebackType | None) -> list[str]:
    frames = [f for f in traceback.extract_tb(tb) if f.filename != __file__]
    return traceback.format_list(frames)


def _error(error_type: str, message: str, stack: list[str] | None = None) -> dict[str, Any]:
    return {"errorMessage": message, "errorType": error_type, "requestId": _request_id,
            "stackTrace": stack or []}


def _log_error(error: dict[str, Any]) -> None:
    lines = [f"[ERROR] {error['errorType']}: {error['errorMessage']}"]
    if error["stackTrace"]:
        lines.append("Traceback (most recent call last):")
        lines.extend(line.rstrip("\n") for line in error["stackTrace"])
    sys.stdout.write("\n".join(lines) + "\n")


def load_handler(handler: str) -> Callable[..., Any]:
    """The handler function, or an ``InitError`` shaped as the Python runtime reports it."""
    module_name, dot, function = handler.rpartition(".")
    if not dot or not module_name or not function:
        raise InitError(_error("Runtime.MalformedHandlerName",
                               f"Bad handler '{handler}': expected module.function"))
    try:
        module = importlib.import_module(module_name.replace("/", "."))
    except ImportError as exc:
        raise InitError(_error("Runtime.ImportModuleError",
                               f"Unable to import module '{module_name}': {exc}")) from None
    except SyntaxError as exc:
        raise InitError(_error("Runtime.UserCodeSyntaxError",
                               f"Syntax error in module '{module_name}': {exc}",
                               [f'  File "{exc.filename}" Line {exc.lineno}\n'
                                f"    {(exc.text or '').strip()}\n"])) from None
    except Exception as exc:
        raise InitError(_error(type(exc).__name__, str(exc), _stack(exc.__traceback__))
                        ) from None
    found = getattr(module, function, None)
    if not callable(found):
        raise InitError(_error("Runtime.HandlerNotFound",
                               f"Handler '{function}' missing on module '{module_name}'"))
    return found  # type: ignore[no-any-return]


class InitError(Exception):
    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error["errorMessage"])
        self.error = error


def _invoke(handler: Callable[..., Any], request: dict[str, Any]) -> dict[str, Any]:
    try:
        event = json.loads(request["event"]) if request.get("event") else {}
        context = LambdaContext(request["id"], int(request["deadline_ms"]), request["arn"],
                                request.get("client_context"))
        result = handler(event, context)
    except Exception as exc:
        error = _error(type(exc).__name__, str(exc), _stack(exc.__traceback__))
        _log_error(error)
        return {"ok": False, "error": error}
    try:
        return {"ok": True, "payload": json.dumps(result)}
    except (TypeError, ValueError) as exc:
        error = _error("Runtime.MarshalError", f"Unable to marshal response: {exc}")
        _log_error(error)
        return {"ok": False, "error": error}


def _finish_output() -> str:
    """Flush what the invocation wrote (to the log, before the answer); return it."""
    sys.stdout.flush()
    sys.stderr.flush()
    return _out.take() + _err.take()


def main() -> None:
    global _request_id
    began = time.perf_counter()
    channel = socket.socket(fileno=int(os.environ.pop("_SHAKEDOWN_LAMBDA_FD")))
    reader = channel.makefile("rb")
    code_dir = os.environ.get("LAMBDA_TASK_ROOT", os.getcwd())
    sys.path.insert(0, code_dir)
    _setup_logging()
    try:
        handler = load_handler(os.environ["_HANDLER"])
    except InitError as exc:
        _log_error(exc.error)
        _finish_output()
        channel.sendall(json.dumps({"type": "init_error", "error": exc.error,
                                    "init_ms": (time.perf_counter() - began) * 1000}
                                   ).encode() + b"\n")
        return
    _finish_output()  # what the import printed is the log's, not the first invocation's
    channel.sendall(json.dumps({"type": "ready", "init_ms": (time.perf_counter() - began)
                                * 1000}).encode() + b"\n")
    for line in reader:  # EOF: the emulator closed the channel or died; the worker ends
        request = json.loads(line)
        _request_id = request["id"]
        answer = _invoke(handler, request)
        answer["log"] = _finish_output()
        # Peak RSS from the worker itself: one getrusage here, not a /proc read in the emulator.
        answer["max_rss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        _request_id = "-"
        channel.sendall(json.dumps(answer).encode() + b"\n")


if __name__ == "__main__":
    main()
