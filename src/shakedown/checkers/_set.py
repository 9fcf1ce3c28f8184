"""The set checker (Jepsen's ``set-full``, judged on one final read): every acknowledged add
must be present at the end, nothing may appear that was never added, and an add that failed
definitely must not have taken effect."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from shakedown.checkers._histories import HistoryLike, hashable, outcomes
from shakedown.checkers._result import Result, invalid, preview, unknown, valid

_PRECEDENCE = {"ok": 2, "info": 1, "fail": 0}


@dataclass(frozen=True)
class _SetTally:
    attempted: dict[Any, str]  # value -> best outcome, in invocation order
    present: Counter[Any]

    def with_outcome(self, outcome: str) -> list[Any]:
        return [v for v, o in self.attempted.items() if o == outcome]

    def lost(self) -> list[Any]:
        return [v for v in self.with_outcome("ok") if v not in self.present]

    def recovered(self) -> list[Any]:
        return [v for v in self.with_outcome("info") if v in self.present]

    def indeterminate(self) -> list[Any]:
        return [v for v in self.with_outcome("info") if v not in self.present]

    def failed_present(self) -> list[Any]:
        return [v for v in self.with_outcome("fail") if v in self.present]

    def unexpected(self) -> list[Any]:
        return [v for v in self.present if v not in self.attempted]

    def duplicated(self) -> list[Any]:
        return [v for v, n in self.present.items() if n > 1]


def set_full(history: HistoryLike, final_read: Iterable[Any] | None, f: str = "add") -> Result:
    """Judge a set workload: client ops ``f="add"`` each adding one unique value, and
    ``final_read`` the values read at the end (None when the final read could not be done).

    Counts: ``attempted`` adds, ``ok`` (acknowledged), ``fail`` (definitely not applied),
    ``info`` (outcome unknown, including adds that never completed); against the final read:
    ``lost`` (acknowledged but missing), ``unexpected`` (read but never attempted),
    ``recovered`` (an info add found in the final read: it took effect), ``indeterminate`` (an
    info add not found: not a loss), ``failed_present`` (a failed add that took effect after
    all) and ``duplicated`` (read more than once). Invalid iff lost, unexpected,
    failed_present or duplicated is non-zero; unknown when there is no final read.
    """
    attempted = _best_outcomes(outcomes(history, f))
    if final_read is None:
        counts = _outcome_counts(attempted)
        return unknown(
            f"no final read: cannot tell whether any of {len(attempted)} adds were lost", counts
        )
    tally = _SetTally(attempted, Counter(hashable(v) for v in final_read))
    return _verdict(tally)


def _best_outcomes(pairs: list[tuple[Any, str]]) -> dict[Any, str]:
    best: dict[Any, str] = {}
    for invoke, outcome in pairs:
        value = hashable(invoke.value)
        if value not in best or _PRECEDENCE[outcome] > _PRECEDENCE[best[value]]:
            best[value] = outcome
    return best


def _outcome_counts(attempted: dict[Any, str]) -> dict[str, int]:
    counter = Counter(attempted.values())
    return {
        "attempted": len(attempted),
        "ok": counter["ok"],
        "fail": counter["fail"],
        "info": counter["info"],
    }


def _verdict(tally: _SetTally) -> Result:
    problems = {
        "lost": (tally.lost(), "acknowledged adds missing from the final read"),
        "unexpected": (tally.unexpected(), "values read that were never added"),
        "failed_present": (tally.failed_present(), "adds reported as failed that took effect"),
        "duplicated": (tally.duplicated(), "values read more than once"),
    }
    notes = {"recovered": tally.recovered(), "indeterminate": tally.indeterminate()}
    counts = _outcome_counts(tally.attempted)
    counts["read"] = sum(tally.present.values())
    counts.update({name: len(values) for name, (values, _) in problems.items()})
    counts.update({name: len(values) for name, values in notes.items()})
    details = {name: values[:10] for name, (values, _) in problems.items() if values}
    summary = _summary(counts)
    found = [
        f"{len(values)} {text}: {preview(values)}" for values, text in problems.values() if values
    ]
    if found:
        return invalid("; ".join(found) + f" ({summary})", counts, **details)
    return valid(f"every acknowledged add is present ({summary})", counts)


def _summary(counts: dict[str, int]) -> str:
    return (
        f"{counts['attempted']} attempted, {counts['ok']} ok, {counts['fail']} failed, "
        f"{counts['info']} indeterminate of which {counts['recovered']} recovered; "
        f"{counts['read']} values in the final read"
    )
