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
import threading
import time
from collections.abc import Iterable

from ._paths import TAG_VARIABLE

PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37

_SPAWNED: set[int] = set()
"""Pids this process spawned itself (servers, the watchdog): never taken for adopted."""

ZOMBIE_SWEEP_SECONDS = 0.25
"""How often a subreaper reaps the adopted orphans that died. Unreaped, a dead postmaster's
pid stays taken: Patroni restarting on that data directory reads postmaster.pid, finds the
pid "running" and waits for a server that never answers."""
_sweeper: threading.Thread | None = None
_ORPHANS: set[int] = set()
"""Adopted children seen alive with an environment tag: the only ones a sweep reaps (a dead
child's environment can no longer be read, so the tag is noted while it lives)."""
_TAG = b"\0" + TAG_VARIABLE.encode() + b"="


def _prctl(option: int, arg: int | ctypes.c_int | ctypes._Pointer[ctypes.c_int]) -> int:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    result: int = libc.prctl(option, arg, 0, 0, 0)
    return result


def become_subreaper() -> bool:
    """Make this process a child subreaper; False where the kernel does not allow it."""
    try:
        done = _prctl(PR_SET_CHILD_SUBREAPER, 1) == 0
    except (OSError, AttributeError):
        return False
    if done:
        _start_zombie_sweeper()
    return done


def _start_zombie_sweeper() -> None:
    """One daemon thread per process reaps dead adopted orphans (which only a subreaper
    has): a kill's own sweep (``reap_orphan_zombies``) misses those that die later."""
    global _sweeper
    if _sweeper is not None and _sweeper.is_alive():
        return
    _sweeper = threading.Thread(target=_sweep_forever, name="shakedown-zombie-sweeper",
                                daemon=True)
    _sweeper.start()


def _sweep_forever() -> None:
    while True:
        with contextlib.suppress(OSError):
            reap_orphan_zombies()
        time.sleep(ZOMBIE_SWEEP_SECONDS)


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
    """Live orphans re-parented to this process; dead known orphans are reaped on the way."""
    return _sweep()[0]


def reap_orphan_zombies(pids: Iterable[int] = ()) -> list[int]:
    """Reap the dead orphans of services (tagged processes seen alive as adopted, and
    ``pids``: the descendants a kill just took down); return their pids. Any other child is
    left to whoever started it: a test's own ``Popen`` keeps its exit status."""
    return _sweep(set(pids))[1]


def _sweep(also: set[int] | None = None) -> tuple[list[int], list[int]]:
    """(live adopted orphans, dead ones reaped now)."""
    own_group = os.getpgid(0)
    live, reaped = [], []
    for pid, pgid, state in _children():
        if pid in _SPAWNED or pgid == own_group:
            continue
        if state not in ("Z", "X"):
            live.append(pid)
            if pid not in _ORPHANS and _tagged(pid):
                _ORPHANS.add(pid)
        elif pid in _ORPHANS or (also and pid in also):
            _ORPHANS.discard(pid)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
                reaped.append(pid)
    return live, reaped


def _tagged(pid: int) -> bool:
    """True when ``pid`` carries an environment tag: a service's descendant."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as handle:
            return _TAG in b"\0" + handle.read()
    except OSError:
        return False


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
