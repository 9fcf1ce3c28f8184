"""The exception hierarchy: every error shakedown raises says what failed, what was checked and
how to fix it, so a user never has to read a traceback to know what to do next."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence


class ShakedownError(Exception):
    """Base of every error shakedown raises on purpose.

    ``what`` says what failed, ``checked`` lists what shakedown looked at, ``fix`` lists what
    the user can do. ``details`` holds extra text (a log tail, a validation listing).
    """

    exit_code = 1

    def __init__(
        self,
        what: str,
        *,
        checked: Iterable[str] = (),
        fix: Iterable[str] = (),
        details: str = "",
    ) -> None:
        self.what = what
        self.checked: list[str] = list(checked)
        self.fix: list[str] = list(fix)
        self.details = details
        super().__init__(self.render())

    def also_checked(self, item: str) -> None:
        """Add what a caller knows and the raiser did not (the topology key of a service)."""
        self.checked.append(item)
        self.args = (self.render(),)

    def render(self) -> str:
        lines = [self.what]
        if self.checked:
            lines.append("checked:")
            lines.extend(f"  - {item}" for item in self.checked)
        if self.fix:
            lines.append("fix:")
            lines.extend(f"  - {item}" for item in self.fix)
        if self.details:
            lines.append(self.details.rstrip())
        return "\n".join(lines)


class TopologyError(ShakedownError):
    """The topology file cannot be read or does not validate."""

    exit_code = 2


class UsageError(ShakedownError):
    """A command-line argument, an environment name or an environment variable shakedown
    reads is not usable (bad input, like a bad topology)."""

    exit_code = 2


class MissingBinaryError(ShakedownError):
    """A server binary that a service kind needs is not installed."""

    exit_code = 3

    def __init__(
        self,
        binary: str,
        *,
        kind: str,
        searched: Sequence[str],
        install: str,
    ) -> None:
        self.binary = binary
        self.kind = kind
        self.install = install
        super().__init__(
            f"{binary} not found: the {kind!r} service kind needs it",
            checked=searched,
            fix=[f"install it: {install}", "or set bin_dir for the service in shakedown.toml"],
        )


class PortInUseError(ShakedownError):
    """A fixed port asked for in the topology is taken by another process."""


class ServiceStartError(ShakedownError):
    """A service died while starting or never became ready."""


class EnvironmentStateError(ShakedownError):
    """An environment is missing, already running, or its state file is unreadable."""


class FaultError(ShakedownError):
    """A fault cannot be applied: unknown target, bad parameters or unsupported by the kind."""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """Return ' (did you mean 'x'?)' for the closest choice, or '' when nothing is close."""
    import difflib

    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


_URL_PASSWORD = re.compile(r"(://[^:/@\s]*:)([^@\s]+)(@)")
_DSN_PASSWORD = re.compile(r"(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s'\"]+)", re.IGNORECASE)


def mask_url(text: str) -> str:
    """Hide the password of every URL in ``text`` (``postgresql://u:***@host/db``) and of
    every libpq keyword string (``password=***``)."""
    return _DSN_PASSWORD.sub(r"\1***", _URL_PASSWORD.sub(r"\1***\3", text))
