"""Bounds on elapsed time in tests: only generous ones that catch a hang, never a speed claim
(speed targets live in bench/, as ratios against a floor or a peer measured in the same run).
``hang_bound(s)`` is ``s`` times SHAKEDOWN_TIMEOUT_SCALE (e.g. 3 on a slow or loaded machine)."""

from __future__ import annotations

from shakedown.waits import scaled


def hang_bound(seconds: float) -> float:
    """A bound that only a hang exceeds, scaled like every timeout of shakedown."""
    return scaled(seconds)
