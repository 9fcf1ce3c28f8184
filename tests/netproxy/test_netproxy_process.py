"""The server process: its own process group, the caller's environment, a clean exit on
SIGTERM and SIGINT that closes every connection and leaves nothing behind."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from netproxy_support import TcpServer, closed_by_peer, free_port, round_trip

from shakedown.netproxy import ProxyControl, spawn_proxy_server

Spawn = Callable[..., tuple[subprocess.Popen[bytes], str]]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_server_exits_cleanly_on_signal_and_closes_connections(
    own_server: Spawn, echo_server: TcpServer, signum: signal.Signals
) -> None:
    process, url = own_server(SHAKEDOWN_ENV_ID="netproxy-test-tag")
    assert os.getpgid(process.pid) == process.pid  # its own process group
    environ = Path(f"/proc/{process.pid}/environ").read_bytes().split(b"\0")
    assert b"SHAKEDOWN_ENV_ID=netproxy-test-tag" in environ
    with ProxyControl(url) as control:
        info = control.create("e", 0, "127.0.0.1", echo_server.port)
    port = int(info["listen"].rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock, \
            socket.create_connection(("127.0.0.1", port), timeout=5) as held:
        round_trip(sock)
        round_trip(held)
        with ProxyControl(url) as control:  # both now in the toxic pipeline, one holding data
            control.add_toxic("e", "timeout", stream="upstream", toxicity=1.0)
        held.sendall(b"held")
        os.killpg(process.pid, signum)
        assert process.wait(5) == 0
        assert closed_by_peer(sock)  # the proxy closed our connections on its way out
        assert closed_by_peer(held)
    with pytest.raises(ProcessLookupError):
        os.killpg(process.pid, 0)  # no process left in its group
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


def test_control_port_in_use_exits_with_an_error(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        log = tmp_path / "server.log"
        process = spawn_proxy_server(port, log)
        try:
            assert process.wait(10) == 2
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)
    assert "cannot listen" in Path(log).read_text()


def test_module_entry_point_serves_too(tmp_path: Path) -> None:
    port = free_port()
    with (tmp_path / "server.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "shakedown.netproxy", "--control-port", str(port)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        with ProxyControl(f"http://127.0.0.1:{port}") as control:
            control.wait_ready(20)
            assert control.version().startswith("shakedown-netproxy")
        process.send_signal(signal.SIGTERM)
        assert process.wait(5) == 0
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)
