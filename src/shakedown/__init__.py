"""shakedown: integration tests against real infrastructure on one machine, with faults."""

from .environment import Environment
from .errors import ShakedownError
from .waits import eventually

__all__ = ["Environment", "ShakedownError", "eventually"]
