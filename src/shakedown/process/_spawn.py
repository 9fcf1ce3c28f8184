"""Spawning processes and acting on their process groups. Every process starts a new session
(so it is the leader of its own process group and a terminal's Ctrl-C does not reach it first),
carries the environment tag, runs as the service user when asked, and writes stdout and stderr
to its log file. Inside a service's scope (``_cgroups.service_scope``) it goes into the
service's cgroups and, when the service's clock is faked, under libfaketime.
Stop, kill, pause and resume act on the whole group."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ._cgroup2 import thaw_of
from ._cgroups import current_scope, place, procs_files
from ._descendants import note_spawned, reap_orphan_zombies
from ._faketime import faked_env
from ._paths import ROOT_VARIABLE, TAG_VARIABLE, runtime_root
from ._users import RunAs

# What a server needs from the environment; the rest of the caller's environment is not passed
# to servers, so that a developer's PG* or REDIS* variables cannot change how they start.
_SERVER_ENV_KEYS = ("PATH", "LANG", "LC_ALL", "TZ", "TMPDIR")


@dataclass
class Spawned:
    """One spawned process: pid, process group and log; ``popen`` only in the spawning process."""

    role: str
    pid: int
    pgid: int
    log_path: Path
    popen: subprocess.Popen[bytes] | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, object]:
        return {"role": self.role, "pid": self.pid, "pgid": self.pgid, "log": str(self.log_path)}

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Spawned:
        return cls(role=str(data["role"]), pid=int(str(data["pid"])),
                   pgid=int(str(data["pgid"])), log_path=Path(str(data["log"])))

    def alive(self) -> bool:
        if self.popen is not None and self.popen.poll() is not None:
            return False
        return pid_alive(self.pid)

    def exit_code(self) -> int | None:
        return self.popen.poll() if self.popen is not None else None


def spawn(
    argv: Sequence[str],
    *,
    role: str,
    log_path: Path,
    env_id: str,
    env: Mapping[str, str] | None = None,
    inherit_env: bool = False,
    cwd: Path | None = None,
    run_as: RunAs | None = None,
    stdin_data: bytes | None = None,
) -> Spawned:
    """Start ``argv`` in a new session with the environment tag; output goes to ``log_path``.
    ``stdin_data`` is written to the process's stdin, which is then closed: how a secret
    (a generated password in a server's configuration) reaches a server without appearing on
    its command line, where every local user can read it (``ps``)."""
    base = dict(os.environ) if inherit_env else {
        k: v for k, v in os.environ.items() if k in _SERVER_ENV_KEYS
    }
    base.setdefault("LANG", "C.UTF-8")
    scope = current_scope()
    faked = faked_env(scope.env_id, scope.service) if scope is not None else {}
    full_env = {**base, **(env or {}), TAG_VARIABLE: env_id,
                ROOT_VARIABLE: str(runtime_root())}
    log_path.parent.mkdir(parents=True, exist_ok=True)
    argv, as_user = _switch_user(list(argv), run_as)
    if faked and argv[0] == _SETPRIV:  # preloaded once the user is switched, not in setpriv
        cut = argv.index("--") + 1
        argv = [*argv[:cut], _ENV, *(f"{k}={v}" for k, v in faked.items()), *argv[cut:]]
    else:
        full_env.update(faked)
    argv = _joining_groups(argv, procs_files(scope))
    with log_path.open("ab") as log:
        popen = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL if stdin_data is None else subprocess.PIPE,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=full_env,
            # A server run as another user may not be allowed into the caller's directory.
            cwd=cwd if cwd is not None or run_as is None else "/",
            start_new_session=True,
            user=as_user.uid if as_user else None,
            group=as_user.gid if as_user else None,
            extra_groups=[] if as_user else None,
        )
    note_spawned(popen.pid)
    place(popen.pid, scope)  # its own cgroups, before it is likely to have forked
    if popen.stdin is not None:
        with contextlib.suppress(BrokenPipeError):  # it died first: its log tells why
            popen.stdin.write(stdin_data or b"")
        with contextlib.suppress(BrokenPipeError):
            popen.stdin.close()
    return Spawned(role=role, pid=popen.pid, pgid=popen.pid, log_path=log_path, popen=popen)


# Joins each group given before ``--`` (a failed write is left to ``place`` after the spawn),
# then execs the command: the process is in its groups before the command's first instruction.
_JOIN = ('while [ "$1" != -- ]; do { echo $$ > "$1"; } 2>/dev/null; shift; done; shift; '
         'exec "$@"')


def _joining_groups(argv: list[str], files: list[Path]) -> list[str]:
    if not files:
        return argv
    return ["/bin/sh", "-c", _JOIN, "sh", *map(str, files), "--", *argv]


def _switch_user(argv: list[str], run_as: RunAs | None) -> tuple[list[str], RunAs | None]:
    """Become the service user through ``setpriv`` (util-linux) when it is there: Popen's own
    ``user=`` forbids vfork, so a large Python process is copied by fork, which costs ~5 ms a
    server. setpriv changes uid/gid, drops supplementary groups and execs the server (same pid).
    """
    if run_as is None:
        return argv, None
    setpriv = _SETPRIV
    if setpriv is None:
        return argv, run_as
    return [setpriv, f"--reuid={run_as.uid}", f"--regid={run_as.gid}", "--clear-groups", "--",
            *argv], None


_SETPRIV = shutil.which("setpriv") or (
    "/usr/bin/setpriv" if os.path.exists("/usr/bin/setpriv") else None)


_ENV = shutil.which("env") or "/usr/bin/env"


def _stat_fields(pid: int | str) -> list[bytes] | None:
    """The fields of /proc/PID/stat after the command name (state, ppid, pgrp, ...)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
    except OSError:
        return None
    return stat[stat.rfind(b")") + 2 :].split()


def process_state(pid: int) -> str | None:
    """The kernel's state letter of ``pid`` (R, S, T for stopped, Z for zombie...), or None."""
    fields = _stat_fields(pid)
    return fields[0].decode() if fields else None


def pid_alive(pid: int) -> bool:
    """True when ``pid`` exists and is not a zombie."""
    return process_state(pid) not in (None, "Z", "X")


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) pids whose process group is ``pgid``."""
    return [pid for pid, (_, group) in _process_table().items() if group == pgid]


def _process_table() -> dict[int, tuple[int, int]]:
    """pid → (parent pid, process group) of every live process."""
    table = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(entry.name)
        if fields and fields[0] not in (b"Z", b"X"):
            table[int(entry.name)] = (int(fields[1]), int(fields[2]))
    return table


def family(proc: Spawned) -> list[int]:
    """Live members of the process group and all their descendants. A server may move its
    children into sessions of their own (PostgreSQL's backends call setsid), so the group
    alone does not reach them."""
    table = _process_table()
    found = {pid for pid, (_, pgid) in table.items() if pgid == proc.pgid}
    if proc.pid in table:
        found.add(proc.pid)
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    queue = list(found)
    while queue:
        for child in children.get(queue.pop(), []):
            if child not in found:
                found.add(child)
                queue.append(child)
    return sorted(found)


def signal_family(proc: Spawned, sig: int) -> list[int]:
    """Send ``sig`` to the group first (so a parent stops forking), then to every member of
    the family; return the pids signalled. The family is also read before the group is
    signalled: a killed parent's children in sessions of their own are re-parented at once and
    would no longer look like its descendants."""
    before = family(proc)
    signal_group(proc.pgid, sig)
    members = sorted(set(before) | set(family(proc)))
    for pid in members:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
    return members


def stop_family(proc: Spawned, timeout: float = 2.0) -> list[int]:
    """SIGSTOP the family and wait until the kernel shows each member stopped: a signal takes
    effect only when its target next runs, which on a loaded machine can be after the caller
    has moved on (a test would then talk to a server it believes paused)."""
    members = signal_family(proc, signal.SIGSTOP)
    deadline = time.monotonic() + timeout
    waiting = list(members)
    while waiting and time.monotonic() < deadline:
        waiting = [pid for pid in waiting if process_state(pid) not in ("T", "t", "Z", "X", None)]
        if waiting:
            time.sleep(0.001)
    return members


def signal_group(pgid: int, sig: int) -> bool:
    """Send ``sig`` to the group; False when the group no longer exists."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    return True


def wait_group_gone(proc: Spawned, timeout: float) -> bool:
    """Wait until no live member of the process group is left; True if it is gone."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.popen is not None:
            proc.popen.poll()  # reap our own child so it does not linger as a zombie
        if not group_members(proc.pgid):
            reap_orphan_zombies()
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.005)


def stop_group(proc: Spawned, sig: int = signal.SIGTERM, timeout: float = 10.0) -> bool:
    """Ask the group to stop with ``sig``, then SIGKILL it after ``timeout``.

    Returns True when it stopped gracefully, False when it had to be killed.
    """
    thaw_of(proc.pid)  # a frozen server cannot handle the signal either
    if not signal_group(proc.pgid, sig):
        wait_group_gone(proc, 0)
        return True
    signal_group(proc.pgid, signal.SIGCONT)  # a paused server cannot handle the signal
    if wait_group_gone(proc, timeout):
        return True
    kill_group(proc)
    return False


def kill_group(proc: Spawned, timeout: float = 10.0) -> None:
    """SIGKILL the group and every descendant, and wait until they are gone."""
    members = signal_family(proc, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.popen is not None:
            proc.popen.poll()
        if not any(pid_alive(pid) for pid in members) and not group_members(proc.pgid):
            break
        time.sleep(0.005)
    reap_orphan_zombies(members)  # those re-parented to this subreaper: free their pids now


def descendants(pid: int) -> list[int]:
    """``pid`` and every live descendant of it."""
    children: dict[int, list[int]] = {}
    for child, (ppid, _) in _process_table().items():
        children.setdefault(ppid, []).append(child)
    found, queue = [pid], [pid]
    while queue:
        for child in children.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found


def kill_tree(pid: int, timeout: float = 10.0) -> None:
    """SIGKILL ``pid`` and its descendants (not the rest of its group: a supervisor in the
    same group stays), and wait until they are gone."""
    members = descendants(pid)
    for member in members:
        with contextlib.suppress(ProcessLookupError):
            os.kill(member, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(pid_alive(m) for m in members):
        time.sleep(0.005)


LINE_LIMIT = 300
"""Characters of one log line shown in a tail: a service that prints megabyte lines still
gets a message one can read."""


def log_tail(path: Path, lines: int = 50) -> str:
    """The last ``lines`` lines of a log file ('' when it does not exist), each cut at
    ``LINE_LIMIT`` characters with a note of how many were left out."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 64 * 1024))
            data = handle.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(_cut(line) for line in data.splitlines()[-lines:])


def _cut(line: str) -> str:
    if len(line) <= LINE_LIMIT:
        return line
    return f"{line[:LINE_LIMIT]}... ({len(line) - LINE_LIMIT} more characters)"
