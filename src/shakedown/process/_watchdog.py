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
from pathlib import Path

from ._paths import TAG_VARIABLE
from ._reaper import reap_env
from ._records import EnvRecord


def start_watchdog(record_path: Path) -> tuple[subprocess.Popen[bytes], int]:
    """Start the watchdog for the record; return it and the pipe end the owner must keep."""
    read_end, write_end = os.pipe()
    env = {k: v for k, v in os.environ.items() if k != TAG_VARIABLE}
    log = record_path.parent / "watchdog.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "shakedown.process._watchdog", str(record_path)],
            stdin=read_end, stdout=out, stderr=subprocess.STDOUT, env=env,
            start_new_session=True,  # a Ctrl-C to the owner's terminal must not reach it
        )
    os.close(read_end)
    return proc, write_end


def _main(record_path: Path) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
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
