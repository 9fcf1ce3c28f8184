"""Waiting for a condition in tests, and the CI timeout multiplier.

``eventually(fn)`` retries ``fn`` until it stops raising and returns a truthy value; on timeout
it fails with the last exception or value, the number of attempts and the time spent.
``SHAKEDOWN_TIMEOUT_SCALE`` (e.g. 3 on a slow CI machine) scales every timeout shakedown uses.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def timeout_scale() -> float:
    try:
        scale = float(os.environ.get("SHAKEDOWN_TIMEOUT_SCALE", "1"))
    except ValueError:
        return 1.0
    return scale if scale > 0 else 1.0


def scaled(seconds: float) -> float:
    """``seconds`` times SHAKEDOWN_TIMEOUT_SCALE."""
    return seconds * timeout_scale()


class EventuallyTimeout(AssertionError):
    """``eventually`` ran out of time; a test failure, not an error of the tool."""


def eventually(
    fn: Callable[[], T],
    timeout: float = 10.0,
    interval: float = 0.05,
    *,
    description: str | None = None,
) -> T:
    """Return ``fn()`` once it stops raising and returns a truthy value."""
    limit = scaled(timeout)
    began = time.monotonic()
    attempts = 0
    last: str = "never called"
    while True:
        attempts += 1
        try:
            value = fn()
            if value:
                return value
            last = f"returned {value!r}"
        except Exception as exc:  # the point is to retry whatever it raises
            last = f"raised {type(exc).__name__}: {exc}"
        elapsed = time.monotonic() - began
        if elapsed >= limit:
            what = description or getattr(fn, "__name__", "condition")
            scale = f" (timeout {timeout}s x scale {timeout_scale():g})" \
                if timeout_scale() != 1 else ""
            raise EventuallyTimeout(
                f"{what} not true after {elapsed:.2f}s and {attempts} attempts{scale}; "
                f"last attempt {last}")
        time.sleep(min(interval, max(0.0, limit - elapsed)))
