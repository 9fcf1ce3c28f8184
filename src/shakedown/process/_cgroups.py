"""Control groups of services: each service's processes go into a cgroup of their own (per
environment and service) in the cgroup v1 ``memory``, ``pids`` and ``cpu`` hierarchies, so that
resource faults can limit one service without touching the others; and which of those the
machine offers (for ``doctor`` and for a fault's clear refusal).

The groups live below the cgroup shakedown itself runs in (``<mount>/<own>/shakedown/ENV/SVC``),
as a delegated subtree would: a server stays inside whatever accounting its caller is under.
A process is placed right after it is spawned; a child it forks before that stays outside, so
a fault places the whole family again before it limits (``place_family``). ``remove_env``
deletes an environment's groups (at ``down``, by the reaper and the watchdog).

A kind's ``start`` runs inside ``service_scope(env_id, service)`` (set by the services layer),
which is how ``spawn`` knows which service a process belongs to without a parameter at every
call site."""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import time
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path(os.environ.get("SHAKEDOWN_CGROUP_ROOT", "/sys/fs/cgroup"))
CONTROLLERS = ("memory", "pids", "cpu", "unified")
UNIFIED = "unified"
"""The cgroup2 hierarchy: no controller of its own here, but nftables matches a socket's
cgroup2 group, which is how kernel network faults tell services apart (faults._kernel)."""
_SUBTREE = "shakedown"


@dataclass(frozen=True)
class ServiceScope:
    """Which environment and service the processes spawned now belong to."""

    env_id: str
    service: str


_SCOPE: ContextVar[ServiceScope | None] = ContextVar("shakedown_service_scope", default=None)


@contextlib.contextmanager
def service_scope(env_id: str, service: str) -> Iterator[None]:
    """Processes spawned in this block (in this thread) belong to ``service``."""
    token = _SCOPE.set(ServiceScope(env_id, service))
    try:
        yield
    finally:
        _SCOPE.reset(token)


def current_scope() -> ServiceScope | None:
    return _SCOPE.get()


@dataclass(frozen=True)
class Controller:
    """One hierarchy as this machine has it: usable, or why not (and how to fix it)."""

    name: str
    base: Path | None  # where shakedown's groups go; None when unusable
    reason: str = ""
    fix: str = ""


def _own_path(controller: str) -> str:
    """This process's cgroup in a hierarchy ("/" when unknown); cgroup2's line is ``0::``."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return "/"
    for line in lines:
        number, names, path = line.split(":", 2)
        if controller in names.split(",") or (controller == UNIFIED and number == "0"):
            return path
    return "/"


def mount_of(name: str) -> Path:
    """Where hierarchy ``name`` is mounted: ``/sys/fs/cgroup/NAME``, or for cgroup2 on a
    machine with no v1 hierarchies, ``/sys/fs/cgroup`` itself."""
    mount = CGROUP_ROOT / name
    if name == UNIFIED and not (mount / "cgroup.procs").exists() \
            and (CGROUP_ROOT / "cgroup.controllers").exists():
        return CGROUP_ROOT
    return mount


def controller(name: str) -> Controller:
    """Whether shakedown can make groups in the ``name`` hierarchy here (tries it)."""
    mount = mount_of(name)
    if os.geteuid() != 0:
        return Controller(name, None, "shakedown does not run as root",
                          "run shakedown as root to place services in cgroups")
    if not (mount / "cgroup.procs").exists():
        if name == UNIFIED:
            return Controller(name, None, f"no cgroup2 hierarchy at {mount}",
                              f"mount it: mkdir -p {mount} && mount -t cgroup2 none {mount}")
        return Controller(name, None, f"no cgroup v1 {name!r} hierarchy at {mount}",
                          f"mount it: mkdir -p {mount} && mount -t cgroup -o {name} cgroup {mount}")
    base = mount / _own_path(name).lstrip("/") / _SUBTREE
    try:
        # Probe by making the subtree; groups make it again when they need it, so a probe
        # (doctor) leaves nothing in the caller's cgroup.
        if not base.exists():
            base.mkdir()
            base.rmdir()
    except OSError as exc:
        return Controller(name, None, f"cannot create {base}: {exc.strerror}",
                          "run where cgroups can be created (root, not a read-only cgroupfs)")
    return Controller(name, base)


_controllers: dict[str, Controller] = {}
_probing = threading.Lock()


def controllers() -> dict[str, Controller]:
    """Every hierarchy shakedown uses, probed once per process (services start in threads:
    none may see the table half filled)."""
    with _probing:
        if not _controllers:
            _controllers.update({name: controller(name) for name in CONTROLLERS})
    return _controllers


def group_path(name: str, env_id: str, service: str) -> Path | None:
    """The service's group in hierarchy ``name`` (None when the hierarchy is unusable)."""
    found = controllers()[name]
    return found.base / env_id / service if found.base is not None else None


def place(pid: int, scope: ServiceScope | None = None) -> None:
    """Move ``pid`` into its service's groups (the current scope's by default); a no-op where
    the machine has no usable hierarchy, or when ``pid`` is already gone."""
    scope = scope or current_scope()
    if scope is None:
        return
    for name in CONTROLLERS:
        path = group_path(name, scope.env_id, scope.service)
        if path is None:
            continue
        with contextlib.suppress(FileNotFoundError, ProcessLookupError, OSError):
            path.mkdir(parents=True, exist_ok=True)
            (path / "cgroup.procs").write_text(str(pid))


def procs_files(scope: ServiceScope | None = None) -> list[Path]:
    """The ``cgroup.procs`` files of the scope's groups (made when missing), for a process to
    join before it execs (``spawn``'s wrapper): a socket it opens at once is then in its
    service's cgroup2 group, which kernel network faults match on."""
    scope = scope or current_scope()
    if scope is None:
        return []
    files = []
    for name in CONTROLLERS:
        path = group_path(name, scope.env_id, scope.service)
        if path is None:
            continue
        with contextlib.suppress(OSError):
            path.mkdir(parents=True, exist_ok=True)
            files.append(path / "cgroup.procs")
    return files


def place_family(pids: Iterable[int], env_id: str, service: str) -> None:
    """Move every pid given (a service's whole family) into the service's groups."""
    scope = ServiceScope(env_id, service)
    for pid in pids:
        place(pid, scope)


def members(name: str, env_id: str, service: str) -> list[int]:
    """The pids in the service's group of hierarchy ``name``."""
    path = group_path(name, env_id, service)
    if path is None:
        return []
    try:
        return [int(p) for p in (path / "cgroup.procs").read_text().split()]
    except OSError:
        return []


def write(name: str, env_id: str, service: str, setting: str, value: str) -> Path:
    """Write one setting (``memory.limit_in_bytes``...) of the service's group; the group is
    created when missing. Returns the file written."""
    path = group_path(name, env_id, service)
    if path is None:
        raise OSError(errno.ENOENT, f"no usable cgroup {name!r} hierarchy")
    path.mkdir(parents=True, exist_ok=True)
    target = path / setting
    target.write_text(value)
    return target


def read(name: str, env_id: str, service: str, setting: str) -> str:
    path = group_path(name, env_id, service)
    if path is None:
        raise OSError(errno.ENOENT, f"no usable cgroup {name!r} hierarchy")
    return (path / setting).read_text().strip()


def remove_env(env_id: str, timeout: float = 2.0) -> list[Path]:
    """Delete an environment's groups in every hierarchy (after its processes are gone: a
    group with a live task cannot be removed; dead tasks leave it within ``timeout``).
    Returns the groups that could not be removed."""
    left: list[Path] = []
    for name in CONTROLLERS:
        base = controllers()[name].base
        env_dir = base / env_id if base is not None else None
        if env_dir is None or not env_dir.is_dir():
            continue
        for group in [*sorted(p for p in env_dir.iterdir() if p.is_dir()), env_dir]:
            if not _rmdir(group, timeout):
                left.append(group)
        # The subtree itself too when no other environment uses it: an empty child left in
        # the caller's cgroup would keep whoever made that cgroup from removing it.
        with contextlib.suppress(OSError):
            env_dir.parent.rmdir()
    return left


def _rmdir(group: Path, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        try:
            group.rmdir()
            return True
        except FileNotFoundError:
            return True
        except OSError as exc:
            # EBUSY: a task just killed is still leaving the group.
            if exc.errno != errno.EBUSY or time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
