"""Generators: where operations come from. A generator is any iterable of ``Operation``;
workers of a run draw from it in turn (the runner serializes the draws), so the helpers here
are plain iterators that compose: ``rate_limit(time_limit(mix(...), 5), 100)``. ``phases``
runs generators one after the other, all workers finishing a phase before the next starts."""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Operation:
    """What a worker is asked to do: operation ``f`` with argument ``value``."""

    f: str
    value: Any = None


Generator = Iterable[Operation]


@dataclass(frozen=True)
class Phases:
    """Generators run in sequence; the runner waits for every worker to finish one phase
    (including its in-flight operation) before any worker draws from the next."""

    steps: tuple[Generator, ...]


def phases(*steps: Generator) -> Phases:
    return Phases(tuple(steps))


def once(f: str, value: Any = None) -> Iterator[Operation]:
    """A single operation (a final read: one worker gets it, the others find nothing)."""
    yield Operation(f, value)


def repeat(f: str, value: Any = None) -> Iterator[Operation]:
    """The same operation forever."""
    return itertools.repeat(Operation(f, value))


def each(make: Callable[[], Operation]) -> Iterator[Operation]:
    """An operation made fresh for every draw (random transfers, ...), forever."""
    while True:
        yield make()


def sequential(f: str, start: int = 0) -> Iterator[Operation]:
    """``f`` with the values start, start+1, ...: unique values for a set workload."""
    return (Operation(f, n) for n in itertools.count(start))


def mix(
    *generators: Generator, weights: Sequence[float] | None = None, seed: int | None = None
) -> Iterator[Operation]:
    """Draw from a randomly chosen generator each time (by ``weights``); ends when the chosen
    generator is exhausted."""
    sources = [iter(g) for g in generators]
    chooser = random.Random(seed)
    while True:
        source = chooser.choices(sources, weights=weights)[0]
        operation = next(source, None)
        if operation is None:
            return
        yield operation


def limit(generator: Generator, count: int) -> Iterator[Operation]:
    """At most ``count`` operations."""
    return itertools.islice(generator, count)


def time_limit(generator: Generator, seconds: float) -> Iterator[Operation]:
    """Operations until ``seconds`` after the first draw."""
    deadline: float | None = None
    for operation in generator:
        now = time.monotonic()
        deadline = now + seconds if deadline is None else deadline
        if now >= deadline:
            return
        yield operation


def rate_limit(generator: Generator, per_second: float) -> Iterator[Operation]:
    """At most ``per_second`` operations a second over all workers (draws are spaced
    evenly; a slow worker does not let the others burst to catch up)."""
    interval = 1.0 / per_second
    next_at = time.monotonic()
    for operation in generator:
        delay = next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        next_at = max(next_at, time.monotonic()) + interval
        yield operation
