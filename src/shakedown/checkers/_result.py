"""The verdict every checker returns: ``Result`` (valid, invalid or unknown, with a readable
explanation, counts and details) and ``compose`` to fold several named verdicts into one."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast

Validity = Literal["valid", "invalid", "unknown"]
VALIDITIES: tuple[Validity, ...] = ("valid", "invalid", "unknown")


@dataclass(frozen=True)
class Result:
    """A checker's verdict.

    ``validity`` is ``"unknown"`` when the checker could not decide (no final read, no
    samples): unknown is never folded into valid, so ``bool(result)`` is true only when valid.
    """

    validity: Validity
    explanation: str
    counts: dict[str, int] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.validity not in VALIDITIES:
            raise ValueError(f"validity must be one of {VALIDITIES}, got {self.validity!r}")

    def __bool__(self) -> bool:
        return self.validity == "valid"

    def __str__(self) -> str:
        return f"{self.validity}: {self.explanation}"

    @property
    def valid(self) -> bool:
        return self.validity == "valid"

    def to_dict(self) -> dict[str, Any]:
        return {
            "validity": self.validity,
            "explanation": self.explanation,
            "counts": dict(self.counts),
            "details": dict(self.details),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Result:
        validity = data.get("validity")
        if validity not in VALIDITIES:
            raise ValueError(f"validity must be one of {VALIDITIES}, got {validity!r}")
        return cls(
            validity=cast(Validity, validity),
            explanation=str(data.get("explanation", "")),
            counts={str(k): int(v) for k, v in dict(data.get("counts") or {}).items()},
            details=dict(data.get("details") or {}),
        )


def valid(explanation: str, counts: dict[str, int], **details: Any) -> Result:
    return Result("valid", explanation, counts, details)


def invalid(explanation: str, counts: dict[str, int], **details: Any) -> Result:
    return Result("invalid", explanation, counts, details)


def unknown(explanation: str, counts: dict[str, int] | None = None, **details: Any) -> Result:
    return Result("unknown", explanation, counts or {}, details)


def compose(results: Mapping[str, Result]) -> Result:
    """Fold named results: invalid if any is invalid, else unknown if any is unknown (or there
    are none), else valid. Counts are prefixed with the name (``"set.lost"``); each result is
    kept in ``details`` under its name."""
    validity = _combined_validity([r.validity for r in results.values()])
    lines = [f"{name}: {result}" for name, result in results.items()]
    explanation = "\n".join(lines) if lines else "no results to compose"
    counts = {
        f"{name}.{key}": value
        for name, result in results.items()
        for key, value in result.counts.items()
    }
    details = {name: result.to_dict() for name, result in results.items()}
    return Result(validity, explanation, counts, details)


def _combined_validity(validities: list[Validity]) -> Validity:
    if "invalid" in validities:
        return "invalid"
    if "unknown" in validities or not validities:
        return "unknown"
    return "valid"


def preview(values: list[Any], limit: int = 10) -> str:
    """``"1, 2, 3"`` or ``"1, 2, 3, ... (25 in all)"`` for an explanation."""
    shown = ", ".join(repr(v) for v in values[:limit])
    return shown if len(values) <= limit else f"{shown}, ... ({len(values)} in all)"
