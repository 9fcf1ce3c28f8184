"""The dependency graph between transactions: nodes are transaction ids, each edge carries a
bit mask of its kinds (ww, wr, rw from the data, process and realtime from the history's
order), and the order edges are derived here from where each transaction sits in the
history."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from shakedown.checkers._isolation._txns import Txn

WW, WR, RW, PROCESS, REALTIME = 1, 2, 4, 8, 16
DATA = WW | WR | RW
DEPENDS = WW | WR
ORDER = PROCESS | REALTIME
KIND_NAMES = {WW: "ww", WR: "wr", RW: "rw", PROCESS: "process", REALTIME: "realtime"}
# When an edge has several kinds, a cycle is named by the weakest reading of it: a write or
# read dependency before an anti-dependency, data before the history's order.
PREFERENCE = (WW, WR, RW, PROCESS, REALTIME)


class Graph:
    """Edges ``a -> b`` with a kind mask; self-edges are dropped (a transaction depending on
    itself is checked directly, as internal consistency)."""

    def __init__(self) -> None:
        self.out: dict[int, dict[int, int]] = {}

    def add(self, a: int, b: int, kind: int) -> None:
        if a == b:
            return
        targets = self.out.get(a)
        if targets is None:
            self.out[a] = {b: kind}
        else:
            targets[b] = targets.get(b, 0) | kind

    def mask(self, a: int, b: int) -> int:
        return self.out.get(a, {}).get(b, 0)

    def edges(self, kinds: int, within: set[int] | None = None) -> Iterator[tuple[int, int]]:
        """Edges having one of ``kinds``, optionally only between nodes of ``within`` (then
        only those nodes' edges are visited: a component's search costs its own size)."""
        sources = self.out.keys() if within is None else within
        for a in sources:
            for b, mask in self.out.get(a, {}).items():
                if mask & kinds and (within is None or b in within):
                    yield a, b

    def successors(self, a: int, kinds: int) -> Iterator[int]:
        for b, mask in self.out.get(a, {}).items():
            if mask & kinds:
                yield b

    def count(self) -> dict[str, int]:
        counts = dict.fromkeys(KIND_NAMES.values(), 0)
        for targets in self.out.values():
            for mask in targets.values():
                for bit, name in KIND_NAMES.items():
                    if mask & bit:
                        counts[name] += 1
        return counts


def add_process_edges(graph: Graph, txns: Iterable[Txn]) -> None:
    """Each committed transaction precedes its process's next committed one. A transaction
    with an unknown outcome gets none: it may have taken effect after the process moved on."""
    last: dict[int | str, int] = {}
    for txn in sorted((t for t in txns if t.type == "ok"), key=lambda t: t.index):
        previous = last.get(txn.process)
        if previous is not None:
            graph.add(previous, txn.id, PROCESS)
        last[txn.process] = txn.id


def add_realtime_edges(graph: Graph, txns: Iterable[Txn]) -> None:
    """``a -> b`` when ``a`` completed (ok) before ``b`` was invoked, as a transitive
    reduction: a sweep over the history keeps the frontier of completed transactions no later
    completion follows, so each invocation gets edges from that frontier only (about as many
    as there are workers), not from everything that completed before it."""
    events: list[tuple[int, int, Txn]] = []
    for txn in txns:
        if txn.type not in ("ok", "info"):
            continue
        events.append((txn.index, 1, txn))
        if txn.type == "ok" and txn.done is not None:
            events.append((txn.done, 0, txn))
    events.sort(key=lambda e: (e[0], e[1]))
    frontier: set[int] = set()
    before: dict[int, set[int]] = {}
    for _, is_invoke, txn in events:
        if is_invoke:
            before[txn.id] = set(frontier)
            for a in frontier:
                graph.add(a, txn.id, REALTIME)
        else:
            frontier -= before.pop(txn.id, set())
            frontier.add(txn.id)
