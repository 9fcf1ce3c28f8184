"""Real-socket helpers for the netproxy tests: small threaded TCP servers (echo, bulk source)
that stop cleanly, and timing helpers. Everything here is closed by the fixtures in
conftest.py, also when a test fails."""

from __future__ import annotations

import contextlib
import socket
import statistics
import threading
import time
from collections.abc import Callable

Handler = Callable[[socket.socket], None]


class TcpServer:
    """A threaded TCP server on 127.0.0.1 with one thread per connection."""

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._connections: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._closed = False
        self._accepter = threading.Thread(target=self._accept_loop, daemon=True)
        self._accepter.start()

    def _accept_loop(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                if self._closed:
                    conn.close()
                    return
                self._connections.append(conn)
                thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
                self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            self._handler(conn)
        with contextlib.suppress(OSError):
            conn.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            connections = list(self._connections)
        # shutdown() wakes a thread blocked in accept() or recv(), close() alone may not.
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                conn.close()
        self._accepter.join(5)
        for thread in self._threads:
            thread.join(5)


def echo(conn: socket.socket) -> None:
    while data := conn.recv(65536):
        conn.sendall(data)


def source(size: int, pattern: bytes = b"0123456789abcdef") -> Handler:
    """A handler that sends ``size`` bytes (the pattern repeated) then closes."""
    payload = (pattern * (size // len(pattern) + 1))[:size]

    def handler(conn: socket.socket) -> None:
        conn.sendall(payload)
        conn.shutdown(socket.SHUT_WR)
        # Wait for the peer to close, so the close never turns into a reset.
        conn.settimeout(5)
        with contextlib.suppress(OSError):
            while conn.recv(65536):
                pass

    return handler


def recv_all(sock: socket.socket, timeout: float = 10.0) -> bytes:
    """Read until EOF."""
    sock.settimeout(timeout)
    chunks = []
    while data := sock.recv(65536):
        chunks.append(data)
    return b"".join(chunks)


def recv_exact(sock: socket.socket, size: int, timeout: float = 10.0) -> bytes:
    sock.settimeout(timeout)
    buf = bytearray()
    while len(buf) < size:
        data = sock.recv(min(65536, size - len(buf)))
        if not data:
            raise EOFError(f"EOF after {len(buf)} of {size} bytes")
        buf += data
    return bytes(buf)


def round_trip(sock: socket.socket, message: bytes = b"ping") -> float:
    """Seconds for one echo round trip of ``message``."""
    start = time.monotonic()
    sock.sendall(message)
    recv_exact(sock, len(message))
    return time.monotonic() - start


def median_round_trip(sock: socket.socket, count: int = 3) -> float:
    return statistics.median(round_trip(sock) for _ in range(count))


def closed_by_peer(sock: socket.socket, timeout: float = 5.0) -> bool:
    """True when the peer ends the connection (EOF or reset) before any data or timeout."""
    sock.settimeout(timeout)
    try:
        return sock.recv(10) == b""
    except ConnectionResetError:
        return True


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
