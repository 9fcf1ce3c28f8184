"""Environment lifecycle: dependency order and parallel start, bad input that fails cleanly,
owners that die, and repeated up/down cycles that must leak nothing."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from shakedown.environment import Environment
from shakedown.errors import (
    EnvironmentStateError,
    MissingBinaryError,
    PortInUseError,
    ServiceStartError,
)
from shakedown.process import kill_group, port_is_free, spawn, tagged_processes, wait_ready
from shakedown.waits import eventually


def assert_nothing_left(runtime_root: Path, topology_path: Path) -> None:
    assert not tagged_processes(root=runtime_root), "a process outlived its environment"
    leftovers = [p.name for p in runtime_root.iterdir() if p.name != "ports"]
    assert leftovers == [], f"environment directories left in {runtime_root}: {leftovers}"
    ports = runtime_root / "ports"
    assert not ports.exists() or not list(ports.iterdir()), "port locks left"
    envs = topology_path.parent / ".shakedown" / "envs"
    assert not envs.exists() or not list(envs.iterdir()), f"state left in {envs}"


def test_independent_services_start_in_parallel_dependents_after(
    write_topology: Callable[..., Path],
) -> None:
    path = write_topology("""
        [services.a]
        kind = "postgres"
        [services.b]
        kind = "postgres"
        [services.app]
        kind = "process"
        command = ["python3", "-m", "http.server", "{port}", "--bind", "127.0.0.1"]
        env = { A = "{a.url}", B = "{b.url}" }
        """)
    with Environment.from_file(path) as env:
        events = [(e.service, e.event) for e in env.events]
    first_ready = min(events.index(("a", "ready")), events.index(("b", "ready")))
    assert events.index(("a", "starting")) < first_ready
    assert events.index(("b", "starting")) < first_ready, "a and b must start together"
    assert events.index(("app", "starting")) > events.index(("a", "ready"))
    assert events.index(("app", "starting")) > events.index(("b", "ready"))
    assert set(env.measurements()) == {"a.ready", "b.ready", "app.ready"}


def test_missing_binary_fails_cleanly(
    write_topology: Callable[..., Path], runtime_root: Path
) -> None:
    path = write_topology("""
        [services.cache]
        kind = "redis"
        [services.db]
        kind = "postgres"
        bin_dir = "/nonexistent/bin"
        """)
    with pytest.raises(MissingBinaryError) as info:
        Environment.from_file(path).up()
    message = str(info.value)
    assert "postgres not found" in message and "apt-get install -y postgresql" in message
    assert "/nonexistent/bin" in message
    assert_nothing_left(runtime_root, path)


def test_fixed_port_in_use(write_topology: Callable[..., Path], runtime_root: Path) -> None:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    path = write_topology(f'[services.cache]\nkind = "redis"\nport = {port}\n')
    try:
        with pytest.raises(PortInUseError) as info:
            Environment.from_file(path).up()
    finally:
        holder.close()
    assert f"port {port} asked for by service 'cache' is in use" in str(info.value)
    assert "ss -ltnp" in str(info.value)
    assert_nothing_left(runtime_root, path)


def test_service_that_dies_while_starting(
    write_topology: Callable[..., Path], runtime_root: Path
) -> None:
    path = write_topology("""
        [services.db]
        kind = "postgres"
        [services.api]
        kind = "process"
        command = ["python3", "-c", "import sys; print('cannot bind: boom'); sys.exit(3)"]
        depends_on = ["db"]
        """)
    with pytest.raises(ServiceStartError) as info:
        Environment.from_file(path).up()
    message = str(info.value)
    assert "service 'api': python3 exited while starting (exit code 3)" in message
    assert "cannot bind: boom" in message  # the log tail is attached
    assert "readiness: TCP connect" in message
    assert_nothing_left(runtime_root, path)


def test_service_that_never_gets_ready(
    write_topology: Callable[..., Path], runtime_root: Path
) -> None:
    path = write_topology("""
        [services.api]
        kind = "process"
        command = ["python3", "-m", "http.server", "{port}", "--bind", "127.0.0.1"]
        ready = { http = "/health" }
        ready_timeout = "1s"
        """)
    began = time.monotonic()
    with pytest.raises(ServiceStartError) as info:
        Environment.from_file(path).up()
    # Gave up at its ready_timeout (1 s), not at the default 30 s.
    assert time.monotonic() - began < 30
    message = str(info.value)
    assert "service 'api' not ready after 1.0s" in message
    assert "404, expected 200" in message and "attempts" in message
    assert "raise ready_timeout" in message
    assert_nothing_left(runtime_root, path)


def test_processes_sharing_a_log_show_it_once(tmp_path: Path) -> None:
    """Cluster members write one log: a timeout names it and shows its tail once, not once
    per member (three identical blocks hid the line that mattered)."""
    log = tmp_path / "db.log"
    members = [spawn([sys.executable, "-c", f"print('member {i} up', flush=True); "
                      "import time; time.sleep(60)"], role=f"db{i}", log_path=log,
                     env_id="shared-log") for i in range(3)]
    try:
        eventually(lambda: log.read_text().count(" up") == 3, timeout=10)
        with pytest.raises(ServiceStartError) as info:
            wait_ready(lambda: False, service="db", check="never", timeout=0.2, watch=members)
    finally:
        for member in members:
            kill_group(member)
    message = str(info.value)
    assert message.count(f"log: {log}") == 1, message
    assert message.count(f"--- last lines of {log} ---") == 1, message
    assert all(f"member {i} up" in message for i in range(3))


def test_postgres_setting_that_breaks_start(
    write_topology: Callable[..., Path], runtime_root: Path
) -> None:
    path = write_topology('[services.db]\nkind = "postgres"\n'
                          '[services.db.settings]\nshared_buffers = "lots"\n')
    with pytest.raises(ServiceStartError) as info:
        Environment.from_file(path).up()
    assert "postgres exited while starting" in str(info.value)
    assert "shared_buffers" in str(info.value)  # postgres's own reason, from the log
    assert_nothing_left(runtime_root, path)


def test_init_file_error(write_topology: Callable[..., Path], runtime_root: Path) -> None:
    path = write_topology('[services.db]\nkind = "postgres"\ninit = ["bad.sql"]\n',
                          bad__sql="CREATE TABLE ok (id int);\nSELEC 1;\n")
    with pytest.raises(ServiceStartError) as info:
        Environment.from_file(path).up()
    assert "init file" in str(info.value) and "bad.sql" in str(info.value)
    assert 'syntax error at or near "SELEC"' in str(info.value)
    assert_nothing_left(runtime_root, path)


def test_second_up_with_same_name_is_refused(write_topology: Callable[..., Path]) -> None:
    path = write_topology('[services.cache]\nkind = "redis"\n')
    with Environment.from_file(path) as env:
        with pytest.raises(EnvironmentStateError, match="already running"):
            Environment.from_file(path).up()
        with Environment.from_file(path, name="other") as other:
            assert other.env_id != env.env_id
            assert other["cache"].port != env["cache"].port
            assert other["cache"].status() == env["cache"].status() == "running"


def test_attach_by_name_from_state(write_topology: Callable[..., Path]) -> None:
    path = write_topology('[services.db]\nkind = "postgres"\n')
    with Environment.from_file(path, name="mine") as env:
        attached = Environment.attach("mine", path.parent / ".shakedown")
        assert attached["db"].url == env["db"].url
        assert attached["db"].pids == env["db"].pids
        assert attached["db"].status() == "running"
    with pytest.raises(EnvironmentStateError, match="no environment named 'mine'"):
        Environment.attach("mine", path.parent / ".shakedown")


OWNER = """
import sys, time
from shakedown.environment import Environment
env = Environment.from_file(sys.argv[1]).up()
print(env.env_id, flush=True)
time.sleep(120)
"""


def pids_with_in_cmdline(text: str) -> list[int]:
    """Processes whose command line contains ``text`` (processes may end while we look)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if text.encode() in Path(f"/proc/{entry}/cmdline").read_bytes():
                found.append(int(entry))
        except OSError:
            continue
    return found


def _start_owner(path: Path) -> tuple[subprocess.Popen[str], str]:
    owner = subprocess.Popen([sys.executable, "-c", OWNER, str(path)], stdout=subprocess.PIPE,
                             text=True, env=os.environ.copy())
    assert owner.stdout is not None
    env_id = owner.stdout.readline().strip()
    assert env_id, "the owner did not bring the environment up"
    return owner, env_id


TWO_SERVERS = '[services.db]\nkind = "postgres"\n[services.cache]\nkind = "redis"\n'


def test_kill_9_of_owner_is_reaped_by_the_watchdog(
    write_topology: Callable[..., Path], runtime_root: Path
) -> None:
    path = write_topology(TWO_SERVERS)
    owner, env_id = _start_owner(path)
    assert len(tagged_processes(env_id)) >= 2
    record = runtime_root / env_id / "env.json"
    owner.send_signal(signal.SIGKILL)
    owner.wait()
    # Nothing else reaps here (no up, no reap): only the watchdog can (how fast: a hang bound).
    # It removes the directory before its last cleanup (cgroups, kernel tables) and its exit:
    # done means the watchdog is gone too.
    eventually(lambda: not tagged_processes(env_id) and not (runtime_root / env_id).exists()
               and not pids_with_in_cmdline(str(record)),
               timeout=10, description="the watchdog reaped the environment and exited")
    assert_nothing_left(runtime_root, path)


def test_kill_9_of_owner_and_watchdog_then_reap(
    write_topology: Callable[..., Path], runtime_root: Path
) -> None:
    path = write_topology(TWO_SERVERS)
    owner, env_id = _start_owner(path)
    record = runtime_root / env_id / "env.json"
    watchdogs = pids_with_in_cmdline(str(record))
    assert len(watchdogs) == 1
    os.kill(watchdogs[0], signal.SIGKILL)
    owner.send_signal(signal.SIGKILL)
    owner.wait()
    eventually(lambda: not pids_with_in_cmdline(str(record)), timeout=10,
               description="the watchdog is gone")
    assert tagged_processes(env_id), "with no watchdog the servers are still there"
    result = subprocess.run([sys.executable, "-m", "shakedown.cli", "reap"], capture_output=True,
                            text=True, env=os.environ.copy(), check=False)
    assert result.returncode == 0, result.stderr
    assert f"reaped default ({env_id})" in result.stdout
    assert_nothing_left(runtime_root, path)


def test_next_up_reaps_a_dead_owners_environment(
    write_topology: Callable[..., Path], runtime_root: Path
) -> None:
    path = write_topology(TWO_SERVERS)
    owner, env_id = _start_owner(path)
    for pid in pids_with_in_cmdline(f"{env_id}/env.json"):
        os.kill(pid, signal.SIGKILL)
    owner.send_signal(signal.SIGKILL)
    owner.wait()
    with Environment.from_file(path, name="next"):
        assert not tagged_processes(env_id), "up must reap environments of dead owners"


def test_twenty_up_down_cycles_leak_nothing(
    write_topology: Callable[..., Path], runtime_root: Path
) -> None:
    path = write_topology("""
        [services.primary]
        kind = "postgres"
        [services.replica]
        kind = "postgres"
        replica_of = "primary"
        [services.cache]
        kind = "redis"
        """)
    ports_seen: set[int] = set()
    for _ in range(20):
        with Environment.from_file(path) as env:
            ports = [s.port for s in env.services.values()]
            ports_seen.update(ports)
            with psycopg.connect(env["replica"].url) as conn:
                assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
        assert all(port_is_free(p) for p in ports), "a port is still listening after down"
        assert_nothing_left(runtime_root, path)
    assert len(ports_seen) > 3


def test_down_keep_keeps_logs_and_next_up_clears_them(
    write_topology: Callable[..., Path], runtime_root: Path
) -> None:
    path = write_topology('[services.cache]\nkind = "redis"\n')
    env = Environment.from_file(path).up()
    env.down(keep=True)
    assert env["cache"].log_path.exists()
    assert not tagged_processes(env.env_id)
    state = json.loads((env.state_dir / "state.json").read_text())
    assert state["env_id"] == env.env_id
    with Environment.from_file(path) as again:
        assert again.env_id != env.env_id
    assert not env.state_dir.exists()
