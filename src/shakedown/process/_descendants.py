"""Descendants that leave their process group, session and environment tag: the owner of an
environment (and the watchdog) become child subreapers (``prctl(PR_SET_CHILD_SUBREAPER)``),
so a process orphaned anywhere below them (a double-forked daemon, a setsid'd child whose
parent exited, a grandchild whose parent exited at once) is re-parented to the owner instead of
init. ``adopted()`` lists those: children of this process that it did not spawn itself and
that are not in its own process group (its short-lived tools, psql and the like, are).

Without ``prctl`` (not Linux) nothing is adopted and tracking falls back to the environment
tag and the process groups; ``mechanism()`` says which applies, for ``doctor``."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal

PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37

_SPAWNED: set[int] = set()
"""Pids this process spawned itself (servers, the watchdog): never taken for adopted."""


def _prctl(option: int, arg: int | ctypes.c_int | ctypes._Pointer[ctypes.c_int]) -> int:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    result: int = libc.prctl(option, arg, 0, 0, 0)
    return result


def become_subreaper() -> bool:
    """Make this process a child subreaper; False where the kernel does not allow it."""
    try:
        return _prctl(PR_SET_CHILD_SUBREAPER, 1) == 0
    except (OSError, AttributeError):
        return False


def is_subreaper() -> bool:
    value = ctypes.c_int(0)
    try:
        ok = _prctl(PR_GET_CHILD_SUBREAPER, ctypes.pointer(value)) == 0
    except (OSError, AttributeError):
        return False
    return ok and value.value != 0


def mechanism() -> str:
    """How descendants are tracked here, in words (for ``doctor``)."""
    if become_subreaper() or is_subreaper():
        return ("child subreaper (prctl PR_SET_CHILD_SUBREAPER): orphaned descendants come "
                "back to the owner; plus the environment tag and process groups; cgroups: "
                "not used")
    return "environment tag and process groups only (no child subreaper on this system)"


def note_spawned(pid: int) -> None:
    _SPAWNED.add(pid)


def _children() -> list[tuple[int, int, str]]:
    """(pid, process group, state) of every child of this process."""
    me = os.getpid()
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2:].split()
        if int(fields[1]) == me:
            found.append((int(entry.name), int(fields[2]), fields[0].decode()))
    return found


def adopted() -> list[int]:
    """Live orphans re-parented to this process; zombies among them are reaped on the way."""
    own_group = os.getpgid(0)
    live = []
    for pid, pgid, state in _children():
        if pid in _SPAWNED or pgid == own_group:
            continue
        if state in ("Z", "X"):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            continue
        live.append(pid)
    return live


def kill_adopted(pids: list[int]) -> list[int]:
    """SIGKILL each adopted pid and reap it (its own children then come back to us: the
    caller sweeps again)."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for pid in pids:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
    return pids
