"""The replication-lag checker: every sampled lag of every replica must stay within a bound."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from shakedown.checkers._result import Result, invalid, preview, unknown, valid
from shakedown.history import History, Op


@dataclass(frozen=True)
class _Excess:
    time: float
    member: str
    lag_s: float

    def describe(self) -> str:
        return f"{self.member} {self.lag_s:.3f}s at {self.time:.3f}s"


def replication_lag(samples: History | Iterable[Op], bound_s: float, f: str = "lag") -> Result:
    """Check ops ``f="lag"`` whose value maps member to lag in seconds (``None`` when the lag
    could not be measured). Invalid if any measured lag exceeds ``bound_s``; unknown when
    no lag was measured at all."""
    ops = [
        op
        for op in (samples.ops() if isinstance(samples, History) else samples)
        if op.f == f and op.type in ("ok", "info") and isinstance(op.value, Mapping)
    ]
    measured = [
        (op.time, str(m), float(lag))
        for op in ops
        for m, lag in op.value.items()
        if isinstance(lag, int | float)
    ]
    unmeasured = sum(
        1 for op in ops for lag in op.value.values() if not isinstance(lag, int | float)
    )
    if not measured:
        return unknown(
            f"no lag measured ({len(ops)} samples, {unmeasured} unmeasured)",
            {"samples": len(ops), "unmeasured": unmeasured},
        )
    max_lag = max(lag for _, _, lag in measured)
    over = [_Excess(t, m, lag) for t, m, lag in measured if lag > bound_s]
    counts = {
        "samples": len(ops),
        "measurements": len(measured),
        "unmeasured": unmeasured,
        "max_lag_ms": round(max_lag * 1000),
        "over_bound": len(over),
    }
    if over:
        return invalid(
            f"{len(over)} lag measurements over {bound_s}s: "
            f"{preview([e.describe() for e in over], 5)}",
            counts,
            max_lag_s=max_lag,
            first_over=[{"time": e.time, "member": e.member, "lag_s": e.lag_s} for e in over[:10]],
        )
    return valid(
        f"max lag {max_lag:.3f}s within {bound_s}s over {len(ops)} samples",
        counts,
        max_lag_s=max_lag,
    )
