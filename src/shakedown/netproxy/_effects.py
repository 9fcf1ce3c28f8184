"""Toxic effects: what one toxic does to one direction of one live connection.

An effect receives ``Piece``s (a slice of the bytes read from the source, or the end-of-stream
marker) and hands them on with ``emit``, possibly later, cut up or never. Effects only delay,
cut, hold or end the stream; they never change or reorder bytes, which is what lets a
direction re-run an interrupted piece when its toxics change.

Timing follows a pipeline model: a piece carries ``ready``, the loop time at which it is due at
the next stage (first: when it was read). An effect computes its output time from ``ready``
rather than from "now", so effects that wait one after the other still behave as stages that
run side by side: two latency toxics add up, and latency does not cap throughput.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from ._toxics import ToxicSpec


@dataclass(frozen=True)
class Piece:
    """Bytes on their way through a direction's toxics (or the end of the stream)."""

    data: memoryview
    ready: float
    eof: bool = False


Emit = Callable[[Piece], Awaitable[None]]


class Link(Protocol):
    """What an effect may do to the connection it acts on."""

    def close(self) -> None:
        """End the connection with a normal close (FIN after the data already sent)."""

    def reset(self) -> None:
        """End the connection with a reset (RST)."""


async def sleep_until(loop: asyncio.AbstractEventLoop, when: float) -> None:
    delay = when - loop.time()
    if delay > 0:
        await asyncio.sleep(delay)


class Effect:
    """One toxic acting on one direction of one connection; the base passes data through."""

    def __init__(
        self, spec: ToxicSpec, link: Link, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.spec = spec
        self.link = link
        self.loop = loop
        self.attrs: Mapping[str, float] = spec.attributes
        self._timer: asyncio.Handle | None = None

    def start(self) -> None:
        """Called once when the toxic starts acting on the connection."""

    def stop(self) -> None:
        """Called once when the toxic is removed or the connection ends."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def process(self, piece: Piece, emit: Emit) -> None:
        await emit(piece)


class Latency(Effect):
    """Each piece leaves latency_ms ± jitter_ms after it was ready (stacked latencies add)."""

    async def process(self, piece: Piece, emit: Emit) -> None:
        jitter = self.attrs["jitter_ms"]
        delay_ms = self.attrs["latency_ms"] + (random.uniform(-jitter, jitter) if jitter else 0.0)
        ready = piece.ready + max(0.0, delay_ms) / 1000.0
        await sleep_until(self.loop, ready)
        await emit(Piece(piece.data, ready, piece.eof))


class Bandwidth(Effect):
    """At most rate_kbps KB/s (KB = 1000 bytes, as in Toxiproxy)."""

    def __init__(self, spec: ToxicSpec, link: Link, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(spec, link, loop)
        self._rate = self.attrs["rate_kbps"] * 1000.0  # bytes per second; KB = 1000 bytes
        # Send at most 100 ms worth of data at a time so slow rates still flow smoothly.
        self._slice = max(1, int(self._rate / 10))
        self._free_at = 0.0  # when the simulated link has sent everything handed to it

    async def process(self, piece: Piece, emit: Emit) -> None:
        if piece.eof:
            await emit(Piece(piece.data, max(piece.ready, self._free_at), eof=True))
            return
        data = piece.data
        for offset in range(0, len(data), self._slice):
            part = data[offset : offset + self._slice]
            self._free_at = max(piece.ready, self._free_at) + len(part) / self._rate
            await sleep_until(self.loop, self._free_at)
            await emit(Piece(part, self._free_at))


class Timeout(Effect):
    """Pass nothing; with timeout_ms > 0 close the connection that long after the toxic
    starts acting on it (connection opened, or toxic added), with 0 hold until removed."""

    def start(self) -> None:
        timeout_ms = self.attrs["timeout_ms"]
        if timeout_ms > 0:
            self._timer = self.loop.call_later(timeout_ms / 1000.0, self.link.close)

    async def process(self, piece: Piece, emit: Emit) -> None:
        # Hold the data (and the end of stream) until the toxic is removed, which cancels us.
        await self.loop.create_future()


class ResetPeer(Effect):
    """Reset (RST) the connection timeout_ms after the toxic starts acting on it; 0 = at once.
    Data flows normally until then."""

    def start(self) -> None:
        self._timer = self.loop.call_later(self.attrs["timeout_ms"] / 1000.0, self.link.reset)


class Slicer(Effect):
    """Cut data into pieces of average_size ± size_variation bytes, delay_us apart."""

    async def process(self, piece: Piece, emit: Emit) -> None:
        if piece.eof or not piece.data:
            await emit(piece)
            return
        average, variation = int(self.attrs["average_size"]), int(self.attrs["size_variation"])
        delay = self.attrs["delay_us"] / 1e6
        # Delays count from now, not from when the bytes were read: the point of the slicer
        # is that the receiver sees separate pieces, even for data that waited in a buffer.
        ready = max(piece.ready, self.loop.time())
        data, offset = piece.data, 0
        while offset < len(data):
            size = max(1, average + random.randint(-variation, variation))
            if offset:
                ready += delay
                await sleep_until(self.loop, ready)
            await emit(Piece(data[offset : offset + size], ready))
            offset += size


class LimitData(Effect):
    """Close the connection once ``bytes`` bytes have passed in this direction (counted from
    when the toxic started acting on the connection)."""

    def __init__(self, spec: ToxicSpec, link: Link, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(spec, link, loop)
        self._limit = int(self.attrs["bytes"])
        self._passed = 0

    def start(self) -> None:
        if self._limit == 0:
            self._timer = self.loop.call_soon(self.link.close)

    async def process(self, piece: Piece, emit: Emit) -> None:
        room = self._limit - self._passed
        if piece.eof or len(piece.data) < room:
            self._passed += len(piece.data)
            await emit(piece)
            return
        # Counted before sending: if the toxic set changes mid-send, never pass too much.
        self._passed = self._limit
        if room > 0:
            await emit(Piece(piece.data[:room], piece.ready))
        self.link.close()  # cancels the task running us
        await self.loop.create_future()


_EFFECTS: dict[str, type[Effect]] = {
    "latency": Latency,
    "bandwidth": Bandwidth,
    "timeout": Timeout,
    "reset_peer": ResetPeer,
    "slicer": Slicer,
    "limit_data": LimitData,
}


def make_effect(spec: ToxicSpec, link: Link, loop: asyncio.AbstractEventLoop) -> Effect:
    """The effect of ``spec`` on one direction of one connection (``down`` has none: it acts
    on the proxy)."""
    return _EFFECTS[spec.type](spec, link, loop)
