"""Cycle search in the dependency graph. Whether a model's forbidden cycles exist is decided
exactly, in time linear in the graph, from strongly connected components (networkx) of three
graphs:

- ``D``, the ww/wr edges: a cycle there is G0 or G1c (read committed forbids it);
- ``S``, the ww/wr edges plus, for every ``a -rw-> b -ww/wr-> c``, a composite edge ``a -> c``:
  its cycles are exactly the cycles with no two adjacent anti-dependencies (G0, G1c, G-single,
  G-nonadjacent), which snapshot isolation forbids;
- ``F``, all data edges (any cycle: serializability forbids it), and with process and realtime
  order for strict serializability.

Examples are then the shortest cycles (breadth-first) through a few transactions of each
component, each named by its edges (``classify``); a family found to exist always gets at least
one example, since a breadth-first search inside a component always closes a cycle."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import networkx as nx

from shakedown.checkers._isolation._findings import Cycle, Step, classify
from shakedown.checkers._isolation._graph import (
    DATA,
    DEPENDS,
    KIND_NAMES,
    ORDER,
    PREFERENCE,
    RW,
    WW,
    Graph,
)

Adjacency = dict[int, dict[int, int | None]]  # a -> b -> intermediate node of a composite edge
Explain = Callable[[int, int, str], str]
STARTS_PER_EXAMPLE = 4


@dataclass
class Search:
    """What the search found: per family whether a cycle exists, and example cycles by name."""

    exists: dict[str, bool] = field(default_factory=dict)
    cycles: dict[str, list[Cycle]] = field(default_factory=dict)
    components: int = 0
    largest: int = 0

    def saturated(self, limit: int) -> bool:
        """Every cycle name found so far has its examples: later components are only
        sampled (one start each), in case they show a name not seen yet."""
        return bool(self.cycles) and all(len(c) >= limit for c in self.cycles.values())

    def add(self, cycle: Cycle, limit: int) -> None:
        found = self.cycles.setdefault(cycle.name, [])
        if len(found) < limit and all(c.nodes != cycle.nodes for c in found):
            found.append(cycle)


def search(graph: Graph, *, order: bool, examples: int) -> Search:
    """Decide the D / S / F (and FO, with order edges) families and collect examples."""
    result = Search(exists={"D": False, "S": False, "F": False, "FO": False})
    components = _sccs(graph.edges(DATA))
    result.components = len(components)
    result.largest = max((len(c) for c in components), default=0)
    for component in components:
        result.exists["F"] = True
        _search_component(graph, component, result, examples)
    if order:
        for component in _sccs(graph.edges(DATA | ORDER)):
            result.exists["FO"] = True
            adjacency = _restrict(graph, component, DATA | ORDER)
            _examples(graph, adjacency, component, DATA | ORDER, result, examples)
    result.exists["FO"] |= result.exists["F"]
    return result


def _search_component(graph: Graph, component: set[int], result: Search, examples: int) -> None:
    for sub in _sccs(graph.edges(WW, within=component)):
        result.exists["D"] = True
        _examples(graph, _restrict(graph, sub, WW), sub, WW, result, examples)
    for sub in _sccs(graph.edges(DEPENDS, within=component)):
        result.exists["D"] = True
        _examples(graph, _restrict(graph, sub, DEPENDS), sub, DEPENDS, result, examples)
    skew = _composite(graph, component)
    loops = [a for a, targets in skew.items() if a in targets]
    if loops:
        result.exists["S"] = True
        for a in loops[: examples * STARTS_PER_EXAMPLE]:
            result.add(_cycle(graph, [a], skew, DEPENDS), examples)
    for sub in _sccs((a, b) for a, targets in skew.items() for b in targets if a != b):
        result.exists["S"] = True
        _examples(graph, skew, sub, DEPENDS, result, examples)
    _examples(graph, _restrict(graph, component, DATA), component, DATA, result, examples)


def _sccs(edges: Iterable[tuple[int, int]]) -> list[set[int]]:
    """Strongly connected components with more than one node (no graph edge is a self-loop)."""
    digraph: nx.DiGraph[int] = nx.DiGraph()
    digraph.add_edges_from(edges)
    return [c for c in nx.strongly_connected_components(digraph) if len(c) > 1]


def _restrict(graph: Graph, nodes: set[int], kinds: int) -> Adjacency:
    return {a: dict.fromkeys((b for b in graph.successors(a, kinds) if b in nodes), None)
            for a in nodes}


def _composite(graph: Graph, nodes: set[int]) -> Adjacency:
    """The S graph inside a component: ww/wr edges, and ``a -> c`` for ``a -rw-> b -> c``."""
    adjacency = _restrict(graph, nodes, DEPENDS)
    for a in nodes:
        for b in graph.successors(a, RW):
            if b not in nodes:
                continue
            targets = adjacency[a]
            for c in graph.successors(b, DEPENDS):
                if c in nodes and c not in targets:
                    targets[c] = b
    return adjacency


def _examples(graph: Graph, adjacency: Adjacency, nodes: set[int], kinds: int, result: Search,
              examples: int) -> None:
    """Shortest cycles through a few nodes of a component, named and kept per name."""
    starts = 1 if result.saturated(examples) else examples * STARTS_PER_EXAMPLE
    for start in sorted(nodes)[:starts]:
        path = _shortest_cycle(adjacency, start, nodes)
        if path is not None:
            result.add(_cycle(graph, path, adjacency, kinds), examples)


def _shortest_cycle(adjacency: Adjacency, start: int, nodes: set[int]) -> list[int] | None:
    """Breadth-first from ``start`` back to it: the nodes of a shortest cycle through it."""
    parent: dict[int, int] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for nxt in adjacency.get(node, {}):
            if nxt == start:
                path = [node]
                while path[-1] != start:
                    path.append(parent[path[-1]])
                return path[::-1]
            if nxt in nodes and nxt not in parent:
                parent[nxt] = node
                queue.append(nxt)
    return None


def _cycle(graph: Graph, path: list[int], adjacency: Adjacency, kinds: int) -> Cycle:
    """The cycle through ``path`` (closing back to its first node) as typed steps, composite
    edges expanded into their anti-dependency and the dependency after it."""
    steps: list[Step] = []
    for i, a in enumerate(path):
        b = path[(i + 1) % len(path)]
        via = adjacency[a].get(b)
        if via is None:
            steps.append(Step(a, b, _kind(graph.mask(a, b) & kinds)))
        else:
            steps.append(Step(a, via, "rw"))
            steps.append(Step(via, b, _kind(graph.mask(via, b) & DEPENDS)))
    first = min(range(len(steps)), key=lambda i: steps[i].a)  # start at the earliest txn
    steps = steps[first:] + steps[:first]
    name = classify([s.kind for s in steps])
    return Cycle(name, tuple(steps), frozenset(s.a for s in steps))


def _kind(mask: int) -> str:
    for bit in PREFERENCE:
        if mask & bit:
            return KIND_NAMES[bit]
    raise AssertionError(f"edge without a kind (mask {mask})")
