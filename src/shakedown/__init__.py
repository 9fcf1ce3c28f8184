"""shakedown: integration tests against real infrastructure on one machine, with faults.

The public names are imported lazily: helper processes (the owner watchdog, the fault proxy)
import ``shakedown.process`` or ``shakedown.netproxy`` and must not pay for the whole package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .environment import Environment
    from .errors import ShakedownError
    from .waits import eventually

__version__ = "0.1.0"  # the package's version (pyproject reads it from here)
__all__ = ["Environment", "ShakedownError", "__version__", "eventually"]

_WHERE = {"Environment": "environment", "ShakedownError": "errors", "eventually": "waits"}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module 'shakedown' has no attribute {name!r}")
