"""PostgreSQL's System V shared-memory segment, which outlives a postmaster killed by SIGKILL:
the kernel keeps a segment until it is removed, and only the next start of the same data
directory would remove it. Before a data directory is deleted, the segments its
``postmaster.pid`` names are removed when no process is attached any more."""

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
    named = _named_segments(tree)
    deadline = time.monotonic() + wait
    while True:
        segments = _segments()
        live = [(key, shmid) for key, shmid in named if segments.get(shmid, (None,))[0] == key]
        if all(segments[shmid][1] == 0 for _, shmid in live) or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    return [shmid for _, shmid in live if segments[shmid][1] == 0 and _remove(shmid)]


def _named_segments(tree: Path) -> list[tuple[int, int]]:
    """(key, shmid) from line 7 of every postmaster.pid under ``tree``; data directories are
    not walked into (a thousand files each)."""
    found = []
    for directory, subdirs, files in os.walk(tree):
        if "PG_VERSION" in files:
            subdirs.clear()
            with contextlib.suppress(OSError, ValueError, IndexError):
                lines = (Path(directory) / "postmaster.pid").read_text().splitlines()
                key, shmid = lines[6].split()
                found.append((int(key), int(shmid)))
    return found


def _segments() -> dict[int, tuple[int, int]]:
    """shmid -> (key, processes attached)."""
    try:
        lines = _SEGMENTS.read_text().splitlines()[1:]
    except OSError:
        return {}
    table = {}
    for line in lines:
        fields = line.split()
        if len(fields) > 6:
            table[int(fields[1])] = (int(fields[0]), int(fields[6]))
    return table


def _remove(shmid: int) -> bool:
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    return int(libc.shmctl(ctypes.c_int(shmid), ctypes.c_int(_IPC_RMID), None)) == 0
