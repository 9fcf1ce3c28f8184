"""Restart policies and volumes of the ``process`` kind, against real processes: a crash
answered by ``on-failure``, a kill fault answered by ``always``, a clean exit left alone, a
crash loop bounded by ``max_restarts``, restarts in ``shakedown status`` and the history,
volumes that outlive kills and (when kept) ``down``/``up``, and the topology errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from shakedown.environment import Environment
from shakedown.errors import ServiceStartError, TopologyError
from shakedown.history import History
from shakedown.process import tagged_processes
from shakedown.topology import load_topology
from shakedown.waits import eventually

# A small HTTP server: GET / answers its pid and what its volume holds, GET /exit/N exits with
# code N; every start appends its pid to starts.txt in the volume (when it has one).
APP = """
import http.server, os, pathlib, sys

volume = os.environ.get("SHAKEDOWN_VOLUME_DATA")
starts = pathlib.Path(volume) / "starts.txt" if volume else None
if starts is not None:
    with starts.open("a") as out:
        out.write(f"{os.getpid()}\\n")


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.startswith("/exit/"):
            os._exit(int(self.path.rsplit("/", 1)[1]))
        lines = starts.read_text().split() if starts is not None else []
        body = f"{os.getpid()} {len(lines)}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""


def topology(write_topology: Callable[..., Path], keys: str) -> Path:
    return write_topology(f"""
        [services.app]
        kind = "process"
        command = ["{{python}}", "app.py", "{{port}}"]
        ready = {{ http = "/" }}
        {keys}
        """, app__py=APP)


def get(env: Environment, path: str = "/") -> tuple[int, int]:
    """(pid, number of starts in the volume) as the app answers them."""
    text = httpx.get(f"{env['app'].url}{path}", timeout=2, trust_env=False).text
    pid, starts = text.split()
    return int(pid), int(starts)


def exit_app(env: Environment, code: int) -> None:
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{env['app'].url}/exit/{code}", timeout=2, trust_env=False)


def restart_events(env: Environment) -> list[dict[str, object]]:
    assert env.history is not None
    ops = History.load(env.history.path) if env.history.path else env.history
    return [op.value for op in ops if op.f == "service"
            and isinstance(op.value, dict) and op.value.get("event") == "restarted"]


def test_on_failure_restarts_a_crashed_process(write_topology: Callable[..., Path]) -> None:
    path = topology(write_topology, 'restart = "on-failure"')
    with Environment.from_file(path) as env:
        first, _ = get(env)
        exit_app(env, 3)
        second, _ = eventually(lambda: get(env), timeout=10, description="app back")
        assert second != first, "a new process answers"
        assert env["app"].restarts() == 1  # type: ignore[attr-defined]
        assert env["app"].status() == "running"
        events = eventually(lambda: restart_events(env), timeout=5)
        assert events[0]["target"] == "app" and events[0]["exit_code"] == 3
        assert events[0]["restarts"] == 1


def test_on_failure_leaves_a_clean_exit_alone(write_topology: Callable[..., Path]) -> None:
    path = topology(write_topology, 'restart = "on-failure"')
    with Environment.from_file(path) as env:
        exit_app(env, 0)
        eventually(lambda: env["app"].status() == "stopped", timeout=10)
        assert env["app"].restarts() == 0  # type: ignore[attr-defined]
        assert restart_events(env) == []


def test_always_brings_a_killed_process_back_by_itself(
    write_topology: Callable[..., Path],
) -> None:
    path = topology(write_topology, 'restart = "always"')
    with Environment.from_file(path) as env:
        first, _ = get(env)
        supervisor = env["app"].pids
        fault = env.faults.kill("app")
        second, _ = eventually(lambda: get(env), timeout=10, description="app back")
        assert second != first
        assert env["app"].pids == supervisor, "the supervisor itself was not killed"
        fault.heal()  # finds it running: starts nothing more
        assert get(env)[0] == second
        assert env["app"].restarts() == 1  # type: ignore[attr-defined]
        exit_app(env, 0)  # always: a clean exit restarts too
        eventually(lambda: env["app"].restarts() == 2, timeout=10)  # type: ignore[attr-defined]


def test_no_policy_stays_down_after_a_crash(write_topology: Callable[..., Path]) -> None:
    with Environment.from_file(topology(write_topology, "")) as env:
        exit_app(env, 1)
        eventually(lambda: env["app"].status() == "stopped", timeout=10)
        assert env["app"].restarts() == 0  # type: ignore[attr-defined]


def test_a_crash_loop_gives_up_after_max_restarts(write_topology: Callable[..., Path]) -> None:
    path = topology(write_topology, """restart = "always"
        restart_backoff = { backoff = "10ms", max_backoff = "40ms", max_restarts = 3 }
        volumes = { data = {} }""")
    with Environment.from_file(path) as env:
        get(env)
        # From now on every start of the app fails at once.
        app = path.parent / "app.py"
        app.write_text("import sys; print('boom'); sys.exit(4)\n")
        exit_app(env, 1)
        eventually(lambda: env["app"].status() == "stopped", timeout=10)
        assert env.history is not None and env.history.path is not None
        ops = [op.value for op in History.load(env.history.path) if op.f == "service"]
        assert [v["restarts"] for v in ops if v.get("event") == "restarted"] == [1, 2, 3]
        gave_up = [v for v in ops if v.get("event") == "gave-up"]
        assert gave_up == [{"target": "app", "event": "gave-up", "restarts": 3, "exit_code": 4}]


def test_a_crash_loop_at_start_fails_the_start_cleanly(
    write_topology: Callable[..., Path],
) -> None:
    path = write_topology("""
        [services.app]
        kind = "process"
        command = ["{python}", "-c", "import sys; print('boom'); sys.exit(4)"]
        restart = "on-failure"
        restart_backoff = { backoff = "10ms", max_restarts = 2 }
        """)
    env = Environment.from_file(path)
    with pytest.raises(ServiceStartError) as info:
        env.up()
    assert "exited while starting (exit code 4)" in str(info.value)
    assert "boom" in str(info.value)
    assert not tagged_processes(env.env_id)
    assert not env.state_dir.exists()


def test_status_shows_restarts(write_topology: Callable[..., Path]) -> None:
    path = topology(write_topology, 'restart = "on-failure"')
    with Environment.from_file(path) as env:
        exit_app(env, 1)
        eventually(lambda: get(env), timeout=10)
        result = subprocess.run([sys.executable, "-m", "shakedown", "status"], cwd=path.parent,
                                capture_output=True, text=True, env={**os.environ,
                                                                     "COLUMNS": "200"},
                                timeout=60, check=False)
        assert result.returncode == 0, result.stderr
        rows = [line.replace("\u2502", " ").split() for line in result.stdout.splitlines()]
        app = next((row for row in rows if row[:1] == ["app"]), None)
        assert app is not None, result.stdout
        assert app[2] == "running" and app[-1] == "1", result.stdout
        state = json.loads(env.paths.state_file.read_text())
        assert state["services"]["app"]["view"]["restart_status"]


def test_volume_survives_kill_and_restart_and_is_removed_at_down(
    write_topology: Callable[..., Path],
) -> None:
    path = topology(write_topology, """restart = "always"
        volumes = { data = {} }""")
    with Environment.from_file(path) as env:
        volume = env["app"].volumes()["data"].path
        assert volume.is_relative_to(path.parent / ".shakedown" / "volumes")
        assert get(env)[1] == 1
        env.faults.kill("app")
        assert eventually(lambda: get(env), timeout=10)[1] == 2, "the volume kept starts.txt"
        env.faults.restart("app")
        assert get(env)[1] == 3
    assert not volume.exists(), "a volume not kept ends at down"
    assert not (path.parent / ".shakedown" / "volumes").exists()


def test_kept_volume_outlives_down_and_up(write_topology: Callable[..., Path]) -> None:
    path = topology(write_topology, "volumes = { data = { keep = true, path = \"ws/data\", "
                    "env = \"SHAKEDOWN_VOLUME_DATA\" }, scratch = {} }")
    with Environment.from_file(path) as env:
        assert get(env)[1] == 1
        scratch = env["app"].volumes()["scratch"].path
        (scratch / "tmp").write_text("x")
    assert not scratch.exists()
    with Environment.from_file(path) as env:
        assert get(env)[1] == 2, "the kept volume still holds the first start"
        kept = env["app"].volumes()["data"].path
    assert kept.is_dir() and kept.name == "data" and kept.parent.name == "ws"


@pytest.mark.parametrize(("keys", "expected"), [
    ('volumes = { data = { path = "../outside" } }',
     "services.app.volumes.data.path: volume path '../outside' is outside the state directory"),
    ('volumes = { data = { path = "/tmp/x" } }',
     "services.app.volumes.data.path: volume path '/tmp/x' is outside the state directory"),
    ('restart = "sometimes"', "services.app.restart: Input should be 'no', 'on-failure' or"),
    ('volumes = { "a b" = {} }', "services.app.volumes: volume name 'a b'"),
])
def test_bad_restart_and_volume_keys(write_topology: Callable[..., Path], keys: str,
                                     expected: str) -> None:
    with pytest.raises(TopologyError) as info:
        load_topology(topology(write_topology, keys))
    assert expected in str(info.value)


def test_restart_policy_on_a_kind_that_cannot_restart(
    write_topology: Callable[..., Path],
) -> None:
    path = write_topology("""
        [services.cache]
        kind = "redis"
        restart = "always"
        """)
    with pytest.raises(TopologyError) as info:
        load_topology(path)
    assert ("services.cache.restart: unknown key 'restart' (a key of kind 'process', not of "
            "this one)"
            in str(info.value))


def test_a_backoff_shows_as_restarting_and_down_ends_it(
    write_topology: Callable[..., Path],
) -> None:
    path = topology(write_topology, """restart = "on-failure"
        restart_backoff = { backoff = "30s" }""")
    with Environment.from_file(path) as env:
        exit_app(env, 2)
        eventually(lambda: env["app"].status() == "restarting", timeout=10)
        result = subprocess.run([sys.executable, "-m", "shakedown", "status"], cwd=path.parent,
                                capture_output=True, text=True,
                                env={**os.environ, "COLUMNS": "200"}, timeout=60, check=False)
        assert result.returncode == 0, result.stderr
        rows = [line.replace("\u2502", " ").split() for line in result.stdout.splitlines()]
        app = next((row for row in rows if row[:1] == ["app"]), None)
        assert app is not None and app[2] == "restarting", result.stdout
        supervisor = env["app"].pids
    # down did not wait out the 30 s backoff: the supervisor stopped at once
    assert not tagged_processes(env.env_id)
    assert supervisor
