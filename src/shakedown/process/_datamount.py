"""Size-limited data directories: when shakedown runs as root and the data lives on tmpfs, each
service's data directory is a tmpfs mount of its own, as large as the tmpfs it replaces (so
nothing changes until a fault). ``disk_full`` remounts it with its size cut to what is used
(writes then fail with ENOSPC) and healing remounts it at its first size: tmpfs resizes live,
so the server keeps its open files. ``unmount_below`` detaches every mount under a tree before
it is removed (``remove_tree`` calls it, so ``down``, the reaper and the watchdog all do).

``SHAKEDOWN_DATA_MOUNTS=0`` turns the mounts off (``disk_full`` then says so)."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from dataclasses import dataclass
from pathlib import Path

MOUNTS_VARIABLE = "SHAKEDOWN_DATA_MOUNTS"
_MS_REMOUNT = 32
_MNT_DETACH = 2
_PAGE = os.sysconf("SC_PAGE_SIZE")
_TMPFS_MAGIC = "tmpfs"


@dataclass(frozen=True)
class MountInfo:
    """A mount as /proc/self/mountinfo shows it."""

    target: Path
    fstype: str
    options: str


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as octal.
    return field.encode().decode("unicode_escape").encode("latin-1").decode(errors="replace")


def mounts() -> list[MountInfo]:
    found = []
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) >= 5 and len(tail) >= 3:
            found.append(MountInfo(Path(_unescape(fields[4])), tail[0], tail[2]))
    return found


def mount_of(path: Path) -> MountInfo | None:
    """The mount whose target is exactly ``path`` (the last one, when stacked)."""
    resolved = path.resolve()
    chosen = None
    for info in mounts():
        if info.target == resolved:
            chosen = info
    return chosen


def filesystem_of(path: Path) -> MountInfo | None:
    """The mount ``path`` lives on (the longest target that contains it)."""
    resolved = path.resolve()
    best: MountInfo | None = None
    for info in mounts():
        inside = resolved == info.target or info.target in resolved.parents
        if inside and (best is None or len(info.target.parts) >= len(best.target.parts)):
            best = info
    return best


def why_no_mounts(parent: Path) -> str | None:
    """Why data directories under ``parent`` are not mounted limited (None: they are)."""
    if os.environ.get(MOUNTS_VARIABLE, "1").strip() == "0":
        return f"{MOUNTS_VARIABLE}=0 turned size-limited data directories off"
    if os.geteuid() != 0:
        return "shakedown does not run as root (mounting a tmpfs needs it)"
    backing = filesystem_of(parent)
    if backing is None or backing.fstype != _TMPFS_MAGIC:
        kind = backing.fstype if backing else "unknown"
        return f"the data lives on {kind}, not tmpfs (size-limited directories are tmpfs)"
    return None


def mount_limited(path: Path) -> bool:
    """Make ``path`` (created when missing) a tmpfs as large as the one it is on; False when
    this machine or setting does not allow it (then ``path`` is a plain directory)."""
    path.mkdir(parents=True, exist_ok=True)
    if why_no_mounts(path.parent) is not None or mount_of(path) is not None:
        return mount_of(path) is not None
    stats = os.statvfs(path.parent)
    size = stats.f_blocks * stats.f_frsize
    options = f"size={size},mode=0755".encode()
    return int(_libc().mount(b"tmpfs", bytes(path), b"tmpfs", 0, options)) == 0


def usage(path: Path) -> tuple[int, int]:
    """(used, size) bytes of the filesystem at ``path``."""
    stats = os.statvfs(path)
    size = stats.f_blocks * stats.f_frsize
    return size - stats.f_bfree * stats.f_frsize, size


def resize(path: Path, size: int) -> None:
    """Remount the tmpfs at ``path`` with ``size`` bytes (rounded up to pages); raises OSError."""
    pages = max(1, -(-size // _PAGE))
    options = f"size={pages * _PAGE}".encode()
    if _libc().mount(b"tmpfs", bytes(path), b"tmpfs", _MS_REMOUNT, options) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"remount {path} size={pages * _PAGE}: {os.strerror(code)}")


def fill(path: Path, attempts: int = 5) -> int:
    """Cut the tmpfs at ``path`` to what it uses now; returns the new size. A server writing
    meanwhile can grow past the size asked for, which the kernel refuses: try again."""
    for _ in range(attempts - 1):
        try:
            used, _size = usage(path)
            resize(path, used)
            return usage(path)[1]
        except OSError:
            continue
    used, _size = usage(path)
    resize(path, used)
    return usage(path)[1]


def unmount_below(root: Path) -> list[Path]:
    """Detach every mount at or under ``root`` (deepest first); returns those detached."""
    resolved = root.resolve()
    targets = sorted({m.target for m in mounts()
                      if m.target == resolved or resolved in m.target.parents},
                     key=lambda p: len(p.parts), reverse=True)
    if not targets:
        return []
    libc = _libc()
    done = []
    for target in targets:
        if libc.umount2(bytes(target), _MNT_DETACH) == 0:
            done.append(target)
    return done
