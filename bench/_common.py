"""Helpers shared by the benchmarks: repeated timing with min/median/max, and printing
figures as ratios against a target or a floor measured in the same run."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Figures:
    name: str
    samples: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    def line(self) -> str:
        ms = [s * 1000 for s in self.samples]
        return (f"{self.name:<44} min {min(ms):8.1f} ms  median {statistics.median(ms):8.1f} ms"
                f"  max {max(ms):8.1f} ms  (n={len(ms)})")


def repeat(name: str, runs: int, once: Callable[[], float]) -> Figures:
    """Call ``once`` (which returns the seconds it measured) ``runs`` times."""
    figures = Figures(name, [once() for _ in range(runs)])
    print(figures.line(), flush=True)
    return figures


def timed(action: Callable[[], object]) -> float:
    began = time.perf_counter()
    action()
    return time.perf_counter() - began


def verdict(label: str, value: float, target: float, *, higher_is_better: bool = False) -> str:
    ok = value >= target if higher_is_better else value <= target
    sign = ">=" if higher_is_better else "<="
    return f"{label:<58} {value:8.2f}  target {sign} {target:<6} {'MET' if ok else 'MISSED'}"
