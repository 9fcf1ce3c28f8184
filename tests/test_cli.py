"""The CLI against real servers: up/status/env/logs/down, the foreground owner, doctor, and
bad input that exits non-zero with a readable message and leaves nothing behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from shakedown.process import tagged_processes

CLI = [sys.executable, "-m", "shakedown"]


def shakedown(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "200"}, timeout=60, check=False)


TOPOLOGY = """
[services.db]
kind = "postgres"
databases = ["app"]
[services.cache]
kind = "redis"
"""


def test_up_status_env_logs_down(write_topology: Callable[..., Path], runtime_root: Path) -> None:
    cwd = write_topology(TOPOLOGY).parent
    up = shakedown("up", "--detach", "--name", "ci", cwd=cwd)
    assert up.returncode == 0, up.stderr
    assert "ready in" in up.stdout and "postgresql://postgres:***@127.0.0.1:" in up.stdout

    status = shakedown("status", "--name", "ci", cwd=cwd)
    assert status.returncode == 0, status.stderr
    assert status.stdout.count("running") == 2 and "***" in status.stdout

    env = shakedown("env", "--name", "ci", cwd=cwd)
    lines = dict(line.removeprefix("export ").split("=", 1) for line in env.stdout.splitlines()
                 if not line.startswith("#"))
    assert {"DB_URL", "CACHE_URL"} <= set(lines)
    assert lines["DB_URL"].startswith("postgresql://postgres:")
    assert "***" not in lines["DB_URL"]  # env is for eval: the real URL

    logs = shakedown("logs", "db", "--name", "ci", "-n", "20", cwd=cwd)
    assert "database system is ready to accept connections" in logs.stdout

    down = shakedown("down", "--name", "ci", cwd=cwd)
    assert down.returncode == 0, down.stderr
    assert not tagged_processes(root=runtime_root)
    assert not (cwd / ".shakedown" / "envs" / "ci").exists()


def test_foreground_up_takes_down_on_sigterm(
    write_topology: Callable[..., Path], runtime_root: Path
) -> None:
    cwd = write_topology(TOPOLOGY).parent
    owner = subprocess.Popen([*CLI, "up"], cwd=cwd, stdout=subprocess.PIPE, text=True,
                             env=os.environ.copy())
    assert owner.stdout is not None
    for line in owner.stdout:
        if "Press Ctrl-C" in line:
            break
    assert len(tagged_processes(root=runtime_root)) >= 2
    owner.send_signal(signal.SIGTERM)
    assert owner.wait(timeout=20) == 0
    assert not tagged_processes(root=runtime_root)


def test_bad_topology_exits_2_with_message_and_leaves_nothing(
    write_topology: Callable[..., Path], runtime_root: Path
) -> None:
    cwd = write_topology(TOPOLOGY.replace('databases = ["app"]', 'databasez = ["app"]')).parent
    result = shakedown("up", "--detach", cwd=cwd)
    assert result.returncode == 2
    assert "services.db.databasez: unknown key" in result.stderr
    assert "did you mean 'databases'?" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (cwd / ".shakedown" / "envs").exists() or \
        not list((cwd / ".shakedown" / "envs").iterdir())
    assert [p.name for p in runtime_root.iterdir() if p.name != "ports"] == []


def test_service_failure_exits_1_with_log_tail(
    write_topology: Callable[..., Path], runtime_root: Path
) -> None:
    cwd = write_topology(TOPOLOGY + '[services.db.settings]\nmax_connections = "many"\n').parent
    result = shakedown("up", "--detach", cwd=cwd)
    assert result.returncode == 1
    assert "postgres exited while starting" in result.stderr
    assert "max_connections" in result.stderr  # postgres's own complaint from the log
    assert "Traceback" not in result.stderr
    assert not tagged_processes(root=runtime_root)  # the CLI exited after stopping them


def test_commands_on_a_missing_environment(tmp_path: Path) -> None:
    for command in (["down"], ["status"], ["env"], ["logs", "db"]):
        result = shakedown(*command, "--name", "nope", cwd=tmp_path)
        assert result.returncode == 1, command
        assert "no environment named 'nope'" in result.stderr
        assert "shakedown up --name nope" in result.stderr


def test_missing_topology_file(tmp_path: Path) -> None:
    result = shakedown("up", cwd=tmp_path)
    assert result.returncode == 2
    assert "shakedown.toml: topology file not found" in result.stderr


def test_doctor_lists_binaries_and_versions(tmp_path: Path) -> None:
    # This machine has every server (the test command is strict): doctor says so, exit 0.
    result = shakedown("doctor", cwd=tmp_path)
    assert result.returncode == 0, result.stdout
    assert "PostgreSQL 15" in result.stdout and "Redis server v=" in result.stdout
    assert "missing" not in result.stdout and "install what is missing" not in result.stdout


def test_doctor_names_what_is_missing_and_exits_1(tmp_path: Path) -> None:
    result = subprocess.run([*CLI, "doctor"], cwd=tmp_path, capture_output=True, text=True,
                            env={**os.environ, "COLUMNS": "200",
                                 "SHAKEDOWN_PATRONI": "/nonexistent/patroni-venv"},
                            timeout=60, check=False)
    assert result.returncode == 1, result.stdout
    patroni = next(line for line in result.stdout.splitlines() if "patroni" in line)
    assert "missing" in patroni
    assert "install what is missing with:" in result.stdout
    assert "/opt/shakedown/patroni-venv" in result.stdout.split("install what is missing")[1]


def test_reap_with_nothing_to_do(tmp_path: Path) -> None:
    result = shakedown("reap", cwd=tmp_path)
    assert result.returncode == 0 and "nothing to reap" in result.stdout
