"""Clock faults on one service through libfaketime: its wall clock offset by some seconds
(ahead or behind), jumped live, or running at a rate. A service runs under libfaketime once it
has a control file (``process.faketime``): the first clock fault on a service writes a zero
skew and restarts it (same port, same data) so its processes preload the library; from then on
each fault rewrites the file and the processes read it within a second. Healing writes a zero
skew back (the library stays loaded until the service next starts from scratch)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import FaultError
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
    """Skew ``service``'s clock; returns what to record and how to heal."""
    _require_library()
    if rate is not None and not 0 < rate <= 100:
        raise FaultError(f"clock rate {rate} is out of range", checked=["0 < rate <= 100"],
                         fix=["give e.g. 1.01 for a clock 1% fast"])
    env_id, name = service.ctx.env_id, service.name
    if not faketime.clock_file(env_id, name).exists() or not preloaded(service):
        _preload(service, record)
    spec = skew_spec(offset, rate)
    faketime.write_skew(env_id, name, spec)
    # The processes read the file again within REFRESH_SECONDS: the fault is in force then.
    time.sleep(faketime.REFRESH_SECONDS + 0.1)
    params: dict[str, Any] = {"offset": offset, "spec": spec}
    if rate is not None:
        params["rate"] = rate

    def heal() -> None:
        faketime.write_skew(env_id, name, ZERO)

    return params, heal


def reset(service: Service) -> bool:
    """Zero the service's skew if it has one (also one set by another process); True if it
    had one."""
    control = faketime.clock_file(service.ctx.env_id, service.name)
    try:
        skewed = control.read_text().strip() != ZERO
    except OSError:
        return False
    if skewed:
        faketime.write_skew(service.ctx.env_id, service.name, ZERO)
    return skewed


def _preload(service: Service, record: Callable[[str, dict[str, Any]], None]) -> None:
    if not isinstance(service, Restartable):
        raise FaultError(f"service {service.name!r} ({service.kind}) runs no process of "
                         "shakedown's: its clock cannot be faked",
                         fix=["fake the clock of a process-like service"])
    faketime.write_skew(service.ctx.env_id, service.name, ZERO)
    record("clock-preload", {"why": "restarted so its processes load libfaketime"})
    service.restart()
    if not preloaded(service):
        raise FaultError(
            f"service {service.name!r} ({service.kind}) did not load libfaketime",
            checked=[f"/proc/PID/maps of {service.pids}"],
            fix=["a statically linked server (Go: etcd) ignores LD_PRELOAD: skew the "
                 "clients' clocks instead"])
