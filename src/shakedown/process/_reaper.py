"""The reaper: stops every process that carries an environment's tag and removes its data,
state, cgroups and port locks. It runs from ``shakedown reap``, at every ``up`` (for
environments whose owner died), and from the watchdog the moment an owner dies."""

from __future__ import annotations

import contextlib
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from ._cgroups import remove_env as remove_groups
from ._faketime import remove_segments
from ._nft import remove_env_tables
from ._paths import ROOT_VARIABLE, TAG_VARIABLE
from ._records import EnvRecord, all_records, remove_tree
from ._spawn import Spawned, group_members, kill_group, pid_alive

_TAG = TAG_VARIABLE.encode() + b"="
_ROOT = ROOT_VARIABLE.encode() + b"="


@dataclass
class ReapReport:
    environments: list[str] = field(default_factory=list)
    killed: list[int] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


def tagged_processes(env_id: str | None = None, root: Path | None = None) -> dict[int, str]:
    """pid → environment id of every live process that carries the tag (of ``env_id`` only,
    or of environments recorded under ``root`` only, when given). Reads /proc/PID/environ,
    which root can read for every process."""
    found: dict[int, str] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as handle:
                data = handle.read()
        except OSError:
            continue
        tags = _tags(data)
        tag = tags.get(_TAG)
        if tag is None or (env_id is not None and tag != env_id):
            continue
        if root is not None and tags.get(_ROOT) != str(root):
            continue
        found[int(entry.name)] = tag
    found.pop(os.getpid(), None)  # never the process doing the reaping
    return {pid: tag for pid, tag in found.items() if pid_alive(pid)}


def _tags(environ: bytes) -> dict[bytes, str]:
    """The shakedown variables of a NUL-separated environment block (find, not split: this
    runs over every process of the machine at each ``up``)."""
    tags = {}
    for prefix in (_TAG, _ROOT):
        start = environ.find(b"\0" + prefix)
        if start < 0 and environ.startswith(prefix):
            start = -1
        elif start < 0:
            continue
        start += 1 + len(prefix)
        end = environ.find(b"\0", start)
        tags[prefix] = environ[start:end if end >= 0 else None].decode(errors="replace")
    return tags


def tag_of(pid: int) -> str | None:
    """The environment id ``pid`` carries, or None (no tag, or gone)."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as handle:
            return _tags(handle.read()).get(_TAG)
    except OSError:
        return None


def kill_tagged(env_id: str) -> list[int]:
    """SIGKILL the process groups of every process tagged ``env_id``; return the pids."""
    pids = list(tagged_processes(env_id))
    groups = set()
    for pid in pids:
        try:
            groups.add(os.getpgid(pid))
        except ProcessLookupError:
            continue
    groups.discard(os.getpgid(0))  # never our own group
    for pgid in groups:
        kill_group(Spawned(role="reaped", pid=pgid, pgid=pgid, log_path=Path("/dev/null")))
    for pid in pids:  # a tagged process that left its group
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return pids


def kill_recorded_groups(record: EnvRecord) -> list[int]:
    """SIGKILL the recorded process groups whose members started after the environment did
    (so a pgid reused by an unrelated process since then is left alone)."""
    killed = []
    for pgid in record.groups:
        members = [pid for pid in group_members(pgid) if _started_after(pid, record.created)]
        if members and pgid != os.getpgid(0):
            kill_group(Spawned(role="reaped", pid=pgid, pgid=pgid, log_path=Path("/dev/null")))
            killed.extend(members)
    return killed


def _started_after(pid: int, since: float) -> bool:
    try:
        return bool(psutil.Process(pid).create_time() >= since - 1.0)
    except psutil.Error:
        return False


def reap_env(record: EnvRecord, root: Path, report: ReapReport | None = None) -> ReapReport:
    """Stop everything of one environment and remove its directories and port locks."""
    report = report or ReapReport()
    report.environments.append(f"{record.name} ({record.env_id})")
    report.killed.extend(kill_recorded_groups(record))
    report.killed.extend(kill_tagged(record.env_id))
    remove_env_tables(record.env_id)
    remove_groups(record.env_id)
    remove_segments()
    _remove_state_dir(record, report)
    for path in (Path(record.data_dir), root / record.env_id):
        if path.exists():
            remove_tree(path)
            report.removed.append(str(path))
    _release_ports(root, record.env_id)
    return report


def _remove_state_dir(record: EnvRecord, report: ReapReport) -> None:
    state_dir = Path(record.state_dir)
    state_file = Path(record.state_file) if record.state_file else None
    # Only if the state dir still belongs to this environment (a new one may reuse the name).
    if state_file is not None and state_file.exists() \
            and record.env_id not in state_file.read_text(errors="replace"):
        return
    if state_dir.exists():
        remove_tree(state_dir)
        report.removed.append(str(state_dir))


def _release_ports(root: Path, env_id: str) -> None:
    lock_dir = root / "ports"
    if not lock_dir.is_dir():
        return
    for lock in lock_dir.iterdir():
        try:
            if lock.read_text().strip() == env_id:
                lock.unlink(missing_ok=True)
        except FileNotFoundError:
            continue


def reap(root: Path, *, include_detached: bool = False) -> ReapReport:
    """Reap environments whose owner is dead, and tagged processes that belong to none."""
    report = ReapReport()
    known: set[str] = set()
    for _, record in all_records(root):
        known.add(record.env_id)
        if record.detached and not include_detached:
            continue
        if record.detached or not record.owner_alive():
            reap_env(record, root, report)
    for tag in sorted(strays(root, known)):
        reap_stray(tag, root, report)
    return report


def strays(root: Path, known: set[str]) -> dict[str, list[int]]:
    """Environment id → pids of tagged processes under ``root`` that belong to no record."""
    found: dict[str, list[int]] = {}
    for pid, tag in tagged_processes(root=root).items():
        if tag not in known:
            found.setdefault(tag, []).append(pid)
    return found


def reap_stray(tag: str, root: Path, report: ReapReport) -> None:
    """Kill the tagged processes of an environment that has no record, free its ports."""
    report.environments.append(f"(no record) {tag}")
    report.killed.extend(kill_tagged(tag))
    _release_ports(root, tag)
