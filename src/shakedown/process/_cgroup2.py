"""Whole-service operations of cgroup2 (the service's group in the unified hierarchy,
``_cgroups``): freezing (``cgroup.freeze``) and killing (``cgroup.kill``) every process in the
group at once, a daemon that double-forked out of its parent's family and session included,
which signals sent per process (the fallback, in the services layer) can miss. Unlike the
cgroup v1 freezer, a process frozen this way still dies of SIGKILL, so ``down``, the watchdog
and ``reap`` need nothing special; a graceful stop thaws first (``thaw_of``), since a frozen
server cannot handle SIGTERM, and so does a start (a process spawned into a frozen group would
freeze at once). Freezing is asynchronous: ``freeze`` waits until ``cgroup.events`` says
``frozen 1``, so a test never talks to a server it believes paused while it still runs."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

from ._cgroups import UNIFIED, controllers, group_path, mount_of

_OURS = "/shakedown/"
"""Only groups of shakedown's own subtree are ever thawed by pid: another tool's frozen
cgroup is not ours to touch."""


def _control(env_id: str, service: str, name: str = "cgroup.freeze") -> Path | None:
    path = group_path(UNIFIED, env_id, service)
    if path is None or not (path / name).exists():
        return None
    return path / name


def offered() -> tuple[bool, str]:
    """Whether pause can freeze services here, and why not (for ``doctor``): tried on a
    group made and removed at once."""
    unified = controllers()[UNIFIED]
    if unified.base is None:
        return False, f"{unified.reason}: {unified.fix}"
    probe = unified.base / f"freezer-probe-{time.monotonic_ns()}"
    try:
        probe.mkdir(parents=True)
        try:
            found = (probe / "cgroup.freeze").exists()
        finally:
            probe.rmdir()
    except OSError as exc:
        return False, f"cannot create {probe}: {exc.strerror}"
    return (True, "") if found else (False, "this kernel's cgroup2 has no cgroup.freeze (< 5.2)")


def available(env_id: str, service: str) -> bool:
    """Whether the service's processes can be frozen as one group here."""
    return _control(env_id, service) is not None


def freeze(env_id: str, service: str, timeout: float = 2.0) -> bool:
    """Freeze the service's group and wait until the kernel reports it frozen; False when
    there is no freezer for it (the caller falls back to SIGSTOP)."""
    control = _control(env_id, service)
    if control is None:
        return False
    control.write_text("1")
    deadline = time.monotonic() + timeout
    while not _frozen(control.parent) and time.monotonic() < deadline:
        time.sleep(0.001)
    return True


def thaw(env_id: str, service: str) -> bool:
    """Thaw the service's group; True when it was frozen."""
    control = _control(env_id, service)
    if control is None or control.read_text().strip() != "1":
        return False
    control.write_text("0")
    return True


def is_frozen(env_id: str, service: str) -> bool:
    control = _control(env_id, service)
    return control is not None and control.read_text().strip() == "1"


def kill(env_id: str, service: str, timeout: float = 10.0) -> bool:
    """SIGKILL every process of the service's group and wait until the group is empty;
    False when there is no ``cgroup.kill`` for it (the caller signals per process)."""
    control = _control(env_id, service, "cgroup.kill")
    if control is None:
        return False
    control.write_text("1")
    deadline = time.monotonic() + timeout
    while _populated(control.parent) and time.monotonic() < deadline:
        time.sleep(0.002)
    return True


def thaw_of(pid: int) -> None:
    """Thaw the cgroup2 group ``pid`` is in when it is one of shakedown's and frozen (before
    a graceful stop); nothing when the process is gone or the machine has no cgroup2."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
            number, _, relative = line.split(":", 2)
            if number == "0" and _OURS in relative + "/":
                control = mount_of(UNIFIED) / relative.lstrip("/") / "cgroup.freeze"
                if control.read_text().strip() == "1":
                    control.write_text("0")


def _frozen(group: Path) -> bool:
    return _event(group, "frozen")


def _populated(group: Path) -> bool:
    return _event(group, "populated")


def _event(group: Path, name: str) -> bool:
    with contextlib.suppress(OSError):
        for line in (group / "cgroup.events").read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == name:
                return value.strip() == "1"
    return False
