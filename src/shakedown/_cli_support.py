"""What every CLI module shares: the consoles and the decorator that turns a
``ShakedownError`` into its message (what failed / what was checked / how to fix it) and exit
code, never a traceback."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from .errors import ShakedownError, mask_url

if TYPE_CHECKING:
    from rich.console import Console


class _LazyConsole:
    """A rich Console made on first use: ``--help``, ``--version`` and ``env`` print nothing
    through rich and should not pay for importing it."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._console: Console | None = None

    def resolve(self) -> Console:
        if self._console is None:
            from rich.console import Console

            self._console = Console(**self._options)
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self.resolve(), name)


def real_console() -> Console:
    """The rich Console behind ``console``, for rich objects that need the real one (Live)."""
    resolved: Console = console.resolve()  # type: ignore[attr-defined]
    return resolved


class BadOption(ShakedownError):
    """A command-line option names something that does not fit (exit 2: bad input)."""

    exit_code = 2


console: Console = _LazyConsole()  # type: ignore[assignment]
err_console: Console = _LazyConsole(stderr=True)  # type: ignore[assignment]
P = ParamSpec("P")
R = TypeVar("R")


def friendly(func: Callable[P, R]) -> Callable[P, R]:
    """Print a ShakedownError as the user should read it and exit with its code."""

    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except ShakedownError as exc:
            err_console.print(f"[bold red]error:[/] {mask_url(exc.render())}", markup=True,
                              highlight=False, soft_wrap=True)
            sys.exit(exc.exit_code)

    return wrapper
