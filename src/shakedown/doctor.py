"""``shakedown doctor``: which server binaries this machine has, their versions, and the
exact command that installs what is missing."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

from .errors import ShakedownError
from .process import runtime_root, service_user, tmpfs_has_room
from .services import etcd, find_binaries, haproxy, patroni, pgbouncer
from .services.aws import doctor_check as aws_doctor_check


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    install: str = ""


def _binary(name: str, package: str, version_args: tuple[str, ...] = ("--version",)) -> Check:
    path = shutil.which(name)
    if path is None:
        return Check(name, False, "not on PATH", f"apt-get install -y {package}")
    out = subprocess.run([path, *version_args], capture_output=True, text=True, check=False)
    first = (out.stdout or out.stderr).strip().splitlines()
    return Check(name, True, f"{path}: {first[0] if first else '?'}")


def _postgres() -> Check:
    try:
        binaries = find_binaries(None)
    except ShakedownError as exc:
        return Check("postgres", False, exc.what, "apt-get install -y postgresql")
    return Check("postgres", True, f"{binaries.bin_dir}: PostgreSQL {binaries.version}")


def _machine() -> list[Check]:
    checks = [Check("runtime dir", True, str(runtime_root())),
              Check("tmpfs", tmpfs_has_room(), "/dev/shm has >= 1 GiB free" if tmpfs_has_room()
                    else "/dev/shm missing or full: data goes to disk (slower)")]
    if os.geteuid() == 0:
        try:
            user = service_user()
            who = user.user if user else "?"
            checks.append(Check("service user", True, f"servers run as {who}"))
        except ShakedownError as exc:
            checks.append(Check("service user", False, exc.what))
    return checks


CHECKS: list[Callable[[], Check]] = [
    _postgres,
    lambda: _binary("redis-server", "redis-server"),
    lambda: Check(*aws_doctor_check()),
    lambda: Check(*etcd.doctor_check()),
    lambda: Check(*patroni.doctor_check()),
    lambda: Check(*haproxy.doctor_check()),
    lambda: Check(*pgbouncer.doctor_check()),
]


def run_checks() -> list[Check]:
    return [check() for check in CHECKS] + _machine()
