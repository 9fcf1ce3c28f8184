"""The client side of a workload: the ``Client`` protocol every workload client implements,
the typed exceptions a client raises to say whether a failed operation took effect, and the
classifier that turns an exception into a ``fail`` (definitely not applied) or an ``info``
(outcome unknown) completion."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, Protocol

Completion = Literal["ok", "fail", "info"]
COMPLETIONS: tuple[Completion, ...] = ("ok", "fail", "info")


class Client(Protocol):
    """One connection's worth of work, used by one worker thread at a time.

    ``invoke`` performs operation ``f`` with ``value`` and returns ``(completion, value)``,
    usually ``("ok", result)``; it may return ``("fail", ...)`` itself for a definite refusal,
    or raise: ``DefiniteFailure`` when the operation surely had no effect,
    ``IndeterminateFailure`` when it may have; any other exception goes to the classifier.
    """

    def open(self) -> None: ...

    def invoke(self, f: str, value: Any) -> tuple[Completion, Any]: ...

    def close(self) -> None: ...


class DefiniteFailure(Exception):
    """The operation surely did not take effect (refused, constraint violated, rolled back,
    connection refused before anything was sent): recorded as ``fail``."""


class IndeterminateFailure(Exception):
    """The operation may or may not have taken effect (connection lost after the request was
    sent, timeout): recorded as ``info``."""


Classifier = Callable[[str, BaseException], Completion]


def default_classifier(f: str, error: BaseException) -> Completion:
    """``fail`` for ``DefiniteFailure`` and a refused connection, ``info`` for everything else:
    when in doubt the outcome is unknown, which a checker never counts as a loss."""
    if isinstance(error, DefiniteFailure | ConnectionRefusedError):
        return "fail"
    return "info"
