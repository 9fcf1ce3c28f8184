"""The no-orphans checker: after an environment is torn down, no live process may still carry
its tag (the ``SHAKEDOWN_ENV_ID`` environment variable every spawned process inherits)."""

from __future__ import annotations

import os

import psutil

from shakedown.checkers._result import Result, invalid, valid

ENV_TAG = "SHAKEDOWN_ENV_ID"


def no_orphans(env_id: str, *, tag: str = ENV_TAG) -> Result:
    """Scan live processes for ``tag=env_id`` in their environment. The calling process and
    its ancestors (a test runner started by ``shakedown run`` carries the tag) are not
    orphans; zombies and processes whose environment cannot be read are counted apart."""
    exempt = _self_and_ancestors()
    found: list[str] = []
    scanned = unreadable = 0
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
        return invalid(
            f"{len(found)} processes of environment {env_id!r} still running:\n" + "\n".join(found),
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
