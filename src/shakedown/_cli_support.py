"""What every CLI module shares: the consoles and the decorator that turns a
``ShakedownError`` into its message (what failed / what was checked / how to fix it) and exit
code, never a traceback."""

from __future__ import annotations

import os
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


def plain(text: object) -> str:
    """``text`` (from outside: a log line, a name, a URL) masked and escaped for rich, so that
    ``[bold]`` or ``[/]`` in it print as they are instead of being read as markup."""
    from rich.markup import escape

    return escape(mask_url(str(text)))


def _print_error(text: str) -> None:
    err_console.print(f"[bold red]error:[/] {plain(text)}", markup=True, highlight=False,
                      soft_wrap=True)


def _is_click_error(exc: Exception) -> bool:
    """click's own usage errors (BadParameter...) are click's to print."""
    import click

    return isinstance(exc, click.ClickException | click.exceptions.Exit | click.Abort)


def real_console() -> Console:
    """The rich Console behind ``console``, for rich objects that need the real one (Live)."""
    resolved: Console = console.resolve()  # type: ignore[attr-defined]
    return resolved


class BadOption(ShakedownError):
    """A command-line option names something that does not fit (exit 2: bad input)."""

    exit_code = 2


console: Console = _LazyConsole(emoji=False)  # type: ignore[assignment]  # ":x:" in a log stays ":x:"
err_console: Console = _LazyConsole(stderr=True, emoji=False)  # type: ignore[assignment]
P = ParamSpec("P")
R = TypeVar("R")


def friendly(func: Callable[P, R]) -> Callable[P, R]:
    """Print a ShakedownError as the user should read it and exit with its code."""

    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except ShakedownError as exc:
            # The message quotes what came from outside (a file's keys, a service's log):
            # printed verbatim, never read as markup.
            _print_error(exc.render())
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            _print_error("interrupted: what had started was stopped")
            sys.exit(130)
        except Exception as exc:
            if _is_click_error(exc) or os.environ.get("SHAKEDOWN_DEBUG"):
                raise
            # Not an error shakedown expected: still one message, never a traceback.
            _print_error(ShakedownError(
                f"unexpected {type(exc).__name__}: {exc}",
                checked=["nothing: this error was not foreseen (a bug in shakedown)"],
                fix=["run again with SHAKEDOWN_DEBUG=1 for the traceback and report it"],
            ).render())
            sys.exit(1)

    return wrapper
