"""``Workload``: the four parts of a built-in workload bundled under one name, so a test or
the environment can run any of them the same way (setup, clients, generator, final read)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from shakedown.workloads._client import Client
from shakedown.workloads._generators import Operation
from shakedown.workloads._runner import ClientFactory


@dataclass(frozen=True)
class Workload:
    """``setup(conninfo)`` prepares the target, ``client(conninfo)`` makes one worker's
    client, ``generator(...)`` yields the operations, ``final_read(conninfo)`` reads the state
    the checker needs at the end."""

    name: str
    setup: Callable[..., Any]
    client: Callable[..., Client]
    generator: Callable[..., Iterator[Operation]]
    final_read: Callable[..., Any]

    def clients(self, conninfo: str, **options: Any) -> ClientFactory:
        """A client factory for ``Runner``: every worker gets its own client."""
        return lambda _worker: self.client(conninfo, **options)
