"""``shakedown doctor``: which server binaries this machine has, their versions, and the
exact command that installs what is missing (each kind says it for itself: ``doctor()``),
and what the machine offers (runtime dir, tmpfs, service user)."""

from __future__ import annotations

import os

from .errors import ShakedownError
from .process import mechanism, runtime_root, service_user, tmpfs_has_room
from .services import DoctorLine, doctor_lines

Check = DoctorLine


def _machine() -> list[Check]:
    checks = [Check("runtime dir", True, str(runtime_root())),
              Check("tmpfs", tmpfs_has_room(), "/dev/shm has >= 1 GiB free" if tmpfs_has_room()
                    else "/dev/shm missing or full: data goes to disk (slower)"),
              Check("descendants", True, mechanism())]
    if os.geteuid() == 0:
        try:
            user = service_user()
            who = user.user if user else "?"
            checks.append(Check("service user", True, f"servers run as {who}"))
        except ShakedownError as exc:
            checks.append(Check("service user", False, exc.what))
    return checks


def run_checks() -> list[Check]:
    """Every kind's lines (walked from the kind registry), then the machine's."""
    return doctor_lines() + _machine()
