"""single_leader on role samples: split brain at a sampled time is invalid."""

from shakedown.checkers import single_leader
from shakedown.history import History


def roles(*samples: dict[str, object]) -> History:
    history = History()
    for n, value in enumerate(samples):
        history.append("nemesis", "ok", "roles", value, at=float(n))
    return history


def test_one_primary_at_a_time_is_valid() -> None:
    history = roles(
        {"pg0": "primary", "pg1": "replica"},
        {"pg0": "unknown", "pg1": "replica"},
        {"pg0": "replica", "pg1": "primary"},
    )
    result = single_leader(history)
    assert result.validity == "valid"
    assert result.counts["samples"] == 3
    assert result.counts["no_primary_samples"] == 1


def test_two_writable_primaries_at_once_is_invalid() -> None:
    history = roles({"pg0": "primary", "pg1": "replica"}, {"pg0": "primary", "pg1": "primary"})
    result = single_leader(history)
    assert result.validity == "invalid"
    assert "1.000s: pg0, pg1" in result.explanation
    assert result.details["split_brain"] == [{"time": 1.0, "members": ["pg0", "pg1"]}]


def test_a_fenced_read_only_primary_is_not_writable() -> None:
    history = roles(
        {
            "pg0": {"role": "primary", "writable": False},
            "pg1": {"role": "primary", "writable": True},
        }
    )
    assert single_leader(history).validity == "valid"


def test_tuples_are_grouped_by_time() -> None:
    samples = [
        (0.0, "a", "primary", True),
        (0.0, "b", "replica", False),
        (1.0, "a", "primary", True),
        (1.0, "b", "primary", True),
        (2.0, "a", "primary", False),
        (2.0, "b", "primary", True),
    ]
    result = single_leader(samples)
    assert result.validity == "invalid"
    assert result.counts == {
        "samples": 3,
        "split_brain_samples": 1,
        "no_primary_samples": 0,
        "max_writable_primaries": 2,
    }


def test_unknown_without_samples() -> None:
    history = History()
    history.append(0, "invoke", "add", 1)
    assert single_leader(history).validity == "unknown"


def test_groups_are_checked_one_by_one() -> None:
    """Patroni's Citus groups: a primary per group is right; two in one group is split brain,
    named by its members; a group without a primary counts as a sample without one."""
    def member(role: str, group: str) -> dict[str, object]:
        return {"role": role, "writable": role == "primary", "group": group}

    history = roles(
        {"c0": member("primary", "group0"), "w0": member("primary", "group1"),
         "w1": member("replica", "group1")},
        {"c0": member("primary", "group0"), "w0": member("unknown", "group1"),
         "w1": member("replica", "group1")},
    )
    result = single_leader(history)
    assert result.validity == "valid", result.explanation
    assert result.counts["no_primary_samples"] == 1
    assert result.counts["max_writable_primaries"] == 2

    history.append("nemesis", "ok", "roles", {
        "c0": member("primary", "group0"), "w0": member("primary", "group1"),
        "w1": member("primary", "group1")}, at=5.0)
    result = single_leader(history)
    assert result.validity == "invalid"
    assert result.details["split_brain"] == [{"time": 5.0, "members": ["w0", "w1"]}]
