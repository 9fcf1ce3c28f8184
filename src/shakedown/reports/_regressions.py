"""Regressions: a measurement worse than the median of the last N comparable runs (same test,
same metric, same topology digest) by more than a threshold. "Worse" is slower, unless the
metric's target is a lower bound (``> 100/s``-style ``>``/``>=`` targets): then lower is worse.

Too few earlier values say nothing (``min_runs``, default min(N, 3)), and a change smaller than
``min_delta`` seconds is noise however large it is in percent (a 0.2 ms query that takes
0.3 ms is not a regression)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from ..topology import parse_target
from . import _format
from ._historydb import HistoryDB
from ._run import StoredRun


@dataclass(frozen=True)
class Policy:
    runs: int = 5
    threshold: float = 0.25
    min_runs: int | None = None
    min_delta: float = 0.005

    @property
    def needed(self) -> int:
        return max(1, self.min_runs if self.min_runs is not None else min(self.runs, 3))


@dataclass(frozen=True)
class Comparison:
    """One measurement of the run against its recent history."""

    nodeid: str
    metric: str
    topology: str
    value: float
    median: float | None  # None: too few comparable runs
    compared: int  # how many earlier values the median is of
    threshold: float
    higher_is_worse: bool = True
    regressed: bool = False

    @property
    def change(self) -> float | None:
        """Relative change against the median, positive when worse."""
        if self.median is None or self.median == 0:
            return None
        delta = (self.value - self.median) / self.median
        return delta if self.higher_is_worse else -delta

    def describe(self) -> str:
        direction = "slower" if self.higher_is_worse else "lower"
        change = self.change
        amount = f"{change * 100:.0f}% {direction}" if change is not None else "worse"
        return (f"{self.nodeid}: {self.metric} = {_format.seconds(self.value)}, "
                f"{amount} than the median {_format.seconds(self.median)} of the last "
                f"{self.compared} comparable runs (threshold {self.threshold * 100:.0f}%)")


def compare(run: StoredRun, db: HistoryDB, policy: Policy | None = None) -> list[Comparison]:
    """Every measurement of the run, each compared with the runs that started before it."""
    policy = policy or Policy()
    topology = run.topology_of()
    targets = run.targets
    comparisons: list[Comparison] = []
    for test in run.tests:
        digest = topology.get(test.nodeid, "")
        for metric, value in test.measurements.items():
            earlier = [p.value for p in db.series(test.nodeid, metric, digest,
                                                 before=run.started, limit=policy.runs)
                       if p.run_id != run.run_id]
            higher_is_worse = _higher_is_worse(targets.get(metric))
            if len(earlier) < policy.needed:
                comparisons.append(Comparison(test.nodeid, metric, digest, value, None,
                                              len(earlier), policy.threshold, higher_is_worse))
                continue
            median = float(statistics.median(earlier))
            worse = value - median if higher_is_worse else median - value
            regressed = worse > policy.threshold * abs(median) and worse > policy.min_delta
            comparisons.append(Comparison(test.nodeid, metric, digest, value, median,
                                          len(earlier), policy.threshold, higher_is_worse,
                                          regressed))
    return comparisons


def regressions(comparisons: list[Comparison]) -> list[Comparison]:
    return [c for c in comparisons if c.regressed]


def _higher_is_worse(target: str | None) -> bool:
    if not target:
        return True
    try:
        return parse_target(target).op in ("<", "<=")
    except ValueError:
        return True
