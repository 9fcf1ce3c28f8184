"""The leak guard: after every test item of the repository (tests/ and examples/, loaded for all
of them by the repository-root conftest.py), nothing the item started may be left: no process
carrying a shakedown tag (or any other process the test run started), no listening socket of
those processes, no runtime directory (environment directories, port locks, data on disk), no
shared-memory segment (POSIX in /dev/shm or System V). A leak fails the item at teardown, with
what was found; the guard then removes it so that the next item starts clean.

What a fixture of wider scope (module, session) starts belongs to it until it is finalized,
and so do environments held by the pytest plugin (module- and session-scoped
``shakedown_env``) and environments reachable from the value of an active fixture of wider
scope (a module fixture that keeps environments in a dict). When such a holder ends, what it
held must be gone at the end of that item.

Every run gets its own runtime root (``SHAKEDOWN_RUNTIME_DIR``, and ``SHAKEDOWN_DISK_DIR`` for
data off tmpfs), so that the guard sees what this run started and nothing of other runs; the
``runtime_root`` fixture gives one test a private root of its own. A run with
``--shakedown-keep`` or ``--shakedown-reuse`` leaves environments on purpose: it has no guard.
Load it into another pytest
run with ``-p leak_guard`` (``tests/`` on ``PYTHONPATH``), as tests/test_leak_guard.py does.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import secrets
import shutil
import signal
import socket
import struct
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from shakedown.environment import Environment
from shakedown.process import TAG_VARIABLE, kill_tagged
from shakedown.process._paths import ROOT_VARIABLE
from shakedown.process._ports import PORT_RANGE, PORTS_VARIABLE

PREFIX = "shakedown-test-"
"""Runtime roots of test runs start with this (other runs' roots are never looked at)."""
_TAG = TAG_VARIABLE.encode() + b"="
_ROOT = ROOT_VARIABLE.encode() + b"="
_SHM = Path("/dev/shm")
_NETLINK_SOCK_DIAG, _SOCK_DIAG_BY_FAMILY = 4, 20
_NLM_F_REQUEST, _NLM_F_DUMP, _NLMSG_ERROR, _NLMSG_DONE = 1, 0x300, 2, 3
_TCP_LISTEN = 10


@dataclass(frozen=True)
class Proc:
    """A live process of this run: a descendant of this pytest process, or tagged with one of
    this run's runtime roots."""

    pid: int
    start: int  # start time in clock ticks: a pid reused by another process is another key
    tag: str | None
    cmdline: str

    @property
    def key(self) -> str:
        return f"pid {self.pid}@{self.start}"

    def describe(self) -> str:
        tag = f" (tag {self.tag})" if self.tag else ""
        return f"process {self.pid}{tag}: {self.cmdline[:160]}"


@dataclass
class Snapshot:
    """What this run has on the machine at one moment, by kind; each thing has a key and
    (when it belongs to an environment) that environment's id."""

    procs: dict[str, Proc] = field(default_factory=dict)
    listeners: dict[int, int] = field(default_factory=dict)  # socket inode -> port
    paths: dict[str, str | None] = field(default_factory=dict)  # path -> env id
    shm: set[str] = field(default_factory=set)  # names in /dev/shm
    sysv: dict[int, tuple[int, int]] = field(default_factory=dict)  # shmid -> (cpid, nattch)

    def keys(self) -> set[str]:
        return (set(self.procs) | {f"listener {i}" for i in self.listeners} | set(self.paths)
                | {f"shm {n}" for n in self.shm} | {f"sysv {i}" for i in self.sysv})


@dataclass
class Holding:
    """What is held at one moment: environment ids, and keys of things outside environments."""

    env_ids: set[str] = field(default_factory=set)
    keys: set[str] = field(default_factory=set)


class Guard:
    def __init__(self) -> None:
        token = secrets.token_hex(4)
        base = _SHM if _SHM.is_dir() else Path("/tmp")
        self.parent = base / f"{PREFIX}{os.getpid()}-{token}"
        self.disk = Path("/var/tmp") / f"{PREFIX}{os.getpid()}-{token}"
        self.root = self.parent / "run"
        for path in (self.parent, self.root, self.disk):
            path.mkdir(mode=0o755, parents=True, exist_ok=True)
            path.chmod(0o755)  # the service user walks into its data directory
        os.environ["SHAKEDOWN_RUNTIME_DIR"] = str(self.root)
        os.environ["SHAKEDOWN_DISK_DIR"] = str(self.disk)
        _own_port_slice()
        self.active: dict[int, Any] = {}  # id(fixturedef) -> fixturedef (wider scope, set up)
        self.fixture_held: dict[int, Holding] = {}  # id(fixturedef) -> what its setup started
        self.private_roots = 0
        self.seen: set[int] = set()  # pids of this run seen during the current item
        self.seen_shm: set[str] = set()  # /dev/shm names they mapped
        self.sampling = threading.Event()
        threading.Thread(target=self._sample, name="leak-guard-sampler", daemon=True).start()

    # -- snapshots ---------------------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        snap = Snapshot(procs={p.key: p for p in self._processes()})
        snap.listeners = _listeners()
        snap.paths = self._runtime_paths()
        snap.shm = _shm_segments()
        snap.sysv = _sysv_segments()
        return snap

    def _processes(self) -> Iterator[Proc]:
        parents, starts, tagged, mine = self._scan()
        for pid in mine:
            cmdline = _cmdline(pid)
            if cmdline == "?" and _finishes_exiting(pid):
                continue  # no memory left but not yet a zombie: it was exiting (a watchdog
                # that has just reaped its environment), not left behind
            yield Proc(pid, starts[pid], _inherited_tag(pid, parents, tagged), cmdline)

    def _scan(self) -> tuple[dict[int, int], dict[int, int], dict[int, tuple[str, str | None]],
                             set[int]]:
        """Parent, start time and tags of every live process; and which are this run's."""
        parents: dict[int, int] = {}
        starts: dict[int, int] = {}
        tagged: dict[int, tuple[str, str | None]] = {}
        me = os.getpid()
        for name in _listdir(Path("/proc")):
            if not name.isdigit():
                continue
            pid = int(name)
            stat = _stat(pid)
            if stat is None or stat[0] in ("Z", "X"):
                continue  # gone, or a zombie: dead already
            parents[pid], starts[pid] = stat[1], stat[2]
            tags = _tags(pid)
            if tags is not None:
                tagged[pid] = tags
        prefix = str(self.parent)
        roots = [pid for pid, (_, root) in tagged.items() if root and root.startswith(prefix)]
        mine = _descendants(me, parents)
        for root_pid in roots:  # a detached environment's servers: children of init
            mine |= {root_pid} | _descendants(root_pid, parents)
        mine = {pid for pid in mine if pid in parents} - {me}
        self.seen |= mine
        for pid in mine | {me}:
            self.seen_shm |= _mapped_shm(pid)
        return parents, starts, tagged, mine

    def _sample(self) -> None:
        """Note this run's processes, and the /dev/shm segments they map, every 100 ms while
        an item runs: a System V segment names only the pid that created it (a postmaster,
        dead by the time anyone looks) and a POSIX one nobody at all; this is how the guard
        tells this run's segments from those of other runs on the machine (which it must
        neither blame on a test nor remove)."""
        while True:
            self.sampling.wait()
            with contextlib.suppress(Exception):  # a process vanishing mid-scan, at exit
                self._scan()
            time.sleep(0.1)

    def _runtime_paths(self) -> dict[str, str | None]:
        found: dict[str, str | None] = {}
        roots = [p for p in _iterdir(self.parent) if p.is_dir()]
        for root in roots:
            for entry in _iterdir(root):
                if entry.name == "ports":
                    for lock in _iterdir(entry):
                        found[str(lock)] = _read(lock).strip() or None
                else:
                    found[str(entry)] = entry.name
        for entry in _iterdir(self.disk):
            found[str(entry)] = entry.name
        return found

    # -- what is held --------------------------------------------------------------------------
    def holding(self, config: pytest.Config) -> Holding:
        held = Holding()
        for holding in self.fixture_held.values():
            held.env_ids |= holding.env_ids
            held.keys |= holding.keys
        held.env_ids |= _plugin_env_ids(config)
        for fixturedef in self.active.values():
            cached = getattr(fixturedef, "cached_result", None)
            if cached is not None:
                held.env_ids |= set(_env_ids_in(cached[0]))
        return held

    def fixture_setup_started(self, before: Snapshot, after: Snapshot) -> Holding:
        held = Holding()
        for kind in ("procs", "paths"):
            old, new = getattr(before, kind), getattr(after, kind)
            for key in set(new) - set(old):
                env_id = _env_of(new[key])
                if env_id:
                    held.env_ids.add(env_id)
                else:
                    held.keys.add(key)
        held.keys |= after.keys() - before.keys() - set(after.procs) - set(after.paths)
        return held

    # -- the check -----------------------------------------------------------------------------
    def leaks(self, before: Snapshot, held_before: Holding, after: Snapshot,
              held_after: Holding) -> list[str]:
        """What is there after the item and not held now, and was either not there before it
        or held then (its holder ended with this item)."""

        def leaked(key: str, env_id: str | None, was_there: bool) -> bool:
            if key in held_after.keys or (env_id and env_id in held_after.env_ids):
                return False
            released = key in held_before.keys or bool(env_id and env_id in held_before.env_ids)
            return not was_there or released

        found: list[str] = []
        for key, proc in after.procs.items():
            if leaked(key, _env_of(proc), key in before.procs):
                found.append(proc.describe())
        owners = _socket_owners(set(after.listeners) - set(before.listeners),
                                [p.pid for p in after.procs.values()] + [os.getpid()])
        for inode, port in after.listeners.items():
            pid = owners.get(inode)
            if pid is None:
                continue  # not a socket of this run
            key = f"listener {inode}"
            proc = next((p for p in after.procs.values() if p.pid == pid), None)
            env_id = _env_of(proc) if proc else None
            if leaked(key, env_id, inode in before.listeners) and not (
                    proc and proc.key in held_after.keys):
                found.append(f"listener on port {port} (process {pid})")
        for path, env_id in after.paths.items():
            if leaked(path, env_id, path in before.paths):
                found.append(f"runtime directory entry {path}")
        for name in sorted(after.shm & self.seen_shm):
            if leaked(f"shm {name}", None, name in before.shm):
                found.append(f"shared-memory segment /dev/shm/{name}")
        for shmid, (cpid, nattch) in after.sysv.items():
            # Attached segments belong to a live process (a leak of its own, or not ours).
            if nattch == 0 and cpid in self.seen and leaked(f"sysv {shmid}", None,
                                                            shmid in before.sysv):
                found.append(f"System V shared-memory segment {shmid} (created by pid {cpid},"
                             " no process attached)")
        return found

    def clean(self, before: Snapshot, after: Snapshot, held: Holding) -> None:
        """Remove what leaked, so that the next item starts clean."""
        env_ids = {_env_of(p) for p in after.procs.values()} - held.env_ids - {None}
        for env_id in sorted(e for e in env_ids if e):
            kill_tagged(env_id)
        for key, proc in after.procs.items():  # untagged ones too (a leaked env's watchdog)
            env_id = _env_of(proc)
            if key not in before.procs and key not in held.keys and not (
                    env_id and env_id in held.env_ids):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
        for path, env_id in after.paths.items():
            if path not in before.paths and not (env_id and env_id in held.env_ids):
                _remove(Path(path))
        for name in (after.shm - before.shm) & self.seen_shm:
            if f"shm {name}" not in held.keys:
                with contextlib.suppress(OSError):
                    (_SHM / name).unlink()
        for shmid, (cpid, nattch) in after.sysv.items():
            if (shmid not in before.sysv and nattch == 0 and cpid in self.seen
                    and f"sysv {shmid}" not in held.keys):
                _remove_sysv(shmid)

    def close(self) -> None:
        """End of the run: whatever is still there under this run's roots goes."""
        snap = self.snapshot()
        for env_id in {_env_of(p) for p in snap.procs.values()} - {None}:
            kill_tagged(str(env_id))
        for path in (self.parent, self.disk):
            _remove(path)


def _own_port_slice() -> None:
    """Port locks live in the runtime root, which is per process here: xdist workers would not
    see each other's locks, so each takes its own slice of the port range (a run this one
    starts inherits the slice)."""
    worker, count = os.environ.get("PYTEST_XDIST_WORKER", ""), os.environ.get(
        "PYTEST_XDIST_WORKER_COUNT", "")
    if os.environ.get(PORTS_VARIABLE) or not worker.startswith("gw") or not count.isdigit():
        return
    index, width = int(worker[2:]), len(PORT_RANGE) // int(count)
    low = PORT_RANGE.start + index * width
    os.environ[PORTS_VARIABLE] = f"{low}-{low + width - 1}"


# -- the hooks ---------------------------------------------------------------------------------
GUARD = pytest.StashKey[Guard]()
BEFORE = pytest.StashKey[tuple[Snapshot, Holding]]()
FOUND = pytest.StashKey[list[str]]()


def pytest_configure(config: pytest.Config) -> None:
    # --shakedown-keep / --shakedown-reuse leave environments running on purpose, in the
    # default runtime root where `shakedown down` finds them: no guard for such a run.
    if _option(config, "--shakedown-keep") or _option(config, "--shakedown-reuse"):
        return
    config.stash[GUARD] = Guard()


def _option(config: pytest.Config, name: str) -> bool:
    try:
        return bool(config.getoption(name))
    except ValueError:  # the plugin is not loaded
        return False


def pytest_unconfigure(config: pytest.Config) -> None:
    guard = config.stash.get(GUARD, None)
    if guard is not None:
        guard.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    guard = item.config.stash.get(GUARD, None)
    if guard is None:
        return (yield)
    guard.seen, guard.seen_shm = set(), set()
    guard.sampling.set()
    item.stash[BEFORE] = (guard.snapshot(), guard.holding(item.config))
    return (yield)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_fixture_setup(fixturedef: Any, request: pytest.FixtureRequest) -> Iterator[object]:
    guard = request.config.stash.get(GUARD, None)
    if fixturedef.scope == "function" or guard is None:
        return (yield)
    before = guard.snapshot()
    try:
        return (yield)
    finally:
        guard.active[id(fixturedef)] = fixturedef
        guard.fixture_held[id(fixturedef)] = guard.fixture_setup_started(before,
                                                                         guard.snapshot())


def pytest_fixture_post_finalizer(fixturedef: Any, request: pytest.FixtureRequest) -> None:
    guard = request.config.stash.get(GUARD, None)
    if guard is not None:
        guard.active.pop(id(fixturedef), None)
        guard.fixture_held.pop(id(fixturedef), None)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    try:
        return (yield)
    finally:
        guard = item.config.stash.get(GUARD, None)
        if guard is not None and BEFORE in item.stash:
            guard.sampling.clear()
            before, held_before = item.stash[BEFORE]
            after, held_after = guard.snapshot(), guard.holding(item.config)
            found = guard.leaks(before, held_before, after, held_after)
            if found:
                guard.clean(before, after, held_after)
                item.stash[FOUND] = found


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item,
                              call: pytest.CallInfo[None]) -> Iterator[pytest.TestReport]:
    report: pytest.TestReport = yield
    found = item.stash.get(FOUND, None)
    if call.when == "teardown" and found:
        text = ("leak guard: the test left behind:\n  " + "\n  ".join(found)
                + "\n(removed now; stop what the test starts, e.g. with `with "
                  "Environment.from_file(...)` or env.down() in a finally)")
        if report.passed:
            report.outcome = "failed"
            report.longrepr = text
        else:
            report.sections.append(("leak guard", text))
    return report


@pytest.fixture
def runtime_root(request: pytest.FixtureRequest,
                 monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A runtime root of this test alone (empty at the start, so a test can assert that it is
    empty again); the leak guard checks it like the run's own root."""
    guard = request.config.stash.get(GUARD, None)
    if guard is None:
        root = Path(tempfile.mkdtemp(prefix=PREFIX + "private-", dir=_SHM))
        root.chmod(0o755)
    else:
        guard.private_roots += 1
        root = guard.parent / f"private-{guard.private_roots}"
        root.mkdir(mode=0o755)
    monkeypatch.setenv("SHAKEDOWN_RUNTIME_DIR", str(root))
    yield root
    # Empty port-lock directories are not leaks; anything else is the guard's to report.
    with contextlib.suppress(OSError):
        (root / "ports").rmdir()
    with contextlib.suppress(OSError):
        root.rmdir()


# -- helpers -----------------------------------------------------------------------------------
def _env_of(item: Proc | str | None) -> str | None:
    if isinstance(item, Proc):
        if item.tag:
            return item.tag
        # The owner's watchdog carries no tag; its command line names the record.
        marker = item.cmdline.find("/env.json")
        if marker > 0:
            return item.cmdline[:marker].rsplit("/", 1)[-1]
        return None
    return item


def _plugin_env_ids(config: pytest.Config) -> set[str]:
    try:
        from shakedown.pytest_plugin import MANAGER
    except ImportError:
        return set()
    manager = config.stash.get(MANAGER, None)
    if manager is None:
        return set()
    return {started.env.env_id for started in manager.started.values() if started.env.env_id}


def _env_ids_in(value: object, depth: int = 0) -> Iterator[str]:
    if isinstance(value, Environment):
        if value.env_id:
            yield value.env_id
    elif depth < 2 and isinstance(value, dict):
        for inner in value.values():
            yield from _env_ids_in(inner, depth + 1)
    elif depth < 2 and isinstance(value, list | tuple | set):
        for inner in value:
            yield from _env_ids_in(inner, depth + 1)


def _inherited_tag(pid: int, parents: dict[int, int],
                   tagged: dict[int, tuple[str, str | None]]) -> str | None:
    """The tag of the process or of its nearest tagged ancestor: PostgreSQL's backends write
    over their environment block (the process title), so they show no tag of their own."""
    for _ in range(16):
        if pid in tagged:
            return tagged[pid][0]
        pid = parents.get(pid, 0)
        if pid <= 1:
            return None
    return None


def _descendants(root: int, parents: dict[int, int]) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _proc_read(pid: int, name: str) -> bytes | None:
    try:
        fd = os.open(f"/proc/{pid}/{name}", os.O_RDONLY)
    except OSError:
        return None
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError:
        return None
    finally:
        os.close(fd)


def _stat(pid: int) -> tuple[str, int, int] | None:
    """State, parent pid and start time of a process (None if it is gone)."""
    data = _proc_read(pid, "stat")
    if data is None:
        return None
    fields = data[data.rfind(b")") + 2:].split()
    return fields[0].decode(), int(fields[1]), int(fields[19])


def _tags(pid: int) -> tuple[str, str | None] | None:
    environ = _proc_read(pid, "environ")
    if environ is None or _TAG not in environ:
        return None
    values: dict[bytes, str] = {}
    for entry in environ.split(b"\0"):
        for prefix in (_TAG, _ROOT):
            if entry.startswith(prefix):
                values[prefix] = entry[len(prefix):].decode(errors="replace")
    if _TAG not in values:
        return None
    return values[_TAG], values.get(_ROOT)


def _finishes_exiting(pid: int, within: float = 2.0) -> bool:
    """Whether ``pid`` (whose command line is already gone) is a zombie or gone within
    ``within`` seconds; a process that stays is reported."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        stat = _stat(pid)
        if stat is None or stat[0] in ("Z", "X"):
            return True
        time.sleep(0.01)
    return False


def _cmdline(pid: int) -> str:
    data = _proc_read(pid, "cmdline")
    return data.replace(b"\0", b" ").decode(errors="replace").strip() if data else "?"


def _listeners() -> dict[int, int]:
    """Listening TCP sockets of this network namespace, inode -> port, asked of the kernel
    through sock_diag netlink (the kernel filters by state: reading /proc/net/tcp costs
    ~15 ms on a machine with many sockets in TIME_WAIT, this ~0.2 ms)."""
    found: dict[int, int] = {}
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, _NETLINK_SOCK_DIAG) as sock:
        for family in (socket.AF_INET, socket.AF_INET6):
            # struct inet_diag_req_v2: family, protocol, ext, pad, states, inet_diag_sockid
            request = struct.pack("=BBBBI", family, socket.IPPROTO_TCP, 0, 0,
                                  1 << _TCP_LISTEN) + bytes(48)
            header = struct.pack("=IHHII", 16 + len(request), _SOCK_DIAG_BY_FAMILY,
                                 _NLM_F_REQUEST | _NLM_F_DUMP, 1, 0)
            sock.send(header + request)
            while _read_diag(sock.recv(65536), found):
                pass
    return found


def _read_diag(data: bytes, found: dict[int, int]) -> bool:
    """Add the sockets of one netlink answer; False once the dump is done."""
    offset = 0
    while offset < len(data):
        length, kind = struct.unpack_from("=IH", data, offset)
        if kind == _NLMSG_DONE:
            return False
        if kind == _NLMSG_ERROR:
            raise OSError("sock_diag refused the request")
        message = offset + 16  # struct inet_diag_msg: 4 bytes, sockid (48), 4 x u32, inode
        port = struct.unpack_from("!H", data, message + 4)[0]
        inode = struct.unpack_from("=I", data, message + 4 + 48 + 16)[0]
        found[inode] = port
        offset += (length + 3) & ~3
    return True


def _socket_owners(inodes: set[int], pids: Iterable[int]) -> dict[int, int]:
    """Which of ``pids`` holds each socket inode (only the inodes asked about)."""
    wanted = {f"socket:[{inode}]": inode for inode in inodes}
    owners: dict[int, int] = {}
    if not wanted:
        return owners
    for pid in pids:
        for fd in _listdir(Path(f"/proc/{pid}/fd")):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target in wanted:
                    owners[wanted[target]] = pid
    return owners


def _mapped_shm(pid: int) -> set[str]:
    """Names of the /dev/shm files a process maps."""
    data = _proc_read(pid, "maps")
    found = set()
    for line in (data or b"").splitlines():
        at = line.find(b" /dev/shm/")
        if at >= 0:
            name = line[at + 10:].decode(errors="replace").removesuffix(" (deleted)")
            if "/" not in name and not name.startswith("shakedown"):
                found.add(name)
    return found


def _shm_segments() -> set[str]:
    """POSIX shared-memory segments: regular files in /dev/shm. Directories there are other
    programs' scratch space (runtime roots, a benchmark's data directory), never a segment."""
    found = set()
    for name in _listdir(_SHM):
        with contextlib.suppress(OSError):
            if not name.startswith("shakedown") and (_SHM / name).is_file():
                found.add(name)
    return found


def _sysv_segments() -> dict[int, tuple[int, int]]:
    found: dict[int, tuple[int, int]] = {}
    for line in _read(Path("/proc/sysvipc/shm")).splitlines()[1:]:
        fields = line.split()
        if len(fields) > 6:
            found[int(fields[1])] = (int(fields[4]), int(fields[6]))
    return found


def _remove_sysv(shmid: int) -> None:
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.shmctl(ctypes.c_int(shmid), ctypes.c_int(0), None)  # IPC_RMID


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()


def _listdir(path: Path) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []


def _iterdir(path: Path) -> list[Path]:
    return [path / name for name in _listdir(path)]


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""
