"""The unprivileged user that database servers run as when shakedown is started by root
(PostgreSQL refuses to run as root). Created on first use with ``useradd --system``."""

from __future__ import annotations

import os
import pwd
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..errors import ShakedownError

SERVICE_USER = os.environ.get("SHAKEDOWN_SERVICE_USER", "shakedown")


@dataclass(frozen=True)
class RunAs:
    """A uid/gid pair to spawn as; ``None`` everywhere means 'as the current user'."""

    user: str
    uid: int
    gid: int

    def chown(self, path: Path) -> None:
        os.chown(path, self.uid, self.gid)

    def chown_tree(self, root: Path) -> None:
        self.chown(root)
        for dirpath, dirnames, filenames in os.walk(root):
            for name in (*dirnames, *filenames):
                os.lchown(os.path.join(dirpath, name), self.uid, self.gid)


def service_user() -> RunAs | None:
    """The user to run servers as: None when not root, else the shakedown system user."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(SERVICE_USER)
    except KeyError:
        entry = _create_user()
    return RunAs(user=entry.pw_name, uid=entry.pw_uid, gid=entry.pw_gid)


def _create_user() -> pwd.struct_passwd:
    command = ["useradd", "--system", "--user-group", "--no-create-home",
               "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", SERVICE_USER]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    try:
        # A concurrent run may have created it first: the lookup is what counts.
        return pwd.getpwnam(SERVICE_USER)
    except KeyError:
        raise ShakedownError(
            f"cannot create the unprivileged user {SERVICE_USER!r} that servers run as when "
            "shakedown is started by root",
            checked=[f"{' '.join(command)} -> exit {result.returncode}: {result.stderr.strip()}"],
            fix=[f"create it yourself: {' '.join(command)}",
                 "or run shakedown as a non-root user",
                 "or set SHAKEDOWN_SERVICE_USER to an existing unprivileged user"],
        ) from None


def check_reachable(path: Path, run_as: RunAs | None) -> None:
    """Fail clearly when the service user cannot walk into ``path`` (a parent directory
    closed to others, like pytest's tmp directories or /root, would make the server fail
    later with a terse 'Permission denied')."""
    if run_as is None:
        return
    for directory in (path, *path.parents):
        if not directory.exists():
            continue
        info = directory.stat()
        if info.st_uid != run_as.uid and not info.st_mode & 0o001:
            raise ShakedownError(
                f"the service user {run_as.user!r} cannot reach {path}: {directory} is closed "
                f"to other users (mode {oct(info.st_mode & 0o777)})",
                checked=[f"execute permission for others on {directory}"],
                fix=["unset SHAKEDOWN_RUNTIME_DIR / SHAKEDOWN_DISK_DIR to use the defaults",
                     "or point them at a directory the user can reach (e.g. under /dev/shm)",
                     f"or: chmod o+x {directory}"],
            )
