"""Readiness waits: a probe is polled until it answers, the watched processes dying or the
deadline passing ends the wait with an error that carries the last probe failure, the number
of attempts and the log tail. Probes are small callables, one per strategy (testcontainers'
wait strategies): tcp, http, command, log; service kinds add protocol-level ones."""

from __future__ import annotations

import re
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from ..errors import ServiceStartError
from ..waits import scaled
from ._spawn import Spawned, log_tail

Probe = Callable[[], object]
"""Returns a truthy value when ready; returns falsy or raises while not ready."""


class NotReady(Exception):
    """Raised by a probe to say 'not yet' with a reason."""


def wait_ready(
    probe: Probe,
    *,
    service: str,
    check: str,
    timeout: float,
    watch: Sequence[Spawned] = (),
    interval: float = 0.005,
    max_interval: float = 0.05,
) -> float:
    """Poll ``probe`` until ready; return seconds waited. Interval backs off to max_interval."""
    start = time.monotonic()
    timeout = scaled(timeout)
    deadline = start + timeout
    attempts = 0
    last: str = "no attempt made"
    while True:
        attempts += 1
        try:
            value = probe()
            if value:
                return time.monotonic() - start
            last = f"probe answered {value!r}"
        except Exception as exc:
            last = f"{type(exc).__name__}: {exc}".strip()
        for proc in watch:
            if not proc.alive():
                raise _died(service, check, proc, last)
        now = time.monotonic()
        if now >= deadline:
            raise _timed_out(service, check, timeout, attempts, last, watch)
        time.sleep(min(interval, deadline - now))
        interval = min(interval * 1.5, max_interval)


def _died(service: str, check: str, proc: Spawned, last: str) -> ServiceStartError:
    code = proc.exit_code()
    status = f"exit code {code}" if code is not None else "it is gone"
    return ServiceStartError(
        f"service {service!r}: {proc.role} exited while starting ({status})",
        checked=[f"readiness: {check}", f"last probe result: {last}",
                 f"log: {proc.log_path}"],
        fix=["read the log lines below for the server's own reason",
             "check the service's settings and command in shakedown.toml"],
        details=_tail_block(proc.log_path),
    )


def _timed_out(
    service: str, check: str, timeout: float, attempts: int, last: str, watch: Sequence[Spawned]
) -> ServiceStartError:
    logs = list(dict.fromkeys(p.log_path for p in watch))  # members may share one log
    details = "\n".join(_tail_block(path) for path in logs)
    return ServiceStartError(
        f"service {service!r} not ready after {timeout:.1f}s",
        checked=[f"readiness: {check} ({attempts} attempts)", f"last probe result: {last}",
                 *(f"log: {path}" for path in logs)],
        fix=["read the log lines below", "raise ready_timeout for the service if it is slow",
             "check that the readiness settings match what the service really does"],
        details=details,
    )


def _tail_block(path: Path, lines: int = 30) -> str:
    tail = log_tail(path, lines)
    return f"--- last lines of {path} ---\n{tail or '(empty)'}"


def tcp_probe(host: str, port: int) -> Probe:
    def probe() -> bool:
        with socket.create_connection((host, port), timeout=0.5):
            return True

    return probe


def http_probe(url: str, status: int = 200) -> Probe:
    import httpx  # here, not at the top: the watchdog imports this package and must start fast

    client = httpx.Client(timeout=1.0, trust_env=False)

    def probe() -> bool:
        response = client.get(url)
        if response.status_code != status:
            raise NotReady(f"GET {url} -> {response.status_code}, expected {status}")
        return True

    return probe


def command_probe(
    argv: Sequence[str], env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> Probe:
    def probe() -> bool:
        result = subprocess.run(list(argv), env=env, cwd=cwd, capture_output=True,
                                text=True, timeout=10, check=False)
        if result.returncode != 0:
            raise NotReady(f"exit {result.returncode}: {(result.stderr or result.stdout)[-200:]}")
        return True

    return probe


def log_probe(path: Path, pattern: str) -> Probe:
    regex = re.compile(pattern)

    def probe() -> bool:
        try:
            text = path.read_text(errors="replace")
        except FileNotFoundError:
            raise NotReady(f"{path} does not exist yet") from None
        if not regex.search(text):
            raise NotReady(f"no line matches {pattern!r} yet")
        return True

    return probe
