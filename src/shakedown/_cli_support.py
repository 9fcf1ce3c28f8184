"""What every CLI module shares: the consoles and the decorator that turns a
``ShakedownError`` into its message (what failed / what was checked / how to fix it) and exit
code, never a traceback."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from typing import ParamSpec, TypeVar

from rich.console import Console

from .errors import ShakedownError, mask_url

console = Console()
err_console = Console(stderr=True)
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
