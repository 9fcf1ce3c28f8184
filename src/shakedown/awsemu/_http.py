"""The emulator's HTTP/1.1 front: a WSGI server built for a short path per request, in front of
moto, the control endpoints and the declared HTTP APIs.

werkzeug's development server costs 1.3-1.5 ms a request (a ``BaseHTTPRequestHandler`` per
connection, email-parser headers, a thread handoff): more than a warm Lambda invocation itself.
Here one thread serves one connection for its whole keep-alive life, so a request wakes the
thread that answers it and no other; httptools (llhttp, the parser uvicorn uses) parses it; the
answer goes out in one ``sendall`` with TCP_NODELAY. What moto relies on from werkzeug's environ
is kept: decoded ``PATH_INFO``, ``RAW_URI``/``REQUEST_URI``, underscore headers dropped except
the S3 metadata ones moto preserves, ``Expect: 100-continue`` answered, chunked bodies
de-chunked."""

from __future__ import annotations

import contextlib
import io
import socket
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any
from urllib.parse import unquote_to_bytes

import httptools

from ._wsgi import App, Environ

_NO_BODY = {204, 304}
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


@dataclass
class Request:
    """One parsed request: what the environ is made of."""

    method: str
    url: bytes
    version: str
    headers: list[tuple[bytes, bytes]]
    body: bytes
    keep_alive: bool
    chunked: bool


@dataclass
class _Messages:
    """httptools' callbacks: collects the requests a connection's bytes complete."""

    sock: socket.socket
    parser: Any = None
    ready: deque[Request] = field(default_factory=deque)
    url: bytes = b""
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: list[bytes] = field(default_factory=list)
    head: tuple[str, str, bool, bool] = ("GET", "1.1", True, False)

    def on_message_begin(self) -> None:
        self.url, self.headers, self.body = b"", [], []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        parser = self.parser
        chunked = any(n.lower() == b"transfer-encoding" and b"chunked" in v.lower()
                      for n, v in self.headers)
        self.head = (parser.get_method().decode("latin-1"), parser.get_http_version(),
                     parser.should_keep_alive(), chunked)
        # The client waits for this before it sends the body (botocore does, for S3 uploads).
        if any(n.lower() == b"expect" and v.lower() == b"100-continue" for n, v in self.headers):
            self.sock.sendall(_CONTINUE)

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        method, version, keep_alive, chunked = self.head
        self.ready.append(Request(method, self.url, version, self.headers,
                                  b"".join(self.body), keep_alive, chunked))


class HttpServer:
    """Serves ``app`` on a listening socket: one thread per connection."""

    def __init__(self, listener: socket.socket, app: App, name: str = "http",
                 preserve: Callable[[str], bool] | None = None) -> None:
        self.listener = listener
        self.app = app
        self.name = name
        self.preserve = preserve  # header names with "_" to keep (moto's S3 metadata rule)
        host, port = listener.getsockname()[:2]
        self._server = {"SERVER_NAME": str(host), "SERVER_PORT": str(port)}
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._date = (0, "")

    # -- lifecycle -------------------------------------------------------------------
    def serve_forever(self) -> None:
        """Accept connections until ``shutdown``."""
        while not self._stopping.is_set():
            try:
                sock, address = self.listener.accept()
            except OSError:
                if self._stopping.is_set():
                    return
                time.sleep(0.01)  # e.g. out of descriptors for a moment: try again
                continue
            with self._lock:
                self._connections.add(sock)
            threading.Thread(target=self._connection, args=(sock, address), daemon=True,
                             name=f"{self.name}-conn").start()

    def start(self) -> threading.Thread:
        """Serve from a thread of its own."""
        thread = threading.Thread(target=self.serve_forever, daemon=True, name=self.name)
        thread.start()
        return thread

    def shutdown(self) -> None:
        """Stop accepting and end open connections (their threads see EOF and return)."""
        self._stopping.set()
        with contextlib.suppress(OSError):  # wakes the thread blocked in accept()
            self.listener.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self.listener.close()
        with self._lock:
            connections = list(self._connections)
        for sock in connections:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    # -- one connection --------------------------------------------------------------
    def _connection(self, sock: socket.socket, address: Any) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        messages = _Messages(sock)
        parser = httptools.HttpRequestParser(messages)
        messages.parser = parser
        peer = (str(address[0]), int(address[1])) if isinstance(address, tuple) else ("", 0)
        try:
            while not self._stopping.is_set():
                data = sock.recv(65536)
                if not data:
                    return
                try:
                    parser.feed_data(data)
                except httptools.HttpParserUpgrade:
                    self._send_error(sock, "501 Not Implemented")
                    return
                except httptools.HttpParserError:
                    self._send_error(sock, "400 Bad Request")
                    return
                while messages.ready:
                    if not self._respond(sock, messages.ready.popleft(), peer):
                        return
        except OSError:
            return  # the client went away
        finally:
            with self._lock:
                self._connections.discard(sock)
            with contextlib.suppress(OSError):
                sock.close()

    def _respond(self, sock: socket.socket, request: Request, peer: tuple[str, int]) -> bool:
        """Answer one request; False when the connection is to be closed."""
        environ = self.environ(request, peer)
        started: list[Any] = []
        written: list[bytes] = []

        def start_response(status: str, headers: list[tuple[str, str]],
                           exc_info: Any = None) -> Callable[[bytes], None]:
            if exc_info and started:
                raise exc_info[1].with_traceback(exc_info[2])
            started[:] = [status, headers]
            return written.append

        try:
            result = self.app(environ, start_response)
            try:
                body = b"".join([*written, *result])
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        except Exception:
            traceback.print_exc(file=sys.stderr)
            started[:] = ["500 Internal Server Error", [("Content-Type", "text/plain")]]
            body = b"internal error in shakedown's AWS emulator"
        status, headers = started
        head = [f"HTTP/1.1 {status}\r\n"]
        has_length = False
        for name, value in headers:
            has_length = has_length or name.lower() == "content-length"
            head.append(f"{name}: {value}\r\n")
        code = int(status[:3])
        if not has_length and code not in _NO_BODY and code >= 200:
            head.append(f"Content-Length: {len(body)}\r\n")
        head.append(f"Date: {self._http_date()}\r\n")
        if not request.keep_alive:
            head.append("Connection: close\r\n")
        head.append("\r\n")
        payload = b"" if request.method == "HEAD" or code in _NO_BODY else body
        sock.sendall("".join(head).encode("latin-1") + payload)
        return request.keep_alive

    def _http_date(self) -> str:
        now = int(time.time())
        if self._date[0] != now:  # one formatting a second, not one a request
            self._date = (now, formatdate(now, usegmt=True))
        return self._date[1]

    @staticmethod
    def _send_error(sock: socket.socket, status: str) -> None:
        with contextlib.suppress(OSError):
            sock.sendall(f"HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close"
                         "\r\n\r\n".encode())

    def environ(self, request: Request, peer: tuple[str, int]) -> Environ:
        """The WSGI environ of a request, as werkzeug (and moto's handler) would make it."""
        raw = request.url
        target = raw
        host: bytes | None = None
        if not raw.startswith(b"/") and b"://" in raw:  # an absolute URL: its host counts
            parsed = httptools.parse_url(raw)
            host = parsed.host + (b":%d" % parsed.port if parsed.port else b"")
            target = (parsed.path or b"/") + (b"?" + parsed.query if parsed.query else b"")
        path, _, query = target.partition(b"?")
        raw_uri = raw.decode("latin-1")
        environ: Environ = {
            "wsgi.version": (1, 0), "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(request.body), "wsgi.errors": sys.stderr,
            "wsgi.multithread": True, "wsgi.multiprocess": False, "wsgi.run_once": False,
            "SERVER_SOFTWARE": "shakedown-awsemu", "REQUEST_METHOD": request.method,
            "SCRIPT_NAME": "", "PATH_INFO": unquote_to_bytes(path).decode("latin-1"),
            "QUERY_STRING": query.decode("latin-1"), "REQUEST_URI": raw_uri,
            "RAW_URI": raw_uri, "REMOTE_ADDR": peer[0], "REMOTE_PORT": peer[1],
            "SERVER_PROTOCOL": f"HTTP/{request.version}", **self._server,
        }
        self._headers(environ, request.headers)
        if request.chunked:  # the body is whole and de-chunked already
            environ["CONTENT_LENGTH"] = str(len(request.body))
            environ["wsgi.input_terminated"] = True
        if host is not None:
            environ["HTTP_HOST"] = host.decode("latin-1")
        return environ

    def _headers(self, environ: Environ, headers: list[tuple[bytes, bytes]]) -> None:
        values: dict[str, list[str]] = {}
        underscored: list[tuple[str, str, str]] = []
        for raw_name, raw_value in headers:
            name, value = raw_name.decode("latin-1"), raw_value.decode("latin-1")
            key = name.upper().replace("-", "_")
            if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                key = "HTTP_" + key
            if "_" in name:
                underscored.append((key, name, value))
            else:
                values.setdefault(key, []).append(value)
        # WSGI cannot tell X_Foo from X-Foo: werkzeug drops names with "_" so that one cannot
        # spoof the other; moto keeps S3's x-amz-meta- ones, spelled as sent, and never lets
        # one stand in for a dashed header.
        names: dict[str, str] = {}
        if self.preserve is not None:
            for key, name, value in underscored:
                if (key in values and key not in names) or not self.preserve(name):
                    continue
                names.setdefault(key, name)
                values.setdefault(key, []).append(value)
        for key, listed in values.items():
            environ[key] = listed[0] if len(listed) == 1 else ",".join(listed)
        if names:
            from moto.core.request import PRESERVED_HEADER_NAMES_ENVIRON_KEY

            environ[PRESERVED_HEADER_NAMES_ENVIRON_KEY] = names
