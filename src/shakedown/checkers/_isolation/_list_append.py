"""Dependency inference from list-append transactions (Elle's richest case). Every appended
value is unique, so a read names the writer of each element it returns and the order the
writes were applied in: the longest read of a key gives its version order, every other read
must be a prefix of it. From that order: ``ww`` between consecutive writers, ``wr`` from the
writer of a read's last element to the reader, ``rw`` from a reader to the writer of the
element right after what it saw. Aborted, intermediate and garbage reads, duplicates,
incompatible orders, internal inconsistency and lost updates are found directly."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable
from typing import Any

from shakedown.checkers._isolation._findings import Finding
from shakedown.checkers._isolation._graph import RW, WR, WW, Graph
from shakedown.checkers._isolation._txns import Txn

Key = Hashable
Element = tuple[Key, Any]
_NONE: frozenset[Any] = frozenset()


class ListAppend:
    """The inference for one history; ``graph`` and ``findings`` are filled on construction,
    ``why`` explains one edge afterwards (on demand, so nothing per edge is stored)."""

    def __init__(self, txns: list[Txn]) -> None:
        self.txns = txns
        self.graph = Graph()
        self.findings: list[Finding] = []
        self.writer: dict[Element, int] = {}
        self.committed: dict[Key, set[Any]] = {}  # elements appended by ok or info txns
        self.appends: dict[int, dict[Key, list[Any]]] = {}
        self.ext_reads: dict[int, dict[Key, list[Any]]] = {}
        self.observed: dict[int, list[tuple[Key, list[Any]]]] = {}
        self.order: dict[Key, list[Any]] = {}
        self.pos: dict[Key, dict[Any, int]] = {}
        self._index_writes()
        self._internal_and_external()
        self._version_orders()
        self._edges()
        self._lost_updates()

    # --- indexing ---------------------------------------------------------------------------

    def _index_writes(self) -> None:
        for txn in self.txns:
            mine: dict[Key, list[Any]] = {}
            for op in txn.ops:
                if op.f != "append":
                    continue
                mine.setdefault(op.key, []).append(op.value)
                element = (op.key, op.value)
                other = self.writer.get(element)
                if other is not None and other != txn.id:
                    raise ValueError(
                        f"value {op.value!r} is appended to key {op.key!r} by two transactions "
                        f"({self.txns[other].name} and {txn.name}): list-append needs unique "
                        "values to tell writers apart"
                    )
                self.writer[element] = txn.id
                if txn.type != "fail":
                    self.committed.setdefault(op.key, set()).add(op.value)
            self.appends[txn.id] = mine

    def _internal_and_external(self) -> None:
        """Per committed txn: the reads that observed other transactions' writes (every read
        of a key before the txn's own first append to it; the first one of each key is its
        external read), and whether every read after an own append shows that append.

        A later read that differs from an earlier one without an own append in between is
        no internal error: it is a non-repeatable read, which read committed allows; the
        graph sees it as the cycle it is (``T -rw-> W`` from the first read, ``W -wr-> T``
        from the second), a G-single."""
        for txn in self.txns:
            if txn.type != "ok":
                continue
            external: dict[Key, list[Any]] = {}
            observed: list[tuple[Key, list[Any]]] = []
            mine: dict[Key, list[Any]] = {}
            for op in txn.ops:
                if op.f == "append":
                    mine.setdefault(op.key, []).append(op.value)
                    continue
                value = op.value if op.value is not None else []
                self._check_read(txn, op.key, value)
                own = mine.get(op.key)
                if own:
                    if not _shows(value, own):
                        self._internal(txn, op.key, value, f"expected it to end with {own!r}")
                    continue
                observed.append((op.key, value))
                external.setdefault(op.key, value)
            self.ext_reads[txn.id] = external
            self.observed[txn.id] = observed

    def _internal(self, txn: Txn, key: Key, value: list[Any], expected: str) -> None:
        why = f"{txn.name} read key {key!r} = {value!r} after its own operations; {expected}"
        self.findings.append(Finding("internal", (txn.id,), why))

    def _check_read(self, txn: Txn, key: Key, value: list[Any]) -> None:
        elements = set(value)
        if len(elements) != len(value):
            twice = sorted({v for v in value if value.count(v) > 1}, key=value.index)
            why = f"{txn.name} read key {key!r} with {twice!r} more than once"
            self.findings.append(Finding("duplicate-elements", (txn.id,), why))
        if elements <= self.committed.get(key, _NONE):
            pass  # the common case, decided by one set comparison
        else:
            self._check_elements(txn, key, value)
        if value and txn.type == "ok":
            self._check_intermediate(txn, key, value[-1])

    def _check_elements(self, txn: Txn, key: Key, value: list[Any]) -> None:
        """Name the elements of a read that no (maybe) committed transaction appended."""
        for element in value:
            writer = self.writer.get((key, element))
            if writer is None:
                why = f"{txn.name} read {element!r} in key {key!r}, which nobody appended"
                self.findings.append(Finding("garbage-read", (txn.id,), why))
            elif self.txns[writer].type == "fail":
                why = (f"{txn.name} read {element!r} in key {key!r}, appended by "
                       f"{self.txns[writer].name}, which failed")
                self.findings.append(Finding("G1a", (txn.id, writer), why))

    def _check_intermediate(self, txn: Txn, key: Key, last: Any) -> None:
        writer = self.writer.get((key, last))
        if writer is None or writer == txn.id:
            return
        theirs = self.appends[writer].get(key, [])
        if theirs and theirs[-1] != last:
            why = (f"{txn.name} read key {key!r} ending in {last!r}, but "
                   f"{self.txns[writer].name} appended {theirs[-1]!r} after it")
            self.findings.append(Finding("G1b", (txn.id, writer), why))

    # --- version orders ---------------------------------------------------------------------

    def _version_orders(self) -> None:
        """The longest read of each key is its order; a read that is not a prefix of it is an
        incompatible order (and gives no edges)."""
        reads: dict[Key, list[tuple[int, list[Any]]]] = defaultdict(list)
        for txn in self.txns:
            if txn.type != "ok":
                continue
            for op in txn.ops:
                if op.f == "r":
                    reads[op.key].append((txn.id, op.value if op.value is not None else []))
        for key, observed in reads.items():
            longest = max((value for _, value in observed), key=len)
            for reader, value in observed:
                if longest[: len(value)] != value:
                    why = (f"{self.txns[reader].name} read key {key!r} = {value!r}, not a "
                           f"prefix of {longest!r}")
                    self.findings.append(Finding("incompatible-order", (reader,), why))
            self.order[key] = longest
            self.pos[key] = {v: i for i, v in enumerate(longest)}

    def _compatible(self, key: Key, value: list[Any]) -> bool:
        order = self.order.get(key, [])
        return len(value) <= len(order) and order[: len(value)] == value

    # --- edges ------------------------------------------------------------------------------

    def _node(self, element: Element) -> int | None:
        """The writer of an element if it is a graph node (committed or maybe committed)."""
        writer = self.writer.get(element)
        if writer is None or self.txns[writer].type == "fail":
            return None
        return writer

    def _edges(self) -> None:
        graph = self.graph
        for key, order in self.order.items():
            previous: int | None = None
            for value in order:
                current = self._node((key, value))
                if previous is not None and current is not None:
                    graph.add(previous, current, WW)
                previous = current
        for reader, reads in self.observed.items():
            for key, value in reads:
                if not self._compatible(key, value):
                    continue
                order = self.order[key]
                if value:
                    source = self._node((key, value[-1]))
                    if source is not None:
                        graph.add(source, reader, WR)
                if len(value) < len(order):
                    target = self._node((key, order[len(value)]))
                    if target is not None:
                        graph.add(reader, target, RW)

    def _lost_updates(self) -> None:
        """Committed txns that read the same version of a key and then appended to it."""
        groups: dict[tuple[Key, int], list[int]] = defaultdict(list)
        for reader, reads in self.ext_reads.items():
            mine = self.appends[reader]
            for key, value in reads.items():
                if key in mine and self._compatible(key, value):
                    groups[(key, len(value))].append(reader)
        for (key, length), readers in groups.items():
            if len(readers) < 2:
                continue
            seen = self.order[key][length - 1] if length else None
            version = f"ending in {seen!r}" if length else "empty"
            names = ", ".join(self.txns[r].name for r in readers)
            why = f"{names} all read key {key!r} {version} and each appended to it"
            self.findings.append(Finding("lost-update", tuple(readers), why))

    # --- explanations -----------------------------------------------------------------------

    def why(self, a: int, b: int, kind: str) -> str:
        """One line saying why ``a -kind-> b`` holds (T-names are filled in by the caller as
        {a} and {b})."""
        if kind == "ww":
            return self._why_ww(a, b)
        if kind == "wr":
            return self._why_wr(a, b)
        if kind == "rw":
            return self._why_rw(a, b)
        return ""

    def _why_ww(self, a: int, b: int) -> str:
        for key, values in self.appends[b].items():
            pos = self.pos.get(key, {})
            for value in values:
                i = pos.get(value)
                if i:
                    before = self.order[key][i - 1]
                    if self.writer.get((key, before)) == a:
                        return (f"{{b}} appended {value!r} to key {key!r} right after "
                                f"{{a}}'s {before!r}")
        return ""

    def _why_wr(self, a: int, b: int) -> str:
        for key, value in self.observed.get(b, []):
            if value and self.writer.get((key, value[-1])) == a:
                return f"{{b}} read key {key!r} = {_short(value)}, ending in {{a}}'s append"
        return ""

    def _why_rw(self, a: int, b: int) -> str:
        for key, value in self.observed.get(a, []):
            order = self.order.get(key, [])
            if len(value) < len(order) and self.writer.get((key, order[len(value)])) == b:
                missed = order[len(value)]
                return (f"{{a}} read key {key!r} = {_short(value)} and did not see "
                        f"{missed!r}, which {{b}} appended next")
        return ""


def _shows(value: list[Any], own: list[Any]) -> bool:
    """Whether a read shows the txn's own appends, in order, the last one last."""
    rest = iter(value)
    return bool(value) and value[-1] == own[-1] and all(v in rest for v in own)


def _short(values: list[Any], limit: int = 6) -> str:
    if len(values) <= limit:
        return repr(values)
    tail = ", ".join(repr(v) for v in values[-limit:])
    return f"[... {tail}] ({len(values)} elements)"
