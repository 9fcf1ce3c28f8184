"""``shakedown doctor``: which server binaries this machine has, their versions, and the
exact command that installs what is missing (each kind says it for itself: ``doctor()``),
and what the machine offers (runtime dir, tmpfs, service user, the cgroups, mounts and
libfaketime that resource and clock faults use)."""

from __future__ import annotations

import os

from .errors import ShakedownError
from .process import (
    cgroup2,
    cgroups,
    datamount,
    faketime,
    mechanism,
    nft,
    runtime_root,
    service_user,
    tmpfs_has_room,
)
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


def _faults() -> list[Check]:
    """What resource and clock faults can use here (each says what is missing and how)."""
    checks = []
    for name, found in cgroups.controllers().items():
        checks.append(Check(f"cgroup {name}", found.base is not None,
                            f"services get their own groups under {found.base}"
                            if found.base is not None else f"{found.reason}: {found.fix}"))
    why = datamount.why_no_mounts(runtime_root())
    checks.append(Check("disk_full", why is None,
                        "data directories are size-limited tmpfs mounts" if why is None
                        else f"{why}: disk_full is unavailable"))
    unified = cgroups.controllers()[cgroups.UNIFIED]
    tables = nft.availability()
    checks.append(Check("kernel network faults", unified.base is not None and tables.ok,
                        "partition, cut and loss between any services (nftables on cgroup2)"
                        if unified.base is not None and tables.ok else
                        f"{unified.reason or tables.reason}: {unified.fix or tables.fix}; "
                        "partitions use declared [links] only"))
    frozen, why_not = cgroup2.offered()
    checks.append(Check("pause", True, "a service's processes are frozen at once (cgroup2 "
                        "freezer)" if frozen else f"SIGSTOP per process ({why_not})"))
    library = faketime.library()
    checks.append(Check("libfaketime", library is not None,
                        f"{library}: clock faults" if library
                        else f"missing, clock faults unavailable: {faketime.INSTALL}"))
    return checks


def run_checks() -> list[Check]:
    """Every kind's lines (walked from the kind registry), then the machine's."""
    return doctor_lines() + _machine() + _faults()
