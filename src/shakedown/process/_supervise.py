"""The restart supervisor: a small process that runs a user's command and starts it again when
it exits, as a container runtime's restart policy does (``on-failure``: a non-zero exit or a
death by signal; ``always``: any exit), after a backoff that doubles from ``--backoff`` up to
``--max-backoff`` and falls back to the first delay once the command has run ``--reset-after``
seconds; ``--max-restarts`` bounds the restarts in a row (then the supervisor exits with the
command's code, so a readiness wait that watches it fails at once).

It is a process of its own, not a thread of the test runner, so that an environment brought up
with ``shakedown up --detach`` keeps its policy after the CLI exits. The command runs in the
supervisor's process group: a stop of the group (``down``, ``faults.stop``) reaches both, and
the supervisor, told to stop, does not restart. A kill of the command alone (``faults.kill``: a
crash) is a failure the policy answers.

It writes its state (command pid, restarts, last exit) to ``--status`` as JSON after every
change, and each restart to the environment's history (``--history``, shared with the owner as
``shakedown fault`` is) as a ``service`` event ``restarted``.

Run as ``python -m shakedown.process._supervise [options] -- ARGV...``."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..history import NEMESIS, History

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)


@dataclass
class SupervisorState:
    """What the supervisor tells the service (read back with :func:`read_status`)."""

    policy: str
    pid: int = 0
    restarts: int = 0
    state: str = "starting"  # running | backoff | stopped | gave-up
    last_exit: int | None = None
    exits: list[int] = field(default_factory=list)


def read_status(path: Path) -> SupervisorState | None:
    """The supervisor's last state, or None before it wrote one (or when it is unreadable)."""
    try:
        data = json.loads(path.read_text())
        return SupervisorState(**data)
    except (OSError, ValueError, TypeError):
        return None


def should_restart(policy: str, code: int) -> bool:
    """Docker's rule: ``always`` restarts on any exit, ``on-failure`` on a non-zero one (a
    negative code is a death by signal, also a failure)."""
    return policy == "always" or (policy == "on-failure" and code != 0)


def backoff_delay(first: float, ceiling: float, in_a_row: int) -> float:
    """The delay before restart number ``in_a_row`` (0-based): doubling, bounded."""
    return float(min(ceiling, first * (2 ** min(in_a_row, 30))))


class Supervisor:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.status_path = Path(args.status)
        self.state = SupervisorState(policy=args.policy)
        self.stopping = threading.Event()
        self.child: subprocess.Popen[bytes] | None = None
        self.history = (History(Path(args.history), origin=args.origin)
                        if args.history else None)

    def write(self) -> None:
        tmp = self.status_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self.state)))
        os.replace(tmp, self.status_path)

    def event(self, event: str, **value: Any) -> None:
        if self.history is not None:
            self.history.append(NEMESIS, "info", "service",
                                {"target": self.args.service, "event": event, **value})

    def on_signal(self, _signum: int, _frame: object) -> None:
        # Stops act on the whole process group, so the command got the same signal: it is
        # not sent again (a second SIGINT would interrupt a Python program's own cleanup).
        self.stopping.set()

    def run(self) -> int:
        in_a_row = 0
        while True:
            began = time.monotonic()
            self.child = subprocess.Popen(self.args.argv)
            self.state.pid, self.state.state = self.child.pid, "running"
            self.write()
            code = self.child.wait()
            self.state.last_exit = code
            self.state.exits.append(code)
            if self.stopping.is_set() or not should_restart(self.args.policy, code):
                self.state.state = "stopped"
                self.write()
                return _exit_status(code)
            if time.monotonic() - began >= self.args.reset_after:
                in_a_row = 0
            if self.args.max_restarts is not None and in_a_row >= self.args.max_restarts:
                self.state.state = "gave-up"
                self.write()
                self.event("gave-up", restarts=self.state.restarts, exit_code=code)
                return _exit_status(code)
            delay = backoff_delay(self.args.backoff, self.args.max_backoff, in_a_row)
            self.state.state = "backoff"
            self.write()
            if self.stopping.wait(delay):
                self.state.state = "stopped"
                self.write()
                return _exit_status(code)
            in_a_row += 1
            self.state.restarts += 1
            self.event("restarted", restarts=self.state.restarts, exit_code=code,
                       backoff=delay)


def _exit_status(code: int) -> int:
    return 128 - code if code < 0 else code


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="shakedown.process._supervise")
    parser.add_argument("--policy", choices=("on-failure", "always"), required=True)
    parser.add_argument("--status", required=True)
    parser.add_argument("--backoff", type=float, default=0.1)
    parser.add_argument("--max-backoff", type=float, default=5.0)
    parser.add_argument("--reset-after", type=float, default=10.0)
    parser.add_argument("--max-restarts", type=int, default=None)
    parser.add_argument("--history", default="")
    parser.add_argument("--origin", type=float, default=None)
    parser.add_argument("--service", default="")
    parser.add_argument("argv", nargs="+")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    supervisor = Supervisor(_parse(sys.argv[1:] if argv is None else argv))
    for sig in (*STOP_SIGNALS, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, supervisor.on_signal)
    return supervisor.run()


if __name__ == "__main__":
    sys.exit(main())
