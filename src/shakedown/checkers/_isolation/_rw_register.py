"""Dependency inference from read/write registers with unique written values. A read names
its writer (``wr``), but a register keeps no history, so the version order is only partly
recoverable: the initial ``None`` precedes every write, and (unless turned off) a committed
transaction that read version ``v1`` of a key and then wrote ``v2`` to it puts ``v1`` before
``v2`` (Elle's "writes follow reads"). ``ww`` and ``rw`` edges come from that partial order,
``rw`` only towards the versions known to come right after the one read."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable
from typing import Any

from shakedown.checkers._isolation._findings import Finding
from shakedown.checkers._isolation._graph import RW, WR, WW, Graph
from shakedown.checkers._isolation._txns import Txn

Key = Hashable
INITIAL = None


class RwRegister:
    """The inference for one history, like ``ListAppend``."""

    def __init__(self, txns: list[Txn], *, writes_follow_reads: bool = True) -> None:
        self.txns = txns
        self.graph = Graph()
        self.findings: list[Finding] = []
        self.writer: dict[tuple[Key, Any], int] = {}
        self.writes: dict[int, dict[Key, list[Any]]] = {}
        self.ext_reads: dict[int, dict[Key, Any]] = {}
        self.observed: dict[int, list[tuple[Key, Any]]] = {}
        # key -> version -> versions known to follow it directly
        self.next: dict[Key, dict[Any, set[Any]]] = defaultdict(lambda: defaultdict(set))
        self._index_writes()
        self._reads()
        self._version_orders(writes_follow_reads)
        self._edges()
        self._lost_updates()

    def _index_writes(self) -> None:
        for txn in self.txns:
            mine: dict[Key, list[Any]] = {}
            for op in txn.ops:
                if op.f != "w":
                    continue
                if op.value is None:
                    raise ValueError(f"{txn.name} writes None to key {op.key!r}: None is the "
                                     "initial state of a register, write unique non-null values")
                mine.setdefault(op.key, []).append(op.value)
                other = self.writer.get((op.key, op.value))
                if other is not None and other != txn.id:
                    raise ValueError(
                        f"value {op.value!r} is written to key {op.key!r} by two transactions "
                        f"({self.txns[other].name} and {txn.name}): registers need unique "
                        "written values to tell writers apart"
                    )
                self.writer[(op.key, op.value)] = txn.id
            self.writes[txn.id] = mine

    def _reads(self) -> None:
        """Reads before a txn's own write of a key observe others (the first is external);
        a read after an own write must return it. Two reads that differ without a write in
        between are a non-repeatable read, left to the graph (like list-append)."""
        for txn in self.txns:
            if txn.type != "ok":
                continue
            external: dict[Key, Any] = {}
            observed: list[tuple[Key, Any]] = []
            mine: dict[Key, Any] = {}
            for op in txn.ops:
                if op.f == "w":
                    mine[op.key] = op.value
                    continue
                self._check_read(txn, op.key, op.value)
                if op.key in mine:
                    if op.value != mine[op.key]:
                        why = (f"{txn.name} read key {op.key!r} = {op.value!r} after writing "
                               f"{mine[op.key]!r} to it")
                        self.findings.append(Finding("internal", (txn.id,), why))
                    continue
                observed.append((op.key, op.value))
                external.setdefault(op.key, op.value)
            self.ext_reads[txn.id] = external
            self.observed[txn.id] = observed

    def _check_read(self, txn: Txn, key: Key, value: Any) -> None:
        if value is INITIAL:
            return
        writer = self.writer.get((key, value))
        if writer is None:
            why = f"{txn.name} read {value!r} in key {key!r}, which nobody wrote"
            self.findings.append(Finding("garbage-read", (txn.id,), why))
            return
        if writer == txn.id:
            return
        if self.txns[writer].type == "fail":
            why = (f"{txn.name} read key {key!r} = {value!r}, written by "
                   f"{self.txns[writer].name}, which failed")
            self.findings.append(Finding("G1a", (txn.id, writer), why))
        elif self.writes[writer][key][-1] != value:
            why = (f"{txn.name} read key {key!r} = {value!r}, but {self.txns[writer].name} "
                   f"wrote {self.writes[writer][key][-1]!r} over it")
            self.findings.append(Finding("G1b", (txn.id, writer), why))

    def _version_orders(self, writes_follow_reads: bool) -> None:
        follows: set[tuple[Key, Any]] = set()
        if writes_follow_reads:
            for reader, reads in self.ext_reads.items():
                for key, seen in reads.items():
                    written = self.writes[reader].get(key)
                    if written:
                        self.next[key][seen].add(written[-1])
                        follows.add((key, written[-1]))
        for txn in self.txns:
            for key, values in self.writes[txn.id].items():
                if (key, values[-1]) not in follows:
                    self.next[key][INITIAL].add(values[-1])

    def _node(self, key: Key, value: Any) -> int | None:
        writer = self.writer.get((key, value))
        if writer is None or self.txns[writer].type == "fail":
            return None
        return writer

    def _edges(self) -> None:
        graph = self.graph
        for key, successors in self.next.items():
            for version, nexts in successors.items():
                source = None if version is INITIAL else self._node(key, version)
                for value in nexts:
                    target = self._node(key, value)
                    if source is not None and target is not None:
                        graph.add(source, target, WW)
        for reader, reads in self.observed.items():
            for key, seen in reads:
                if seen is not INITIAL:
                    source = self._node(key, seen)
                    if source is not None:
                        graph.add(source, reader, WR)
                for value in self.next.get(key, {}).get(seen, ()):
                    target = self._node(key, value)
                    if target is not None:
                        graph.add(reader, target, RW)

    def _lost_updates(self) -> None:
        groups: dict[tuple[Key, Any], list[int]] = defaultdict(list)
        for reader, reads in self.ext_reads.items():
            for key, seen in reads.items():
                if key in self.writes[reader]:
                    groups[(key, seen)].append(reader)
        for (key, seen), readers in groups.items():
            if len(readers) > 1:
                names = ", ".join(self.txns[r].name for r in readers)
                why = f"{names} all read key {key!r} = {seen!r} and each wrote it"
                self.findings.append(Finding("lost-update", tuple(readers), why))

    def why(self, a: int, b: int, kind: str) -> str:
        if kind == "wr":
            for key, seen in self.observed.get(b, []):
                if seen is not INITIAL and self.writer.get((key, seen)) == a:
                    return f"{{b}} read key {key!r} = {seen!r}, which {{a}} wrote"
        if kind == "ww":
            for key, values in self.writes.get(b, {}).items():
                for version, nexts in self.next.get(key, {}).items():
                    if values[-1] in nexts and self.writer.get((key, version)) == a:
                        return (f"{{b}} wrote {values[-1]!r} to key {key!r} after reading "
                                f"{{a}}'s {version!r}")
        if kind == "rw":
            for key, seen in self.observed.get(a, []):
                for value in self.next.get(key, {}).get(seen, ()):
                    if self.writer.get((key, value)) == b:
                        return (f"{{a}} read key {key!r} = {seen!r}, before {{b}}'s write "
                                f"of {value!r}")
        return ""
