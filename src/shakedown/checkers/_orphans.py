"""The no-orphans checker: after an environment is torn down, no live process may still carry
its tag (the ``SHAKEDOWN_ENV_ID`` environment variable every spawned process inherits); and,
while it runs, no EC2 instance or ECS task of an ``aws`` service may outlive the test (not
terminated / STOPPED, or its process group still alive) nor any Lambda worker be left running
an invocation."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any, Protocol, runtime_checkable

import psutil

from shakedown.checkers._result import Result, invalid, valid

ENV_TAG = "SHAKEDOWN_ENV_ID"


@runtime_checkable
class ComputeView(Protocol):
    """What the checker reads of an ``aws`` service: its name and ``compute()`` snapshot."""

    name: str

    def compute(self) -> dict[str, Any]: ...


def no_orphans(env_id: str | None, *, tag: str = ENV_TAG,
               compute: ComputeView | Iterable[ComputeView] = (),
               idle_workers: bool = True) -> Result:
    """Scan live processes for ``tag=env_id`` in their environment (skipped when ``env_id``
    is None: while the environment runs every service carries it). The calling process and
    its ancestors (a test runner started by ``shakedown run`` carries the tag) are not
    orphans; zombies and processes whose environment cannot be read are counted apart.

    ``compute``: ``aws`` services whose instances must all be terminated, with no process
    left in their groups, and whose Lambda workers must be idle (or gone, with
    ``idle_workers=False``: after a reset)."""
    views: list[ComputeView] = [compute] if isinstance(compute, ComputeView) else list(compute)
    found = [line for view in views for line in _compute_orphans(view, idle_workers)]
    counted = len(found)
    scanned = unreadable = 0
    if env_id is None:
        counts = {"scanned": 0, "orphans": len(found), "unreadable": 0}
        if found:
            return invalid(f"{len(found)} compute resources outlive the test:\n"
                           + "\n".join(found), counts, orphans=found)
        return valid(f"no instance or busy Lambda worker left in "
                     f"{', '.join(v.name for v in views) or 'no service'}", counts)
    exempt = _self_and_ancestors()
    for process in psutil.process_iter(["pid", "cmdline", "status"]):
        if process.pid in exempt or process.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        scanned += 1
        try:
            tagged = process.environ().get(tag) == env_id
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            unreadable += 1
            continue
        if tagged:
            found.append(f"pid {process.pid}: {_command_line(process)}")
    counts = {"scanned": scanned, "orphans": len(found), "unreadable": unreadable}
    if found:
        what = f"{len(found) - counted} processes of environment {env_id!r} still running" \
            + (f" and {counted} compute resources" if counted else "")
        return invalid(
            f"{what}:\n" + "\n".join(found),
            counts,
            orphans=found,
        )
    return valid(
        f"no process carries {tag}={env_id} ({scanned} scanned, {unreadable} unreadable)", counts
    )


def _self_and_ancestors() -> set[int]:
    me = psutil.Process(os.getpid())
    return {me.pid, *(p.pid for p in me.parents())}


def _command_line(process: psutil.Process) -> str:
    cmdline: list[str] = process.info.get("cmdline") or []
    return " ".join(cmdline) or f"[{process.info.get('name') or process.pid}]"


def _compute_orphans(view: ComputeView, idle_workers: bool) -> list[str]:
    snapshot = view.compute()
    found = []
    for instance in snapshot.get("instances", []):
        where = f"{view.name}: instance {instance['instance_id']} ({instance['image_id']})"
        if instance["state"] != "terminated":
            found.append(f"{where} is {instance['state']}, pid {instance['pid']}")
        elif instance.get("pgid") and _group_alive(int(instance["pgid"])):
            found.append(f"{where} is terminated but processes of its group "
                         f"{instance['pgid']} live on")
    for task in snapshot.get("tasks", []):
        where = f"{view.name}: ECS task {task['task_id']} ({task['group']})"
        if task["state"] != "STOPPED":
            found.append(f"{where} is {task['state']}, pids "
                         f"{[c['pid'] for c in task['containers']]}")
        elif any(c.get("pgid") and _group_alive(int(c["pgid"])) for c in task["containers"]):
            found.append(f"{where} is STOPPED but processes of its containers live on")
    for worker in snapshot.get("workers", []):
        if not worker.get("alive"):
            continue
        if worker.get("busy") or not idle_workers:
            state = "running an invocation" if worker.get("busy") else "alive"
            found.append(f"{view.name}: Lambda worker of {worker['function']} (pid "
                         f"{worker['pid']}) still {state}")
    return found


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return any(p.info["status"] != psutil.STATUS_ZOMBIE
               for p in psutil.process_iter(["status"]) if _pgid(p.pid) == pgid)


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None
