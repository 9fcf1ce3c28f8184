"""No-toxic passthrough (the splice fast path) and live switching between the fast path and
the toxic pipeline: bytes must arrive exact, in order, whatever happens to the toxics."""

from __future__ import annotations

import array
import contextlib
import fcntl
import os
import random
import shutil
import socket
import subprocess
import termios
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import redis
from netproxy_support import Handler, TcpServer, free_port, recv_all, recv_exact

from shakedown.netproxy import ProxyControl
from shakedown.waits import eventually

Connect = Callable[[int], socket.socket]
MakeProxy = Callable[[int], tuple[str, int]]


def _echo_exchange(sock: socket.socket, payload: bytes, pace: float = 0.0) -> bytes:
    """Send payload through an echo path while reading the echo concurrently; with ``pace``,
    in 16 KiB pieces that many seconds apart."""
    errors: list[BaseException] = []

    def send() -> None:
        try:
            if not pace:
                sock.sendall(payload)
            for offset in range(0, len(payload) if pace else 0, 16384):
                sock.sendall(payload[offset : offset + 16384])
                time.sleep(pace)
        except BaseException as error:  # reported by the main thread
            errors.append(error)

    sender = threading.Thread(target=send)
    sender.start()
    try:
        received = recv_exact(sock, len(payload), timeout=30)
    finally:
        sender.join(30)
    assert not errors, errors
    return received


def test_passthrough_is_byte_exact_both_ways(
    echo_proxy: tuple[str, int], connect: Connect
) -> None:
    payload = os.urandom(16 * 1024 * 1024)
    sock = connect(echo_proxy[1])
    assert _echo_exchange(sock, payload) == payload
    # The same connection keeps working for small messages afterwards.
    sock.sendall(b"after")
    assert recv_exact(sock, 5) == b"after"


def test_half_close_is_passed_on(echo_proxy: tuple[str, int], connect: Connect) -> None:
    sock = connect(echo_proxy[1])
    sock.sendall(b"last words")
    sock.shutdown(socket.SHUT_WR)
    sock.settimeout(5)
    assert recv_exact(sock, 10) == b"last words"
    assert sock.recv(10) == b""  # the echo server saw EOF and closed: EOF reaches us


def test_many_connections_at_once(echo_proxy: tuple[str, int], connect: Connect) -> None:
    sockets = [connect(echo_proxy[1]) for _ in range(50)]
    for index, sock in enumerate(sockets):
        sock.sendall(f"conn {index:03d}".encode())
    for index, sock in enumerate(sockets):
        assert recv_exact(sock, 8) == f"conn {index:03d}".encode()


def test_toxics_switched_on_and_off_under_load_keep_the_stream_exact(
    echo_proxy: tuple[str, int], connect: Connect, control: ProxyControl
) -> None:
    """Splice → pipeline → splice many times while 4 MiB flow both ways: no byte lost,
    duplicated or reordered (pipe leftovers, interrupted pieces, drained buffers)."""
    name, port = echo_proxy
    payload = os.urandom(4 * 1024 * 1024)
    sock = connect(port)
    stop = threading.Event()
    flips = 0

    def flip_toxics() -> None:
        nonlocal flips
        rng = random.Random(7)
        while not stop.is_set():
            toxics = [
                ("latency", {"latency_ms": 1}),
                ("slicer", {"average_size": 3000, "size_variation": 1000}),
                ("bandwidth", {"rate_kbps": 20000}),
            ]
            kind, attributes = rng.choice(toxics)
            stream = rng.choice(["upstream", "downstream"])
            toxic = control.add_toxic(name, kind, stream=stream, **attributes)
            time.sleep(rng.uniform(0.001, 0.01))
            control.remove_toxic(name, toxic)
            flips += 1
            time.sleep(rng.uniform(0.0, 0.005))

    flipper = threading.Thread(target=flip_toxics)
    flipper.start()
    try:
        received = _echo_exchange(sock, payload, pace=0.002)
    finally:
        stop.set()
        flipper.join(10)
    assert received == payload
    assert flips >= 20  # the stream really crossed many switches
    assert control.toxics(name) == []


@pytest.fixture
def redis_port() -> Iterator[int]:
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not os.path.exists(binary):  # a failure under strict mode (tests/strict_mode.py)
        pytest.skip("redis-server is not installed: apt-get install -y redis-server")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    break
            assert time.monotonic() < deadline, "redis-server did not answer PING"
            time.sleep(0.02)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def test_real_redis_through_the_proxy(
    redis_port: int, make_proxy: MakeProxy, control: ProxyControl
) -> None:
    name, port = make_proxy(redis_port)
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=5)
    try:
        value = os.urandom(2 * 1024 * 1024)
        client.set("big", value)
        assert client.get("big") == value
        pipe = client.pipeline()
        for i in range(500):
            pipe.set(f"k{i}", i)
        pipe.execute()
        assert client.get("k499") == b"499"
        control.add_toxic(name, "latency", latency_ms=80)
        start = time.monotonic()
        assert client.get("k1") == b"1"  # the open connection feels the toxic
        assert time.monotonic() - start >= 0.08
    finally:
        client.close()


def test_unreachable_upstream_ends_the_client_connection(
    make_proxy: MakeProxy, connect: Connect
) -> None:
    _, port = make_proxy(free_port())  # nothing listens there
    with pytest.raises(ConnectionResetError):
        # On loopback the RST can even beat connect() back to us.
        connect(port).recv(10)


def test_switching_while_the_reader_is_stalled_keeps_the_stream_exact(
    make_server: Callable[[Handler], TcpServer],
    make_proxy: MakeProxy,
    connect: Connect,
    control: ProxyControl,
) -> None:
    """Toxics come and go while the client reads nothing, so the proxy is blocked on a full
    socket (bytes left in the splice pipe, or a pipeline waiting to write)."""
    payload = os.urandom(8 * 1024 * 1024)

    def send_payload(conn: socket.socket) -> None:
        conn.sendall(payload)
        conn.shutdown(socket.SHUT_WR)
        conn.settimeout(10)
        while conn.recv(65536):
            pass

    name, port = make_proxy(make_server(send_payload).port)
    sock = connect(port)
    wait_stalled(sock)  # buffers full: the proxy stops on the full client socket
    toxic = control.add_toxic(name, "latency", latency_ms=1)
    wait_stalled(sock)
    head = recv_exact(sock, 1024 * 1024)  # the pipeline runs, then stalls again
    wait_stalled(sock)
    control.remove_toxic(name, toxic)  # removed while blocked on writing
    wait_stalled(sock)
    assert head + recv_all(sock) == payload


def queued(sock: socket.socket) -> int:
    """Bytes received by the kernel for ``sock`` and not read yet."""
    buffer = array.array("i", [0])
    fcntl.ioctl(sock.fileno(), termios.FIONREAD, buffer)
    return buffer[0]


def wait_stalled(sock: socket.socket) -> None:
    """Until the bytes queued for the client stop growing: the proxy is blocked on a full
    socket (the condition itself, not a sleep that hopes for it)."""
    last = [-1]

    def stalled() -> bool:
        now = queued(sock)
        steady = now > 0 and now == last[0]
        last[0] = now
        return steady

    eventually(stalled, timeout=10, interval=0.05, description="the proxy stalls")
