"""The watchdog (testcontainers' reaper, without Docker): a small process started beside every
owned environment. It blocks reading a pipe whose other end only the owner holds; when the owner
dies, even by SIGKILL, the kernel closes that end, the read returns, and the watchdog reaps the
environment at once unless the owner took it down first.

Run as ``python -m shakedown.process._watchdog RECORD_PATH`` with the pipe on stdin.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from ._descendants import become_subreaper, note_spawned
from ._paths import TAG_VARIABLE
from ._reaper import reap_env
from ._records import EnvRecord


class Watchdog:
    """The owner's side: the pipe end it keeps open, and the watchdog process. Started in a
    thread so that forking it does not delay the servers' start (the pipe exists before any
    server does, so an owner that dies during start still closes it)."""

    def __init__(self, record_path: Path) -> None:
        self._read_end, self._write_end = os.pipe()
        self._proc: subprocess.Popen[bytes] | None = None
        self._thread = threading.Thread(target=self._start, args=(record_path,), daemon=True,
                                        name="shakedown-watchdog")
        self._thread.start()

    def _start(self, record_path: Path) -> None:
        env = {k: v for k, v in os.environ.items() if k != TAG_VARIABLE}
        log = record_path.parent / "watchdog.log"
        try:
            with log.open("ab") as out:
                self._proc = subprocess.Popen(
                    [sys.executable, "-m", "shakedown.process._watchdog", str(record_path)],
                    stdin=self._read_end, stdout=out, stderr=subprocess.STDOUT, env=env,
                    start_new_session=True,  # a Ctrl-C to the owner's terminal must not reach it
                )
            note_spawned(self._proc.pid)
        except FileNotFoundError:
            pass  # the environment failed and was cleaned up before this thread ran
        finally:
            os.close(self._read_end)

    def close(self, timeout: float = 5.0) -> None:
        """Tell the watchdog the owner is done (EOF) and wait for it to exit."""
        self._thread.join()
        if self._write_end >= 0:
            os.close(self._write_end)
            self._write_end = -1
        if self._proc is not None:
            try:
                self._proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()


def start_watchdog(record_path: Path) -> Watchdog:
    """Start the watchdog for the record; the owner keeps the returned handle until down."""
    return Watchdog(record_path)


def _main(record_path: Path) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    become_subreaper()  # what the reap below orphans comes back here, not to init
    while os.read(0, 4096):
        pass  # the owner never writes; EOF means it closed the pipe or died
    if not record_path.exists():
        return 0  # taken down cleanly
    record = EnvRecord.load(record_path)
    if record.detached:
        return 0
    report = reap_env(record, record_path.parent.parent)
    print(f"watchdog: owner {record.owner_pid} gone; reaped {report.environments}, "
          f"killed {len(report.killed)} processes", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(_main(Path(sys.argv[1])))
