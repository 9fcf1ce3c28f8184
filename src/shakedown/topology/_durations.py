"""Parsing of durations ("200ms", "5s", "1m") and targets ("< 5s", "<= 300ms")."""

from __future__ import annotations

import re
from dataclasses import dataclass

_UNITS = {"us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(us|µs|ms|s|min|m|h)?\s*$")
_TARGET = re.compile(r"^\s*(<=|<|>=|>)\s*(.+)$")


def parse_duration(text: str | float | int) -> float:
    """Seconds from '200ms', '1.5s', '2m' or a bare number of seconds."""
    if isinstance(text, int | float):
        return float(text)
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration (examples: '200ms', '1.5s', '2m')")
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


@dataclass(frozen=True)
class Target:
    """A bound on a measured duration: ``< 5s`` means the measurement must stay below 5 s."""

    op: str
    seconds: float
    text: str

    def met_by(self, value: float) -> bool:
        return {
            "<": value < self.seconds,
            "<=": value <= self.seconds,
            ">": value > self.seconds,
            ">=": value >= self.seconds,
        }[self.op]


def parse_target(text: str) -> Target:
    match = _TARGET.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a target (examples: '< 5s', '<= 300ms')")
    return Target(op=match.group(1), seconds=parse_duration(match.group(2)), text=text.strip())
