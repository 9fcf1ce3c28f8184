"""The owner of an environment is a child subreaper, so orphans of its servers come back to
it. Those that die must be reaped at once: an unreaped dead postmaster keeps its pid, and
Patroni restarting on that data directory takes the pid in postmaster.pid for a server that
is still starting (the failover tests hung on exactly that). Real processes, no mock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from shakedown.process import Spawned, become_subreaper, kill_group, spawn
from shakedown.process._descendants import ZOMBIE_SWEEP_SECONDS

# A parent that starts a child in a session of its own (as Patroni starts postgres), prints
# the child's pid and waits: killing the parent orphans the child.
ORPHANING_PARENT = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"],
                         start_new_session=True)
print(child.pid, flush=True)
time.sleep(300)
"""


def exists(pid: int) -> bool:
    """True while ``pid`` is in the process table, a zombie included."""
    return Path(f"/proc/{pid}").exists()


def child_pid_from(log: Path) -> int:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        text = log.read_text().strip()
        if text:
            return int(text.splitlines()[0])
        time.sleep(0.02)
    raise AssertionError(f"the parent never printed its child's pid: {log.read_text()!r}")


def start_orphaning_parent(tmp_path: Path) -> tuple[Spawned, int]:
    log = tmp_path / "parent.log"
    proc = spawn([sys.executable, "-c", ORPHANING_PARENT], role="parent", log_path=log,
                 env_id="subreaper-test", inherit_env=True)
    return proc, child_pid_from(log)


def test_kill_group_leaves_no_zombie_of_an_orphan_in_its_own_session(tmp_path: Path) -> None:
    assert become_subreaper()
    proc, child = start_orphaning_parent(tmp_path)
    assert os.getpgid(child) != proc.pgid  # out of the group: only descendants reach it
    kill_group(proc)
    assert not exists(child), "the orphan's pid is still taken (an unreaped zombie)"


def test_an_orphan_that_dies_later_is_reaped_by_the_sweeper(tmp_path: Path) -> None:
    assert become_subreaper()
    proc, child = start_orphaning_parent(tmp_path)
    os.kill(proc.pid, signal.SIGKILL)  # the parent alone: its child is orphaned to us
    assert proc.popen is not None
    proc.popen.wait(timeout=10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _parent_of(child) != os.getpid():
        time.sleep(0.01)
    assert _parent_of(child) == os.getpid(), "the orphan did not come back to the subreaper"
    time.sleep(3 * ZOMBIE_SWEEP_SECONDS)  # a sweep notes it (by its tag) while it lives
    os.kill(child, signal.SIGKILL)
    deadline = time.monotonic() + 20 * ZOMBIE_SWEEP_SECONDS
    while time.monotonic() < deadline and exists(child):
        time.sleep(0.01)
    assert not exists(child), "the dead orphan was never reaped"


def _parent_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    return int(stat[stat.rfind(b")") + 2:].split()[1])


def test_a_child_this_process_started_is_left_to_its_popen() -> None:
    """The sweeper reaps orphans only: ``Popen`` still gets its own child's exit status."""
    assert become_subreaper()
    child = subprocess.Popen([sys.executable, "-c", "raise SystemExit(7)"],
                             start_new_session=True)
    time.sleep(4 * ZOMBIE_SWEEP_SECONDS)
    assert child.wait(timeout=10) == 7
