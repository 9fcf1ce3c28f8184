"""replication_lag on lag samples."""

from shakedown.checkers import replication_lag
from shakedown.history import History


def lags(*samples: dict[str, float | None]) -> History:
    history = History()
    for n, value in enumerate(samples):
        history.append("nemesis", "ok", "lag", value, at=float(n))
    return history


def test_lag_within_the_bound_is_valid() -> None:
    result = replication_lag(lags({"r1": 0.1, "r2": 0.4}, {"r1": 0.2, "r2": None}), 0.5)
    assert result.validity == "valid"
    assert result.counts["max_lag_ms"] == 400
    assert result.counts["unmeasured"] == 1
    assert result.counts["samples"] == 2


def test_lag_over_the_bound_is_invalid() -> None:
    result = replication_lag(lags({"r1": 0.1}, {"r1": 2.5}), 1.0)
    assert result.validity == "invalid"
    assert "r1 2.500s at 1.000s" in result.explanation
    assert result.details["max_lag_s"] == 2.5


def test_unknown_without_measurements() -> None:
    assert replication_lag(History(), 1.0).validity == "unknown"
    assert replication_lag(lags({"r1": None}), 1.0).validity == "unknown"
