"""The bank checker: money moves between accounts by transfers but is never created or
destroyed, so every successful read of all balances, and the final balances, must sum to the
same total, with no negative balance unless the workload allows overdrafts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shakedown.checkers._histories import HistoryLike, as_history
from shakedown.checkers._result import Result, invalid, unknown, valid


@dataclass(frozen=True)
class _BadRead:
    where: str  # "read at 1.234s by process 3" or "final read"
    problem: str
    balances: Mapping[str, Any]

    def describe(self) -> str:
        return f"{self.where}: {self.problem}"

    def to_dict(self) -> dict[str, Any]:
        return {"where": self.where, "problem": self.problem, "balances": dict(self.balances)}


def bank(
    history: HistoryLike,
    final_balances: Mapping[Any, int | float] | None,
    total: int | float,
    *,
    allow_negative: bool = False,
    f: str = "read",
) -> Result:
    """Check every ``ok`` read (value: ``{account: balance}``) and ``final_balances`` against
    ``total``. Invalid on the first read whose sum differs or that shows a negative balance;
    unknown when the reads are all fine but there are no final balances."""
    reads = _ok_reads(history, f)
    bad = [b for where, bal in reads if (b := _problem(where, bal, total, allow_negative))]
    final_bad = None
    if final_balances is not None:
        final_bad = _problem("final read", final_balances, total, allow_negative)
        bad += [final_bad] if final_bad else []
    counts = {
        "reads": len(reads),
        "bad_reads": len(bad) - (1 if final_bad else 0),
        "final_bad": 1 if final_bad else 0,
    }
    if bad:
        explanation = f"{len(bad)} bad reads; first: {bad[0].describe()}"
        return invalid(explanation, counts, first_bad=bad[0].to_dict())
    if final_balances is None:
        return unknown(
            f"all {len(reads)} reads sum to {total}, but there are no final balances to check",
            counts,
        )
    return valid(f"all {len(reads)} reads and the final balances sum to {total}", counts)


def _ok_reads(history: HistoryLike, f: str) -> list[tuple[str, Mapping[Any, Any]]]:
    return [
        (f"read at {done.time:.3f}s by process {done.process}", done.value)
        for invoke, done in as_history(history).completions()
        if invoke.f == f
        and done is not None
        and done.type == "ok"
        and isinstance(done.value, Mapping)
    ]


def _problem(
    where: str, balances: Mapping[Any, Any], total: int | float, allow_negative: bool
) -> _BadRead | None:
    amounts = list(balances.values())
    if any(not isinstance(a, int | float) for a in amounts):
        return _BadRead(where, "a balance is not a number", balances)
    if sum(amounts) != total:
        return _BadRead(where, f"balances sum to {sum(amounts)}, expected {total}", balances)
    negative = {str(k): v for k, v in balances.items() if v < 0}
    if negative and not allow_negative:
        return _BadRead(where, f"negative balances {negative}", balances)
    return None
