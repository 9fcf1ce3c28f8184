"""Fixtures of the netproxy tests: one proxy server process for the session, a control client
that deletes every proxy after each test, real TCP servers and client sockets that are closed
after each test, whatever happened in it."""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from netproxy_support import Handler, TcpServer, echo, free_port

from shakedown.netproxy import ProxyControl, spawn_proxy_server


def stop_server(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group; SIGKILL it if it does not go within 5 s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(5)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)


@pytest.fixture(scope="session")
def proxy_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The control URL of a proxy server process shared by the session."""
    log_path = tmp_path_factory.mktemp("netproxy") / "server.log"
    port = free_port()
    process = spawn_proxy_server(port, log_path)
    try:
        url = f"http://127.0.0.1:{port}"
        with ProxyControl(url) as control:
            control.wait_ready(10)
        yield url
    finally:
        stop_server(process)


@pytest.fixture
def control(proxy_server: str) -> Iterator[ProxyControl]:
    client = ProxyControl(proxy_server)
    try:
        yield client
    finally:
        with contextlib.suppress(Exception):
            for name in client.proxies():
                client.delete(name)
        client.close()


@pytest.fixture
def make_server() -> Iterator[Callable[[Handler], TcpServer]]:
    servers: list[TcpServer] = []

    def make(handler: Handler) -> TcpServer:
        server = TcpServer(handler)
        servers.append(server)
        return server

    try:
        yield make
    finally:
        for server in servers:
            server.close()


@pytest.fixture
def echo_server(make_server: Callable[[Handler], TcpServer]) -> TcpServer:
    return make_server(echo)


_names = itertools.count()


@pytest.fixture
def make_proxy(control: ProxyControl) -> Callable[[int], tuple[str, int]]:
    """Create a proxy towards 127.0.0.1:PORT; returns (name, listen port). The control
    fixture deletes it after the test."""

    def make(upstream_port: int) -> tuple[str, int]:
        name = f"p{next(_names)}"
        info = control.create(name, 0, "127.0.0.1", upstream_port)
        return name, int(info["listen"].rsplit(":", 1)[1])

    return make


@pytest.fixture
def echo_proxy(
    echo_server: TcpServer, make_proxy: Callable[[int], tuple[str, int]]
) -> tuple[str, int]:
    return make_proxy(echo_server.port)


@pytest.fixture
def connect() -> Iterator[Callable[[int], socket.socket]]:
    """Open client connections to 127.0.0.1:PORT; all closed after the test."""
    sockets: list[socket.socket] = []

    def open_connection(port: int) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sockets.append(sock)
        return sock

    try:
        yield open_connection
    finally:
        for sock in sockets:
            sock.close()


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[Callable[..., tuple[subprocess.Popen[bytes], str]]]:
    """Spawn a private proxy server (for tests that stop it); stopped after the test."""
    processes: list[subprocess.Popen[bytes]] = []

    def spawn(**env: str) -> tuple[subprocess.Popen[bytes], str]:
        port = free_port()
        process = spawn_proxy_server(port, tmp_path / f"server-{port}.log", env=env)
        processes.append(process)
        url = f"http://127.0.0.1:{port}"
        with ProxyControl(url) as control:
            control.wait_ready(10)
        return process, url

    try:
        yield spawn
    finally:
        for process in processes:
            stop_server(process)
