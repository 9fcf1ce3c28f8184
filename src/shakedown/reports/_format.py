"""Small text helpers shared by the HTML report and the terminal."""

from __future__ import annotations

import time


def seconds(value: float | None) -> str:
    """``12.3 ms``, ``1.24 s``, ``2 min 5 s``; ``—`` for None."""
    if value is None:
        return "—"
    if abs(value) < 0.001:
        return f"{value * 1e6:.0f} µs"
    if abs(value) < 10:
        return f"{value * 1000:.1f} ms" if abs(value) < 1 else f"{value:.2f} s"
    if abs(value) < 120:
        return f"{value:.1f} s"
    return f"{int(value // 60)} min {value % 60:.0f} s"


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.0f}%"


def when(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch)) if epoch else "—"


BARS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float]) -> str:
    """A text sparkline for the terminal: ``▁▃▂▇``."""
    if not values:
        return ""
    low, high = min(values), max(values)
    span = high - low
    return "".join(BARS[0 if span == 0 else min(7, int((v - low) / span * 7.999))]
                   for v in values)
