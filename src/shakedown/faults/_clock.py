"""Clock faults on one service through libfaketime: its wall clock offset by some seconds
(ahead or behind), jumped live, or running at a rate. Each fault writes the skew to the service's
control file (``process.faketime``) and restarts the service (same port, same data) so that
its processes start under the library with it: a jump is a new fault, a restart again.
Healing removes the file and restarts the service with the real clock. A server that does not
start under libfaketime is started again without it and the fault says so."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import FaultError, ShakedownError
from ..process import faketime
from ..services import Restartable, Service

ZERO = "+0"


def skew_spec(offset: float, rate: float | None = None) -> str:
    """libfaketime's relative format: ``+30.000s``, ``-2.500s``, with `` x1.5`` for a rate."""
    spec = f"{offset:+.3f}s" if offset else ZERO
    return spec + (f" x{rate:g}" if rate is not None and rate != 1 else "")


def _require_library() -> None:
    if faketime.library() is None:
        raise FaultError(
            "cannot fake a clock: libfaketime is not installed",
            checked=[f"libfaketime in {', '.join(faketime.LIBRARY_DIRS)}",
                     "SHAKEDOWN_LIBFAKETIME"],
            fix=[f"install it: {faketime.INSTALL}",
                 "or set SHAKEDOWN_LIBFAKETIME to libfaketimeMT.so.1"])


def preloaded(service: Service) -> bool:
    """True when every running process of the service has libfaketime mapped."""
    pids = service.pids
    return bool(pids) and all(_maps_faketime(pid) for pid in pids)


def _maps_faketime(pid: int) -> bool:
    try:
        return "libfaketime" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


def set_clock(service: Service, offset: float, rate: float | None,
              record: Callable[[str, dict[str, Any]], None]) -> tuple[dict[str, Any],
                                                                     Callable[[], None]]:
    """Skew ``service``'s clock (restarting it under libfaketime); returns what to record and
    how to heal (a restart with the real clock)."""
    _require_library()
    if rate is not None and not 0 < rate <= 100:
        raise FaultError(f"clock rate {rate} is out of range", checked=["0 < rate <= 100"],
                         fix=["give e.g. 1.01 for a clock 1% fast"])
    target = _restartable(service)
    spec = skew_spec(offset, rate)
    faketime.write_skew(service.ctx.env_id, service.name, spec)
    record("clock-restart", {"why": "restarted so its processes load libfaketime",
                             "spec": spec})
    try:
        target.restart()
        faketime.remove_segments()  # the stopped processes' (libfaketime leaves them)
    except ShakedownError as exc:
        _clear(service)
        target.restart()  # stops what hangs under the library, starts it without
        raise FaultError(f"service {service.name!r} ({service.kind}) does not start under "
                         f"libfaketime: {exc.what}", details=exc.details,
                         fix=["skew the clients' clocks instead"]) from None
    if not preloaded(service):
        _clear(service)
        target.restart()
        raise FaultError(
            f"service {service.name!r} ({service.kind}) did not load libfaketime",
            checked=[f"/proc/PID/maps of {service.pids}"],
            fix=["a statically linked server (Go: etcd) ignores LD_PRELOAD: skew the "
                 "clients' clocks instead"])
    params: dict[str, Any] = {"offset": offset, "spec": spec}
    if rate is not None:
        params["rate"] = rate

    def heal() -> None:
        reset(service)

    return params, heal


def _restartable(service: Service) -> Restartable:
    if not isinstance(service, Restartable):
        raise FaultError(f"service {service.name!r} ({service.kind}) runs no process of "
                         "shakedown's: its clock cannot be faked",
                         fix=["fake the clock of a process-like service"])
    return service


def _clear(service: Service) -> bool:
    control = faketime.clock_file(service.ctx.env_id, service.name)
    if not control.exists():
        return False
    control.unlink()
    return True


def reset(service: Service) -> bool:
    """Give the service its real clock back (also after a skew set by another process):
    remove its control file and restart it; True if it had a skew."""
    if not _clear(service):
        return False
    _restartable(service).restart()
    faketime.remove_segments()
    return True
