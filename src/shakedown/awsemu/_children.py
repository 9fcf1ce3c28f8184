"""Processes the emulator starts (Lambda workers, EC2 instances' commands): each in a session
and process group of its own, with the emulator's environment (which carries the shakedown
environment tag the reaper and the leak guards look for) plus its own variables; and their
stop, SIGTERM to the group then SIGKILL."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any


def child_env(extra: Mapping[str, str]) -> dict[str, str]:
    """The emulator's own environment (tags, PATH, LANG: what the ``aws`` kind gave it) with
    ``extra`` on top. The tag variables are kept whatever ``extra`` says."""
    base = dict(os.environ)
    tags = {k: v for k, v in base.items() if k.startswith("SHAKEDOWN_")}
    base.pop("MOTO_PORT", None)
    return {**base, **extra, **tags}


def start_child(argv: Sequence[str], *, env: Mapping[str, str], cwd: Path | str,
                stdout: int | IO[Any] | None, pass_fds: Sequence[int] = ()
                ) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a new session (its own process group, so a stop reaches its
    children too); stdout and stderr go to ``stdout``."""
    return subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=stdout,
                            stderr=subprocess.STDOUT, env=dict(env), cwd=str(cwd),
                            start_new_session=True, pass_fds=tuple(pass_fds), close_fds=True)


def signal_group(pid: int, sig: int) -> bool:
    """Signal the process group led by ``pid``; False when it is gone."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def stop_child(popen: subprocess.Popen[bytes], grace: float) -> str:
    """SIGTERM the child's group (SIGCONT too: a paused child cannot act on it), SIGKILL it
    after ``grace`` seconds. Returns how it ended: "exited", "terminated" or "killed"."""
    if popen.poll() is not None:
        signal_group(popen.pid, signal.SIGKILL)  # whatever it left behind in its group
        return "exited"
    signal_group(popen.pid, signal.SIGTERM)
    signal_group(popen.pid, signal.SIGCONT)
    try:
        popen.wait(grace)
        how = "terminated"
    except subprocess.TimeoutExpired:
        how = "killed"
    signal_group(popen.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        popen.wait(5)
    return how


def kill_child(popen: subprocess.Popen[bytes]) -> None:
    """SIGKILL the child's group and reap it."""
    signal_group(popen.pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while popen.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)


def max_rss_mb(pid: int) -> int:
    """Peak resident memory of ``pid`` in MB (VmHWM), 0 when unknown."""
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return max(1, int(line.split()[1]) // 1024)
    except OSError:
        pass
    return 0
