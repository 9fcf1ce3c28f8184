"""Outbound mail the system sent through SES (``SendEmail``, ``SendRawEmail``,
``SendTemplatedEmail``), as moto's SES backend keeps it, in a plain shape the test reads
(``GET /_shakedown/mail/sent``): id, source, destinations, subject, body or raw MIME text."""

from __future__ import annotations

from typing import Any

from ._settings import DEFAULT_ACCOUNT


def sent_emails(region: str) -> list[dict[str, Any]]:
    """Every message sent so far in ``region`` of the default account, oldest first."""
    from moto.ses.models import ses_backends

    backend = ses_backends[DEFAULT_ACCOUNT][region]
    found = []
    for message in list(backend.sent_messages):
        entry: dict[str, Any] = {"id": getattr(message, "id", None),
                                 "source": getattr(message, "source", None),
                                 "destinations": _plain(getattr(message, "destinations", {}))}
        for key in ("subject", "body", "template", "template_data"):
            if hasattr(message, key):
                entry[key] = _plain(getattr(message, key))
        raw = getattr(message, "raw_data", None)
        if raw is not None:
            entry["raw"] = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
        found.append(entry)
    return found


def _plain(value: Any) -> Any:
    """JSON-ready: dicts, lists and strings as they are, anything else as text."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value if isinstance(value, str | int | float | bool) or value is None else str(value)
