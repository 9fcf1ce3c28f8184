"""One direction of one proxied connection (client→server or server→client) and the switch
between its two ways of moving bytes.

Fast path (no toxic acts on the direction): ``os.splice`` moves bytes socket → pipe → socket
inside the kernel, driven by the event loop's ``add_reader``/``add_writer`` on the raw
non-blocking sockets. Python never sees the bytes; per chunk it pays one wake-up and two system
calls.

Why this one, measured with bench/proxy_bulk.py on the 2-core development machine (shared with
other work, so noisy): bulk transfer through the proxy ~1.0-1.4 GB/s (direct 2-3.5 GB/s), and
23-29 µs added to the median round trip of small messages (direct 15-19 µs). Alternatives
measured with the same harness on prototypes: asyncio streams copying through Python reach
~600 MB/s bulk; a splice thread per direction gave a ~10 µs lower idle round trip but 13-24%
fewer requests/s with 8-32 busy connections (GIL hand-offs) and a harder live switch; uvloop
was within noise on one connection and at most +12% with many; a bare ``select.epoll`` loop
+13% at 32 connections, nothing on one. The cost of a round trip is the kernel waking the proxy
twice, not Python, so: the standard asyncio loop plus splice, no extra dependency.
Those two extra wake-ups per round trip are also why a tight loopback ping-pong (PING to redis,
32-byte echo) runs at only 0.3-0.45 of its direct round trips/s through the proxy here, short
of the 0.85 aimed at; the ratio reaches 0.85 for workloads whose direct round trip is at least
~150 µs (the benchmark prints that bound each run). bench/proxy.py measures HAProxy (C,
splice) in the same run as the floor any userspace relay pays here.
An in-kernel relay was tried and rejected: a BPF sockhash with an ``sk_skb`` verdict program
that redirects each socket's bytes to its peer's egress (prototype, kernel 6.18). Egress
redirects are sent by a kernel worker, so a 32-byte echo took ~105 µs per round trip against
~21 µs direct (the splice path adds 23-29 µs, above); sockets removed from the map drop what the
worker has not sent yet, so the live switch to toxics could lose bytes.

Pipeline (one or more toxics act): a reader callback puts chunks into a bounded buffer (full
buffer = stop reading, so TCP pushes back on the sender) and one task runs the head chunk
through the toxics' effects in order, then sends it. Bytes sent of the head chunk are counted,
so when the toxic set changes the task is cancelled and a new one resumes exactly where the old
one stopped. When the last toxic goes, the buffer is drained and the direction returns to the
fast path; when a toxic arrives, the bytes already in the splice pipe are read out and enter
the pipeline first. All of this runs on the one event-loop thread, so a switch is atomic with
respect to the data.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import fcntl
import logging
import os
import random
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from ._effects import Effect, Link, Piece, make_effect
from ._toxics import ToxicSpec

log = logging.getLogger("shakedown.netproxy")

_F_SETPIPE_SZ = 1031  # fcntl.F_SETPIPE_SZ, absent from Python 3.11's fcntl module
# 256 KiB pipes: measured within noise of 1 MiB for bulk transfer, and small enough that an
# unprivileged server stays under fs.pipe-user-pages-soft with a hundred connections.
PIPE_SIZE = 256 * 1024
_SPLICE_FLAGS = os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK
READ_SIZE = 64 * 1024
BUFFER_LIMIT = 256 * 1024  # bytes held by the pipeline before it stops reading the source

Mode = Literal["new", "splice", "pipeline", "done", "closed"]


class Owner(Link, Protocol):
    """The connection a direction belongs to."""

    def direction_done(self) -> None:
        """The direction passed the end of stream on (its destination is shut for writing)."""

    def broken(self, error: OSError) -> None:
        """A socket of the direction failed: end the whole connection."""


@dataclass
class _Chunk:
    data: bytes
    read_at: float


class _Closed(Exception):
    """Raised inside the pipeline task when the connection ended under it."""


class Direction:
    """Moves the bytes of one direction, by splice when idle, through toxics otherwise."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        name: str,
        src: socket.socket,
        dst: socket.socket,
        owner: Owner,
    ) -> None:
        self._loop = loop
        self.name = name
        self._src, self._dst = src, dst
        self._src_fd, self._dst_fd = src.fileno(), dst.fileno()
        self._owner = owner
        self.mode: Mode = "new"
        self._effects: dict[str, Effect | None] = {}  # None: toxicity roll said no
        self._chain: list[Effect] = []
        self._src_eof = False
        # fast path
        self._pipe: tuple[int, int] | None = None
        self._in_pipe = 0
        self._splice_blocked = False  # waiting for dst to accept what is in the pipe
        # pipeline
        self._buffer: collections.deque[_Chunk] = collections.deque()
        self._buffered = 0
        self._head_sent = 0
        self._reading = False
        self._task: asyncio.Task[None] | None = None
        self._data_waiter: asyncio.Future[None] | None = None
        self._write_waiter: asyncio.Future[None] | None = None

    # -- toxics -------------------------------------------------------------------------------

    def apply(self, toxics: Sequence[ToxicSpec]) -> None:
        """Make the direction's effects match the proxy's toxics (in order); starts the
        direction on its first call."""
        if self.mode in ("done", "closed"):
            return
        wanted = [t for t in toxics if t.type != "down" and t.applies_to(self.name)]
        names = {t.name for t in wanted}
        for name in [n for n in self._effects if n not in names]:
            gone = self._effects.pop(name)
            if gone is not None:
                gone.stop()
        started: list[Effect] = []
        for spec in wanted:
            if spec.name not in self._effects:
                # Decided once per connection, like Toxiproxy: random() < 1 always, < 0 never.
                hit = random.random() < spec.toxicity
                effect = make_effect(spec, self._owner, self._loop) if hit else None
                self._effects[spec.name] = effect
                if effect is not None:
                    started.append(effect)
        chain = [e for t in wanted if (e := self._effects[t.name]) is not None]
        if chain != self._chain or self.mode == "new":
            self._chain = chain
            self._switch()
        # Started last: a timer of 0 ms must find the direction fully set up.
        for effect in started:
            effect.start()

    def _switch(self) -> None:
        if self.mode == "new":
            self._enter_pipeline(b"") if self._chain else self._enter_splice()
        elif self.mode == "splice" and self._chain:
            self._enter_pipeline(self._leave_splice())
        elif self.mode == "pipeline":
            self._restart_pipeline()

    # -- fast path: splice ---------------------------------------------------------------------

    def _enter_splice(self) -> None:
        self.mode = "splice"
        if self._src_eof:
            self._finish()
            return
        if self._pipe is None:
            self._pipe = _make_pipe()
        self._loop.add_reader(self._src_fd, self._splice_in)

    def _splice_in(self) -> None:
        assert self._pipe is not None
        try:
            moved = os.splice(self._src_fd, self._pipe[1], PIPE_SIZE, flags=_SPLICE_FLAGS)
        except BlockingIOError:
            return
        except OSError as error:
            self._owner.broken(error)
            return
        if moved == 0:
            self._loop.remove_reader(self._src_fd)
            self._src_eof = True
            self._finish()
            return
        self._in_pipe = moved
        if not self._splice_out() and self.mode == "splice":
            # dst is full: stop reading until it drains, so TCP pushes back on the sender.
            self._loop.remove_reader(self._src_fd)
            self._loop.add_writer(self._dst_fd, self._splice_writable)
            self._splice_blocked = True

    def _splice_writable(self) -> None:
        if self._splice_out() and self.mode == "splice":
            self._loop.remove_writer(self._dst_fd)
            self._splice_blocked = False
            self._loop.add_reader(self._src_fd, self._splice_in)

    def _splice_out(self) -> bool:
        """Move the pipe's bytes to dst; True when the pipe is empty."""
        assert self._pipe is not None
        try:
            while self._in_pipe:
                self._in_pipe -= os.splice(
                    self._pipe[0], self._dst_fd, self._in_pipe, flags=_SPLICE_FLAGS
                )
        except BlockingIOError:
            return False
        except OSError as error:
            self._owner.broken(error)
            return False
        return True

    def _leave_splice(self) -> bytes:
        """Stop the fast path; return the bytes that were still in the pipe."""
        self._stop_splice()
        leftover = bytearray()
        while self._in_pipe and self._pipe is not None:
            data = os.read(self._pipe[0], self._in_pipe)
            self._in_pipe -= len(data)
            leftover += data
        return bytes(leftover)

    def _stop_splice(self) -> None:
        if self._splice_blocked:
            self._loop.remove_writer(self._dst_fd)
            self._splice_blocked = False
        else:
            self._loop.remove_reader(self._src_fd)

    # -- pipeline: through the toxics -----------------------------------------------------------

    def _enter_pipeline(self, leftover: bytes) -> None:
        self.mode = "pipeline"
        if leftover:
            self._push(leftover)
        self._start_task()

    def _restart_pipeline(self) -> None:
        self._stop_task()
        self._start_task()

    def _start_task(self) -> None:
        self._update_reading()
        self._task = self._loop.create_task(self._run_pipeline())

    def _stop_task(self) -> None:
        # Synchronous clean-up: the cancelled task only unwinds, it never touches the sockets.
        if self._write_waiter is not None:
            self._loop.remove_writer(self._dst_fd)
        for waiter in (self._data_waiter, self._write_waiter):
            if waiter is not None and not waiter.done():
                waiter.cancel()
        self._data_waiter = self._write_waiter = None
        if self._task is not None:
            self._task.cancel()
            self._task = None

    def _update_reading(self) -> None:
        """Read while there are toxics (with none left, drain first, then splice) and room."""
        want = (
            self.mode == "pipeline"
            and bool(self._chain)
            and not self._src_eof
            and self._buffered < BUFFER_LIMIT
        )
        if want and not self._reading:
            self._loop.add_reader(self._src_fd, self._pipeline_in)
        elif self._reading and not want:
            self._loop.remove_reader(self._src_fd)
        self._reading = want

    def _pipeline_in(self) -> None:
        try:
            data = self._src.recv(READ_SIZE)
        except BlockingIOError:
            return
        except OSError as error:
            self._owner.broken(error)
            return
        if data:
            self._push(data)
        else:
            self._src_eof = True
        self._update_reading()
        if self._data_waiter is not None and not self._data_waiter.done():
            self._data_waiter.set_result(None)

    def _push(self, data: bytes) -> None:
        self._buffer.append(_Chunk(data, self._loop.time()))
        self._buffered += len(data)

    async def _run_pipeline(self) -> None:
        try:
            while await self._pipeline_step():
                pass
        except _Closed:
            pass
        except Exception as error:  # a bug must end the connection, not hang it silently
            log.exception("direction %s failed", self.name)
            self._owner.broken(OSError(str(error)))

    async def _pipeline_step(self) -> bool:
        """Pass one chunk (or the end of stream) on; False when the task is done."""
        if self._buffer:
            head = self._buffer[0]
            await self._through(Piece(memoryview(head.data)[self._head_sent :], head.read_at))
            self._buffer.popleft()
            self._buffered -= len(head.data)
            self._head_sent = 0
            self._update_reading()
            return True
        if self._src_eof:
            await self._through(Piece(memoryview(b""), self._loop.time(), eof=True))
            return False
        if not self._chain:
            # Drained with no toxic left: back to the fast path.
            self._task = None
            self._enter_splice()
            return False
        self._data_waiter = self._loop.create_future()
        await self._data_waiter
        self._data_waiter = None
        return True

    async def _through(self, piece: Piece, index: int = 0) -> None:
        if index == len(self._chain):
            await self._send(piece)
            return

        async def emit(out: Piece) -> None:
            await self._through(out, index + 1)

        await self._chain[index].process(piece, emit)

    async def _send(self, piece: Piece) -> None:
        if piece.eof:
            self._task = None
            self._finish()
            raise _Closed
        view = piece.data
        while view:
            try:
                sent = self._dst.send(view)
            except BlockingIOError:
                await self._wait_writable()
                continue
            except OSError as error:
                self._owner.broken(error)
                raise _Closed from error
            self._head_sent += sent  # pieces are consecutive slices of the head chunk
            view = view[sent:]

    async def _wait_writable(self) -> None:
        waiter = self._write_waiter = self._loop.create_future()
        self._loop.add_writer(self._dst_fd, _wake, waiter)
        try:
            await waiter
        finally:
            if self._write_waiter is waiter:  # not already cleaned up by _stop_task
                self._loop.remove_writer(self._dst_fd)
                self._write_waiter = None

    # -- ends ------------------------------------------------------------------------------------

    def _finish(self) -> None:
        """End of stream passed on: shut dst for writing, tell the connection."""
        self.mode = "done"
        self._release()
        with contextlib.suppress(OSError):
            self._dst.shutdown(socket.SHUT_WR)
        self._owner.direction_done()

    def close(self) -> None:
        """Stop everything at once (the connection is being closed)."""
        if self.mode == "closed":
            return
        if self.mode == "splice":
            self._stop_splice()
        self.mode = "closed"
        self._update_reading()
        self._stop_task()
        self._release()

    def _release(self) -> None:
        for effect in self._effects.values():
            if effect is not None:
                effect.stop()
        self._effects.clear()
        self._chain = []
        if self._pipe is not None:
            for fd in self._pipe:
                os.close(fd)
            self._pipe = None
            self._in_pipe = 0


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _make_pipe() -> tuple[int, int]:
    read_end, write_end = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    # Best effort: over the per-user pipe budget the kernel refuses, and 64 KiB still works.
    with contextlib.suppress(OSError):
        fcntl.fcntl(write_end, _F_SETPIPE_SZ, PIPE_SIZE)
    return read_end, write_end
