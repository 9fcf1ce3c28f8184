"""The smallest HTTP/1.1 server the control API needs, on asyncio streams: JSON bodies with
Content-Length, keep-alive, one request at a time per connection. Written here rather than
taken from aiohttp or starlette because it is ~100 lines, imports nothing heavy (the server
answers within milliseconds of being spawned) and adds no dependency."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from http import HTTPStatus
from urllib.parse import unquote, urlsplit

log = logging.getLogger("shakedown.netproxy")

Handler = Callable[[str, list[str], object], tuple[int, object]]
"""(method, path segments, parsed JSON body or None) -> (status, JSON-able payload or None)"""

_MAX_BODY = 1 << 20
_MAX_HEADERS = 100


class _BadRequest(Exception):
    pass


class HttpServer:
    """A running control API listener and its open connections."""

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(
            self._on_connection, host, port, reuse_address=True
        )

    async def close(self) -> None:
        """Stop listening and end open keep-alive connections, so their handlers return
        normally instead of being cancelled when the loop stops."""
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        for _ in range(100):  # up to ~1 s for the handlers to see their connection end
            if not self._writers:
                return
            await asyncio.sleep(0.01)

    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self._writers.add(writer)
        try:
            while await _one_exchange(reader, writer, self._handler):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()


async def _one_exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, handler: Handler
) -> bool:
    """Read one request, write its answer; False when the connection should end."""
    request_line = await reader.readline()
    if not request_line:
        return False
    try:
        method, target, version = _parse_request_line(request_line)
        headers = await _read_headers(reader)
        body = await _read_body(reader, headers)
    except _BadRequest as error:
        await _respond(writer, 400, {"error": str(error), "checked": [], "fix": []}, False)
        return False
    keep_alive = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
    path = [unquote(part) for part in urlsplit(target).path.split("/") if part]
    try:
        status, payload = handler(method, path, body)
    except Exception:  # a bug in a handler must not take the control API down
        log.exception("control API: %s %s failed", method, target)
        status, payload = 500, {"error": "internal error, see the server log", "checked": [],
                                "fix": []}
    await _respond(writer, status, payload, keep_alive)
    return keep_alive


def _parse_request_line(line: bytes) -> tuple[str, str, str]:
    parts = line.decode("latin-1").split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        raise _BadRequest(f"malformed request line {line[:80]!r}")
    return parts[0].upper(), parts[1], parts[2]


async def _read_headers(reader: asyncio.StreamReader) -> dict[str, str]:
    headers: dict[str, str] = {}
    for _ in range(_MAX_HEADERS):
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            return headers
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    raise _BadRequest("too many headers")


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> object:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        raise _BadRequest("chunked bodies are not supported: send Content-Length")
    try:
        length = int(headers.get("content-length", "0"))
    except ValueError:
        raise _BadRequest("bad Content-Length") from None
    if not 0 <= length <= _MAX_BODY:
        raise _BadRequest(f"body of {length} bytes refused (at most {_MAX_BODY})")
    if length == 0:
        return None
    raw = await reader.readexactly(length)
    try:
        return json.loads(raw)
    except ValueError as error:
        raise _BadRequest(f"body is not JSON: {error}") from None


async def _respond(
    writer: asyncio.StreamWriter, status: int, payload: object, keep_alive: bool
) -> None:
    body = b"" if payload is None else json.dumps(payload).encode()
    reason = HTTPStatus(status).phrase
    head = [f"HTTP/1.1 {status} {reason}", f"Content-Length: {len(body)}"]
    if body:
        head.append("Content-Type: application/json")
    head.append("Connection: keep-alive" if keep_alive else "Connection: close")
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
    with contextlib.suppress(ConnectionError):
        await writer.drain()
