"""Generated secrets (issue 17 item 3) for the kinds that generate one cheaply here (postgres,
redis): no process's command line holds one (read from /proc/PID/cmdline, what ``ps`` shows
every local user), the state file and the environment record are 0600 and owned by the
invoking user, and the CLI's status output masks them."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from bounds import hang_bound
from shakedown.environment import Environment

TOPOLOGY = """
[services.db]
kind = "postgres"
[services.cache]
kind = "redis"
"""


def _command_lines() -> list[bytes]:
    lines = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                lines.append(Path(f"/proc/{entry}/cmdline").read_bytes())
            except OSError:
                continue
    return lines


def test_no_secret_on_a_command_line_and_private_files(
    write_topology: Callable[..., Path], runtime_root: Path
) -> None:
    path = write_topology(TOPOLOGY)
    with Environment.from_file(path, "secrets") as env:
        secrets = {name: env[name].exports()["password"] for name in ("db", "cache")}
        assert all(len(s) >= 16 for s in secrets.values()), secrets
        for name, secret in secrets.items():
            holders = [c for c in _command_lines() if secret.encode() in c]
            assert not holders, f"{name}'s password on a command line: {holders}"
        record = runtime_root / env.env_id / "env.json"
        for private in (env.paths.state_file, record):
            info = private.stat()
            assert stat.S_IMODE(info.st_mode) == 0o600, (private, oct(info.st_mode))
            assert info.st_uid == os.geteuid(), private
        status = subprocess.run([sys.executable, "-m", "shakedown", "status", "--name",
                                 "secrets"], cwd=path.parent, capture_output=True, text=True,
                                env={**os.environ, "COLUMNS": "250"}, timeout=hang_bound(60),
                                check=False)
        assert status.returncode == 0, status.stderr
        assert "***" in status.stdout
        for secret in secrets.values():
            assert secret not in status.stdout + status.stderr
