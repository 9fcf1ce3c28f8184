"""PostgreSQL's System V shared-memory segment, which outlives a postmaster killed by SIGKILL:
the kernel keeps a segment until it is removed, and only the next start of the same data
directory would remove it. Before a data directory is deleted, its segments are removed once no
process is attached any more: the one its ``postmaster.pid`` names, and every other segment of
the directory's owner (the service user) that no process is attached to and whose creator is
dead: a killed postmaster's, forgotten by ``postmaster.pid`` when Patroni rebuilt or restarted
the directory. Such a segment of the dedicated service user is an orphan whoever's it was (a
postmaster is always attached to its own; between ``shmget`` and ``shmat`` its creator is
alive). When servers run as the invoking user (shakedown not run as root), only the named
segment goes: that user's other programs may keep detached segments on purpose."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import time
from pathlib import Path

_IPC_RMID = 0
_SEGMENTS = Path("/proc/sysvipc/shm")


def remove_orphan_segments(tree: Path, wait: float = 2.0) -> list[int]:
    """Remove the segments of the PostgreSQL data directories under ``tree`` once no process
    is attached to them (backends of a killed postmaster exit on their own, a moment later:
    each is in a session of its own, out of reach of the group's SIGKILL); return their ids."""
    named, owners = _named_segments(tree)
    deadline = time.monotonic() + wait
    while True:  # only for the named ones: a neighbour's live segment may sit in the range
        segments = _segments()
        live = [shmid for key, shmid in named if segments.get(shmid, (None,))[0] == key]
        if all(segments[shmid][1] == 0 for shmid in live) or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    earlier = [shmid for shmid, (_, attached, uid, creator) in segments.items()
               if attached == 0 and uid in owners - {os.getuid()} and not _alive(creator)]
    return [shmid for shmid in dict.fromkeys([*live, *earlier])
            if segments[shmid][1] == 0 and _remove(shmid)]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _named_segments(tree: Path) -> tuple[list[tuple[int, int]], set[int]]:
    """(key, shmid) from line 7 of every postmaster.pid under ``tree``, and the owners of the
    data directories; data directories are not walked into (a thousand files each)."""
    found = []
    owners = set()
    for directory, subdirs, files in os.walk(tree):
        if "PG_VERSION" in files:
            subdirs.clear()
            with contextlib.suppress(OSError):
                owners.add(os.stat(directory).st_uid)
            with contextlib.suppress(OSError, ValueError, IndexError):
                lines = (Path(directory) / "postmaster.pid").read_text().splitlines()
                key, shmid = lines[6].split()
                found.append((int(key), int(shmid)))
    return found, owners


def _segments() -> dict[int, tuple[int, int, int, int]]:
    """shmid -> (key, processes attached, owner uid, creator pid)."""
    try:
        lines = _SEGMENTS.read_text().splitlines()[1:]
    except OSError:
        return {}
    table = {}
    for line in lines:
        fields = line.split()
        if len(fields) > 7:
            table[int(fields[1])] = (int(fields[0]), int(fields[6]), int(fields[7]),
                                     int(fields[4]))
    return table


def _remove(shmid: int) -> bool:
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    return int(libc.shmctl(ctypes.c_int(shmid), ctypes.c_int(_IPC_RMID), None)) == 0
