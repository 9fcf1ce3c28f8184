"""A named proxy: its listener, its live connections and its toxics. Owns the lifecycle of a
connection (accept, connect upstream, two directions, close or reset) and the ``down`` toxic,
which acts on the listener rather than on a direction."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypedDict

from ._direction import Direction
from ._errors import ConflictError, NotFoundError
from ._source import connecting_source
from ._toxics import ToxicInfo, ToxicSpec

log = logging.getLogger("shakedown.netproxy")

_BACKLOG = 512
_LINGER_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST


class ProxyInfo(TypedDict):
    """A proxy as the control API shows it."""

    name: str
    listen: str
    upstream: str
    enabled: bool
    connections: int
    identify: bool
    toxics: list[ToxicInfo]


@dataclass(frozen=True)
class Endpoint:
    """A resolved host:port."""

    host: str
    port: int
    family: socket.AddressFamily
    address: tuple[Any, ...]

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


class Connection:
    """One client connection and its upstream connection, joined by two directions."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        client: socket.socket,
        upstream: socket.socket,
        on_closed: Callable[[Connection], None],
        source: str | None = None,
    ) -> None:
        self.source = source  # who connected, on links that tell (see _source.py)
        self._sockets = (client, upstream)
        self._on_closed = on_closed
        self._closed = False
        self._done = 0
        self._directions = (
            Direction(loop, "upstream", client, upstream, self),
            Direction(loop, "downstream", upstream, client, self),
        )

    def apply(self, toxics: list[ToxicSpec]) -> None:
        mine = [t for t in toxics if t.acts_on(self.source)]
        for direction in self._directions:
            if self._closed:
                return
            direction.apply(mine)

    def direction_done(self) -> None:
        self._done += 1
        if self._done == 2:
            self.close()

    def broken(self, error: OSError) -> None:
        # A reset on one side is passed on as a reset, so the other side sees what happened.
        self._end(reset=isinstance(error, ConnectionResetError))

    def close(self) -> None:
        self._end(reset=False)

    def reset(self) -> None:
        self._end(reset=True)

    def _end(self, reset: bool) -> None:
        if self._closed:
            return
        self._closed = True
        for direction in self._directions:
            direction.close()
        for sock in self._sockets:
            _close_socket(sock, reset)
        self._on_closed(self)


class Proxy:
    """Listens on ``listen`` and joins each client to a new connection to ``upstream``."""

    def __init__(self, name: str, listen: Endpoint, upstream: Endpoint,
                 identify: bool = False) -> None:
        self.name = name
        self.identify = identify  # tell each connection's source, for toxics with sources
        self.listen = listen
        self.upstream = upstream
        self.toxics: dict[str, ToxicSpec] = {}  # insertion order = order of application
        self._loop = asyncio.get_running_loop()
        self._listener: socket.socket | None = None
        self._connections: set[Connection] = set()
        self._connecting: set[asyncio.Task[None]] = set()

    # -- listener --------------------------------------------------------------------------------

    def open(self) -> None:
        """Bind and listen (again, after ``down``, on the same port)."""
        listener = socket.socket(self.listen.family, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(self.listen.address)
            listener.listen(_BACKLOG)
            listener.setblocking(False)
        except OSError as error:
            listener.close()
            raise ConflictError(
                f"proxy {self.name!r} cannot listen on {self.listen}: {error.strerror}",
                checked=[f"bind {self.listen}"],
                fix=["choose a free port (0 lets the system pick one)"],
            ) from error
        if self.listen.port == 0:
            port = listener.getsockname()[1]
            self.listen = Endpoint(
                self.listen.host, port, self.listen.family, (self.listen.host, port)
            )
        self._listener = listener
        self._loop.add_reader(listener.fileno(), self._accept)

    def _close_listener(self) -> None:
        if self._listener is not None:
            self._loop.remove_reader(self._listener.fileno())
            self._listener.close()
            self._listener = None

    @property
    def enabled(self) -> bool:
        return self._listener is not None

    def _accept(self) -> None:
        while self._listener is not None:
            try:
                client, _ = self._listener.accept()
            except BlockingIOError:
                return
            except OSError as error:  # out of file descriptors, ...: try again later
                log.warning("proxy %s: accept failed: %s", self.name, error)
                return
            task = self._loop.create_task(self._connect(client))
            self._connecting.add(task)
            task.add_done_callback(self._connecting.discard)

    async def _connect(self, client: socket.socket) -> None:
        client.setblocking(False)
        upstream = socket.socket(self.upstream.family, socket.SOCK_STREAM)
        upstream.setblocking(False)
        try:
            await self._loop.sock_connect(upstream, self.upstream.address)
        except asyncio.CancelledError:
            _close_socket(client, reset=False)
            upstream.close()
            raise
        except OSError as error:
            # The client sees a reset, as close as TCP gets to "connection refused" here.
            log.info("proxy %s: upstream %s: %s", self.name, self.upstream, error)
            _close_socket(client, reset=True)
            upstream.close()
            return
        for sock in (client, upstream):
            # Small writes must leave at once: the proxy may not add Nagle delays.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        source = None
        if self.identify:  # a scan of /proc: off the loop, before any byte is relayed
            source = await self._loop.run_in_executor(None, connecting_source, client)
        connection = Connection(self._loop, client, upstream, self._connections.discard,
                                source)
        self._connections.add(connection)
        connection.apply(list(self.toxics.values()))

    # -- toxics ----------------------------------------------------------------------------------

    def add_toxic(self, spec: ToxicSpec) -> None:
        self.toxics[spec.name] = spec
        if spec.type == "down":
            self._drop_all()
        else:
            self._apply()

    def remove_toxic(self, name: str) -> ToxicSpec:
        spec = self.toxic(name)
        if spec.type == "down" and not self._down_after(name):
            self.open()  # may raise: then the toxic stays, and the proxy stays down
        del self.toxics[name]
        self._apply()
        return spec

    def remove_all_toxics(self) -> None:
        if not self.enabled:
            self.open()
        self.toxics.clear()
        self._apply()

    def toxic(self, name: str) -> ToxicSpec:
        try:
            return self.toxics[name]
        except KeyError:
            raise NotFoundError(
                f"proxy {self.name!r} has no toxic named {name!r}",
                checked=[f"toxics on {self.name!r}: {', '.join(self.toxics) or 'none'}"],
                fix=["list the toxics with GET /proxies/NAME/toxics"],
            ) from None

    def _down_after(self, removed: str) -> bool:
        return any(t.type == "down" for n, t in self.toxics.items() if n != removed)

    def _apply(self) -> None:
        toxics = list(self.toxics.values())
        for connection in list(self._connections):
            connection.apply(toxics)

    def _drop_all(self) -> None:
        self._close_listener()
        for task in list(self._connecting):
            task.cancel()
        for connection in list(self._connections):
            connection.close()

    # -- whole proxy -----------------------------------------------------------------------------

    def shutdown(self) -> None:
        """Close the listener and every connection."""
        self._drop_all()

    def info(self) -> ProxyInfo:
        return {
            "name": self.name,
            "listen": str(self.listen),
            "upstream": str(self.upstream),
            "enabled": self.enabled,
            "connections": len(self._connections),
            "identify": self.identify,
            "toxics": [t.info() for t in self.toxics.values()],
        }


def _close_socket(sock: socket.socket, reset: bool) -> None:
    with contextlib.suppress(OSError):
        if reset:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
        sock.close()
