"""Where a service's clock is faked: libfaketime (Debian package ``faketime``) preloaded into
its processes, reading the skew from a control file that a clock fault rewrites live. A
service is spawned under libfaketime once its control file exists
(``RUNTIME_ROOT/ENV_ID/clock/SERVICE``); only the wall clock moves (``CLOCK_MONOTONIC`` stays
real, so timeouts and the readiness waits keep working), and a statically linked program (Go:
etcd) ignores the preload."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ._paths import runtime_root

LIBRARY_DIRS = ("/usr/lib/x86_64-linux-gnu/faketime", "/usr/lib/aarch64-linux-gnu/faketime",
                "/usr/lib/faketime", "/usr/local/lib/faketime")
INSTALL = "apt-get install -y faketime"
REFRESH_SECONDS = 1
"""How often a faked process reads the control file again (libfaketime caches it)."""


def library() -> str | None:
    """libfaketimeMT (the thread-safe build: servers have threads), or None."""
    configured = os.environ.get("SHAKEDOWN_LIBFAKETIME")
    if configured:
        return configured if os.path.exists(configured) else None
    for directory in LIBRARY_DIRS:
        for name in ("libfaketimeMT.so.1", "libfaketime.so.1"):
            candidate = Path(directory) / name
            if candidate.exists():
                return str(candidate)
    return None


def clock_file(env_id: str, service: str) -> Path:
    return runtime_root() / env_id / "clock" / service


def faked_env(env_id: str, service: str) -> dict[str, str]:
    """The variables that put a process of ``service`` under libfaketime ({} when its clock
    is not faked, or the library is missing)."""
    control = clock_file(env_id, service)
    found = library()
    if found is None or not control.exists():
        return {}
    return {
        "LD_PRELOAD": found,
        "FAKETIME_TIMESTAMP_FILE": str(control),
        "FAKETIME_CACHE_DURATION": str(REFRESH_SECONDS),
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        "FAKETIME_DONT_RESET": "1",  # children keep the parent's time base
    }


def write_skew(env_id: str, service: str, spec: str) -> Path:
    """Write the control file (a libfaketime spec: ``+30s``, ``-2m``, ``+0 x2``), atomically:
    a process reading it mid-write would see a half line."""
    control = clock_file(env_id, service)
    control.parent.mkdir(parents=True, exist_ok=True)
    control.parent.chmod(0o755)
    staged = control.with_suffix(".new")
    staged.write_text(spec + "\n")
    staged.chmod(0o644)
    os.replace(staged, control)
    return control


def faketime_binary() -> str | None:
    return shutil.which("faketime")
