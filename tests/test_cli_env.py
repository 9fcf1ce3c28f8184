"""``shakedown env`` as clients use it: its output, evaluated as is by a shell, drives the real
clients the packages install (psql, pgbench, redis-cli, redis-benchmark, etcdctl, patronictl,
boto3 and the AWS CLI) against every kind of one environment; the formats, the prefix, the
clash warnings, ``status --json`` and bad options are checked on the same environment."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from shakedown.cli_env import EnvOutput, clash_warnings, render, tool_reading, variable_name

CLI = [sys.executable, "-m", "shakedown"]
PATRONICTL = Path("/opt/shakedown/patroni-venv/bin/patronictl")
TOPOLOGY = """
[services.kv]
kind = "etcd"
[services.db]
kind = "postgres-ha"
etcd = "kv"
members = 2
databases = ["app"]
[services.lb]
kind = "haproxy"
backend = "db"
[services.cache]
kind = "redis"
[services.pg]
kind = "postgres"
databases = ["app"]
[services.pool]
kind = "pgbouncer"
backend = "pg"
[services.cloud]
kind = "aws"
services = ["s3"]
"""


def shakedown(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "100"}, timeout=300, check=False)


def shell(script: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``script`` in bash after ``eval "$(shakedown env ...)"``: the output used as is."""
    path = f"{Path(sys.executable).parent}:{PATRONICTL.parent}:{os.environ['PATH']}"
    return subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=cwd,
                          capture_output=True, text=True, timeout=300, check=False,
                          env={**os.environ, "PATH": path, "AWS_CONFIG_FILE": "/dev/null",
                               "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"})


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    cwd = tmp_path_factory.mktemp("env")
    (cwd / "shakedown.toml").write_text(TOPOLOGY)
    up = shakedown("up", "--detach", "--name", "clients", cwd=cwd)
    try:
        assert up.returncode == 0, up.stderr
        yield cwd
    finally:
        down = shakedown("down", "--name", "clients", cwd=cwd)
        assert down.returncode == 0, down.stderr


EVAL = 'eval "$(python -m shakedown env --name clients --libpq {libpq} --aws cloud)"\n'


def test_postgres_clients_with_env_output_as_is(project: Path) -> None:
    script = EVAL.format(libpq="lb.replica_url") + """
psql -Atc 'select pg_is_in_recovery()'                       # bare psql: PG* of lb's replica port
psql "$LB_URL" -Atc 'select pg_is_in_recovery()'
psql "$DB_REPLICA_URL" -Atc 'select pg_is_in_recovery()'
psql "$POOL_URL" -Atc 'select 40 + 2'
psql "$PG_DSN" -Atc 'select current_database()'
pgbench -i -q "$PG_URL" 2>/dev/null
pgbench -n -t 3 "$POOL_URL" | grep 'actually processed'
"""
    result = shell(script, project)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:5] == ["t", "f", "t", "42", "app"]
    assert "number of transactions actually processed: 3/3" in result.stdout


def test_redis_etcd_patroni_aws_clients(project: Path) -> None:
    assert PATRONICTL.exists(), "bootstrap installs Patroni in /opt/shakedown/patroni-venv"
    script = EVAL.format(libpq="db") + """
redis-cli -u "$CACHE_URL" set k v >/dev/null && redis-cli -u "$CACHE_URL" get k
redis-benchmark -u "$CACHE_URL" -n 20 -c 1 -t set -q >/dev/null && echo benchmark-ok
etcdctl --endpoints "$KV_ENDPOINTS" put answer 42 >/dev/null
etcdctl --endpoints "$KV_URL" get answer --print-value-only
patronictl list -f json                                  # PATRONICTL_CONFIG_FILE
echo ---
patronictl -c "$DB_PATRONICTL_CONFIG" topology >/dev/null && echo topology-ok
python -c "import boto3; boto3.client('s3').create_bucket(Bucket='from-boto3')"
""" + ("aws s3 ls\n" if shutil.which("aws") else "")
    result = shell(script, project)
    assert result.returncode == 0, result.stderr
    before, after = result.stdout.split("---\n")
    lines = before.splitlines()
    assert lines[:3] == ["v", "benchmark-ok", "42"]
    members = json.loads("\n".join(lines[3:]))
    assert sorted(m["Role"] for m in members) == ["Leader", "Replica"]
    assert "topology-ok" in after
    if shutil.which("aws"):
        assert "from-boto3" in after


def test_formats_prefix_and_warnings(project: Path) -> None:
    dotenv = shakedown("env", "--name", "clients", "--format", "dotenv", cwd=project)
    assert dotenv.returncode == 0 and "export" not in dotenv.stdout
    pairs = dict(line.split("=", 1) for line in dotenv.stdout.splitlines()
                 if not line.startswith("#"))
    assert pairs["DB_DSN"].startswith("'host=") and pairs["LB_REPLICA_PORT"].isdigit()
    data = json.loads(shakedown("env", "--name", "clients", "--format", "json",
                                cwd=project).stdout)
    assert data["variables"]["LB_REPLICA_URL"] == data["services"]["lb"]["exports"][
        "replica_url"]
    assert any("db and lb" in note for note in data["notes"])  # HA_URL == LB_URL, said so
    config = Path(data["services"]["db"]["patronictl_config"])
    assert config.stat().st_mode & 0o777 == 0o600 and config.stat().st_uid == os.getuid()
    assert data["warnings"] == []  # no service here is named like a tool's variable
    prefixed = shakedown("env", "--name", "clients", "--prefix", "SD_", cwd=project)
    assert all(line.startswith(("export SD_", "export PATRONICTL_", "#"))
               for line in prefixed.stdout.splitlines())
    status = json.loads(shakedown("status", "--name", "clients", "--json", cwd=project).stdout)
    assert status["services"]["cache"]["state"] == "running" and status["services"]["cache"][
        "pids"]
    assert status["variables"]["CACHE_URL"] == data["variables"]["CACHE_URL"]
    wide = shakedown("status", "--name", "clients", "--wide", cwd=project)
    port = status["services"]["cache"]["exports"]["port"]
    masked = [line for line in wide.stdout.splitlines() if line.lstrip("│ ").startswith("cache")]
    assert len(masked) == 1 and f"redis://default:***@127.0.0.1:{port}/0" in masked[0]


@pytest.mark.parametrize("args, message", [
    (["--libpq", "cache"], "is not reached with a postgresql:// URL"),
    (["--libpq", "nosuch"], "no service named 'nosuch'"),
    (["--aws", "pg"], "is not an aws service"),
    (["--patronictl", "pg"], "is not a postgres-ha service"),
    (["--prefix", "9x"], "cannot start a shell variable name"),
])
def test_bad_options_exit_2_with_a_message(project: Path, args: list[str], message: str) -> None:
    result = shakedown("env", "--name", "clients", *args, cwd=project)
    assert result.returncode == 2 and message in result.stderr and not result.stdout
    assert "Traceback" not in result.stderr


def test_clash_rule_and_list() -> None:
    assert variable_name("", "my-db", "replica_url") == "MY_DB_REPLICA_URL"
    assert variable_name("sd_", "kv", "endpoints") == "SD_KV_ENDPOINTS"
    assert tool_reading("DCS_URL") is not None and tool_reading("KV_URL") is None
    assert tool_reading("AWS_REGION") is not None and tool_reading("PATRONI_X") is not None
    warned = clash_warnings("", {"dcs": {"url": "http://x"}, "kv": {"url": "http://x"}})
    assert len(warned) == 1 and "DCS_URL" in warned[0] and "patronictl" in warned[0]
    assert clash_warnings("SD_", {"dcs": {"url": "http://x"}}) == []


def test_dotenv_and_shell_quoting_round_trip(tmp_path: Path) -> None:
    values = {"A_PLAIN": "postgresql://u:p@h:1/d", "A_SPACE": "host=h port=1",
              "A_QUOTE": "it's $HOME \\ \"x\""}
    out = EnvOutput(name="n", env_id="i", variables=values)
    script = tmp_path / "env.sh"
    script.write_text(render(out, "shell"))
    read = subprocess.run(["bash", "-c", f". {script}; printf '%s\\n' \"$A_PLAIN\" "
                           "\"$A_SPACE\" \"$A_QUOTE\""], capture_output=True, text=True,
                          check=True)
    assert read.stdout.splitlines() == list(values.values())
    from dotenv import dotenv_values  # python-dotenv, as .env-reading tools parse

    (tmp_path / ".env").write_text(render(out, "dotenv"))
    assert dotenv_values(tmp_path / ".env") == values
