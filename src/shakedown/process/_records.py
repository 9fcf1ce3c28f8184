"""Environment records: ``RUNTIME_ROOT/ENV_ID/env.json`` says who owns an environment, where its
state and data live, and whether it was detached. The reaper reads nothing else, so a record
written before the first process is spawned is enough to clean up after any crash."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil

from ._datamount import unmount_below
from ._sysv import remove_orphan_segments


@dataclass
class EnvRecord:
    env_id: str
    name: str
    state_dir: str
    data_dir: str
    owner_pid: int
    owner_started: float
    detached: bool = False
    created: float = field(default_factory=time.time)
    groups: list[int] = field(default_factory=list)
    state_file: str = ""
    """The state file inside ``state_dir`` (the reaper leaves a state dir whose state file
    names another environment: a new one reusing the name)."""
    """Process groups spawned for the environment. The reaper kills these as well as every
    process carrying the tag, because a server that rewrites its process title (as Redis
    and PostgreSQL do) may overwrite the memory /proc/PID/environ shows."""

    def save(self, root: Path) -> Path:
        directory = root / self.env_id
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "env.json"
        write_private(path, json.dumps(asdict(self), indent=2))
        return path

    @classmethod
    def load(cls, path: Path) -> EnvRecord:
        data = json.loads(path.read_text())
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})

    def owner_alive(self) -> bool:
        try:
            owner = psutil.Process(self.owner_pid)
            return abs(owner.create_time() - self.owner_started) < 1.0 and owner.status() not in (
                psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return False


def write_private(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` atomically, readable and writable by its owner (the
    invoking user) only, from the first byte: a state file, a record or a file holding a
    password is never world-readable, not even between its creation and a chmod."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # an older file of that name may have had another mode
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    os.replace(tmp, path)


def current_owner() -> tuple[int, float]:
    """pid and start time of this process, which identify it even after pid reuse."""
    me = psutil.Process()
    return me.pid, me.create_time()


def all_records(root: Path) -> list[tuple[Path, EnvRecord]]:
    records = []
    for path in sorted(root.glob("*/env.json")):
        try:
            records.append((path, EnvRecord.load(path)))
        except (OSError, ValueError, TypeError):
            continue  # being written or torn: the next reap sees it whole
    return records


def remove_tree(path: Path) -> None:
    remove_orphan_segments(path)  # a SIGKILLed postmaster's segment would outlive the tree
    if os.geteuid() == 0:
        unmount_below(path)  # a size-limited data directory is a mount of its own
    shutil.rmtree(path, ignore_errors=True)
