"""FaultError kinds of the control API: each carries the HTTP status the server answers with,
so the server maps errors to statuses in one place and the client turns any of them back into
a plain FaultError with the same text."""

from __future__ import annotations

from shakedown.errors import FaultError


class BadRequestError(FaultError):
    """Bad input: unknown toxic type, bad attribute, malformed body."""

    http_status = 400


class NotFoundError(FaultError):
    """Unknown proxy or toxic name."""

    http_status = 404


class ConflictError(FaultError):
    """Name or port already taken."""

    http_status = 409


def http_status(error: FaultError) -> int:
    """The status to answer for ``error``: 400 unless its kind says otherwise."""
    return int(getattr(error, "http_status", 400))
