"""The sharding planner: splits tests into N bins (CI machines or xdist workers) so that the
most loaded bin is as light as the recorded durations allow, where a bin's load is its tests'
own durations plus one start + stop of every environment it needs. Tests that share an
environment stay together unless splitting them (paying a second start) lowers the maximum.
Without any recorded duration it falls back to a stable split by module (balanced by test
count). Pure: no pytest, no I/O, deterministic for the same tests and durations whatever
their order."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class PlannedTest:
    """A test to place. ``env``: the key of the environment it shares with other tests
    (topology + scope key), None when it uses none; ``topology``: what the environment's
    start + stop cost is looked up by."""

    nodeid: str
    module: str
    env: str | None = None
    topology: str | None = None


@dataclass
class Plan:
    bins: list[list[str]]  # nodeids of each bin, sorted
    loads: list[float]  # planned seconds of each bin (test counts without durations)
    by_duration: bool  # False: the module split of a suite without recorded durations
    envs: list[list[str]] = field(default_factory=list)  # environment keys each bin starts

    def bin_of(self) -> dict[str, int]:
        return {nodeid: i for i, nodeids in enumerate(self.bins) for nodeid in nodeids}


def plan(tests: Sequence[PlannedTest], bins: int, test_seconds: Mapping[str, float],
         env_seconds: Mapping[str, float]) -> Plan:
    """Place ``tests`` into ``bins`` bins (``test_seconds``: own durations by nodeid;
    ``env_seconds``: start + stop by topology)."""
    if bins < 1:
        raise ValueError(f"bins must be at least 1, not {bins}")
    ordered = sorted(tests, key=lambda t: t.nodeid)
    known = [test_seconds[t.nodeid] for t in ordered if t.nodeid in test_seconds]
    if not known and not any(t.topology in env_seconds for t in ordered):
        return _by_module(ordered, bins)
    # Unknown tests cost the mean of the known ones (as pytest-split does), unknown
    # environments the median of the known ones.
    default_test = sum(known) / len(known) if known else 1.0
    known_envs = sorted(env_seconds.values())
    default_env = known_envs[len(known_envs) // 2] if known_envs else 0.0
    state = _State(bins, {t.nodeid: test_seconds.get(t.nodeid, default_test) for t in ordered},
                   {t.env: env_seconds.get(t.topology or "", default_env)
                    for t in ordered if t.env is not None})
    for unit in _units_by_cost(ordered, state):
        state.place(unit, state.lightest())
    state.improve()
    return Plan([sorted(t.nodeid for t in b.tests()) for b in state.bins],
                [round(b.load, 6) for b in state.bins], True,
                [sorted(b.units) for b in state.bins])


def _by_module(tests: Sequence[PlannedTest], bins: int) -> Plan:
    modules: dict[str, list[str]] = {}
    for test in tests:
        modules.setdefault(test.module, []).append(test.nodeid)
    placed: list[list[str]] = [[] for _ in range(bins)]
    for _, nodeids in sorted(modules.items(), key=lambda m: (-len(m[1]), m[0])):
        lightest = min(range(bins), key=lambda i: (len(placed[i]), i))
        placed[lightest].extend(nodeids)
    return Plan([sorted(b) for b in placed], [float(len(b)) for b in placed], False)


def _unit_key(test: PlannedTest) -> str:
    return test.env if test.env is not None else f"test::{test.nodeid}"


def _units_by_cost(tests: Sequence[PlannedTest], state: _State) -> list[list[PlannedTest]]:
    units: dict[str, list[PlannedTest]] = {}
    for test in tests:
        units.setdefault(_unit_key(test), []).append(test)
    return sorted(units.values(), key=lambda u: (-state.cost(u), _unit_key(u[0])))


class _Bin:
    def __init__(self) -> None:
        self.units: dict[str, list[PlannedTest]] = {}
        self.load = 0.0

    def tests(self) -> Iterable[PlannedTest]:
        for unit in self.units.values():
            yield from unit


@dataclass(frozen=True)
class _Move:
    key: str
    count: int  # how many of the unit's last tests move
    target: int
    new_max: float


class _State:
    """Bins and their loads; moves keep the loads exact (an environment is paid once per bin
    that has any of its tests)."""

    def __init__(self, bins: int, seconds: dict[str, float], env_cost: dict[str, float]) -> None:
        self.bins = [_Bin() for _ in range(bins)]
        self.seconds = seconds
        self.env_cost = env_cost

    def cost(self, unit: Sequence[PlannedTest]) -> float:
        return self.env_cost.get(_unit_key(unit[0]), 0.0) + sum(self.seconds[t.nodeid]
                                                                 for t in unit)

    def lightest(self) -> int:
        return min(range(len(self.bins)), key=lambda i: (self.bins[i].load, i))

    def place(self, tests: Sequence[PlannedTest], index: int) -> None:
        target = self.bins[index]
        key = _unit_key(tests[0])
        if key not in target.units:
            target.units[key] = []
            target.load += self.env_cost.get(key, 0.0)
        target.units[key].extend(tests)
        target.units[key].sort(key=lambda t: t.nodeid)
        target.load += sum(self.seconds[t.nodeid] for t in tests)

    def take(self, index: int, key: str, count: int) -> list[PlannedTest]:
        source = self.bins[index]
        unit = source.units[key]
        moved, source.units[key] = unit[len(unit) - count:], unit[:len(unit) - count]
        source.load -= sum(self.seconds[t.nodeid] for t in moved)
        if not source.units[key]:
            del source.units[key]
            source.load -= self.env_cost.get(key, 0.0)
        return moved

    def improve(self, limit: int = 10_000) -> None:
        """Move tests off the heaviest bin while that lowers its load below where it was
        without raising another bin to it (each move shrinks the sorted loads, so this ends)."""
        for _ in range(limit):
            heaviest = max(range(len(self.bins)), key=lambda i: (self.bins[i].load, -i))
            move = self._best_move(heaviest)
            if move is None:
                return
            self.place(self.take(heaviest, move.key, move.count), move.target)

    def _best_move(self, source: int) -> _Move | None:
        load = self.bins[source].load
        best: _Move | None = None
        for key in sorted(self.bins[source].units):
            unit = self.bins[source].units[key]
            env = self.env_cost.get(key, 0.0)
            moved = 0.0
            for count in range(1, len(unit) + 1):
                moved += self.seconds[unit[-count].nodeid]
                left = load - moved - (env if count == len(unit) else 0.0)
                for target in range(len(self.bins)):
                    if target == source:
                        continue
                    other = self.bins[target]
                    arrived = other.load + moved + (0.0 if key in other.units else env)
                    new_max = max(left, arrived)
                    # A second start of the environment must buy back at least half its
                    # own time off the heaviest bin: a little balance is not worth a start.
                    extra = env if count < len(unit) and key not in other.units else 0.0
                    gain = load - new_max
                    if gain > 1e-9 and gain >= extra / 2 \
                            and (best is None or new_max < best.new_max - 1e-9):
                        best = _Move(key, count, target, new_max)
        return best
