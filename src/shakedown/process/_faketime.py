"""Where a service's clock is faked: libfaketime (Debian package ``faketime``) preloaded into
its processes, reading the skew from a control file that a clock fault rewrites live. A
service is spawned under libfaketime with ``FAKETIME`` set to what its control file
(``RUNTIME_ROOT/ENV_ID/clock/SERVICE``) holds, so a clock fault restarts the service to change
it. Changing the skew live through ``FAKETIME_TIMESTAMP_FILE`` was measured here with
libfaketime 0.9.10 and did not work (a stale value; with ``FAKETIME_DONT_FAKE_MONOTONIC``
Python's ``time.sleep`` fails with EINVAL). The monotonic clock moves with the wall clock (an
offset shifts both; a rate makes timers run fast too, as a fast oscillator would). A
statically linked program (Go: etcd) ignores the preload. The library is preloaded *after*
the switch to the service user (``setpriv ... -- env LD_PRELOAD=...``): the semaphore it
makes in the first process must belong to the user the server runs as, or the server cannot
open it and exits."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

from ._paths import runtime_root

LIBRARY_DIRS = ("/usr/lib/x86_64-linux-gnu/faketime", "/usr/lib/aarch64-linux-gnu/faketime",
                "/usr/lib/faketime", "/usr/local/lib/faketime")
INSTALL = "apt-get install -y faketime"


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
    """The variables that put a process of ``service`` under libfaketime with the skew its
    control file holds ({} when its clock is not faked, or the library is missing)."""
    control = clock_file(env_id, service)
    found = library()
    try:
        spec = control.read_text().strip()
    except OSError:
        return {}
    if found is None or not spec:
        return {}
    return {"LD_PRELOAD": found, "FAKETIME": spec}


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


_SHM = Path("/dev/shm")
_SEGMENTS = ("faketime_shm_", "sem.faketime_sem_")


def remove_segments() -> list[str]:
    """Remove the shared-memory segments libfaketime left behind: it makes a semaphore and a
    segment named after the first process it loads into (the server's pid: exec keeps it) and
    never removes them. A segment whose process is gone is garbage; returns those removed."""
    removed = []
    try:
        entries = list(os.scandir(_SHM))
    except OSError:
        return []
    for entry in entries:
        prefix = next((p for p in _SEGMENTS if entry.name.startswith(p)), None)
        pid = entry.name[len(prefix):] if prefix else ""
        if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
                removed.append(entry.name)
    return removed
