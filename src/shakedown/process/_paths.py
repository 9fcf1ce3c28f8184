"""Where shakedown keeps things on this machine: the runtime root (environment records and data
directories, on tmpfs when it has room, because file creation there is ~10x cheaper than on a
churned disk) and the cache (initdb templates)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ..errors import UsageError

TAG_VARIABLE = "SHAKEDOWN_ENV_ID"
"""Every process shakedown spawns carries this variable; its value is the environment id."""
ROOT_VARIABLE = "SHAKEDOWN_RUNTIME_ROOT"
"""...and this one, the runtime root of its environment record, so that a reaper looking at
one root never touches the processes of another (a test's private root, another user's)."""

_TMPFS = Path("/dev/shm")
_TMPFS_MIN_FREE = 1 << 30  # 1 GiB: below that, data goes to disk


def tmpfs_has_room() -> bool:
    try:
        return _TMPFS.is_dir() and shutil.disk_usage(_TMPFS).free >= _TMPFS_MIN_FREE
    except OSError:
        return False


def runtime_root() -> Path:
    """Root of environment records (``ENV_ID/env.json``), port locks and default data dirs.

    ``SHAKEDOWN_RUNTIME_DIR`` overrides it; every shakedown command that reaps looks here.
    """
    configured = os.environ.get("SHAKEDOWN_RUNTIME_DIR")
    if configured:
        root = Path(configured)
    elif tmpfs_has_room():
        root = _TMPFS / "shakedown"
    else:
        root = Path("/tmp") / "shakedown"
    return _ensure_traversable(root, "SHAKEDOWN_RUNTIME_DIR" if configured else None)


def disk_data_root() -> Path:
    """Where data directories go when tmpfs is off or full."""
    configured = os.environ.get("SHAKEDOWN_DISK_DIR")
    return _ensure_traversable(Path(configured or "/var/tmp/shakedown"),
                               "SHAKEDOWN_DISK_DIR" if configured else None)


def cache_root() -> Path:
    """Template cache: ``SHAKEDOWN_CACHE_DIR``; for root /var/cache/shakedown (root's home is
    closed to the service user that runs initdb); else the user's cache directory."""
    configured = os.environ.get("SHAKEDOWN_CACHE_DIR")
    if configured:
        return _ensure_traversable(Path(configured), "SHAKEDOWN_CACHE_DIR")
    if os.geteuid() == 0:
        return _ensure_traversable(Path("/var/cache/shakedown"))
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return _ensure_traversable(base / "shakedown",
                               "XDG_CACHE_HOME" if "XDG_CACHE_HOME" in os.environ else None)


def _ensure_traversable(path: Path, variable: str | None = None) -> Path:
    """Create ``path``; a path that cannot be a directory (a file is there, no permission, a
    read-only file system) is one error naming the variable that chose it."""
    try:
        # Servers run as an unprivileged user: it must be able to walk into its data directory.
        path.mkdir(parents=True, exist_ok=True)
        if not path.is_dir():
            raise NotADirectoryError(20, "not a directory")
        if os.geteuid() == 0 and path.stat().st_uid == 0:
            path.chmod(0o755)
    except (OSError, ValueError) as exc:
        chosen = f"{variable}={os.environ.get(variable, '')!r}" if variable else "the default"
        raise UsageError(
            f"cannot use {str(path)[:200]!r} as a directory: "
            f"{getattr(exc, 'strerror', None) or exc}",
            checked=[f"the directory chosen by {chosen}"],
            fix=[f"set {variable} to a writable directory, or unset it" if variable
                 else "make the directory writable, or choose another with its variable"],
        ) from None
    return path
