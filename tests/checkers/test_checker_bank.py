"""bank on hand-built histories: reads and final balances must keep the total."""

from shakedown.checkers import bank
from shakedown.history import History


def reads(*balances: dict[str, int], failed_transfer: bool = True) -> History:
    history = History()
    if failed_transfer:
        history.append(1, "invoke", "transfer", {"from": 0, "to": 1, "amount": 500}, at=0.05)
        history.append(1, "fail", "transfer", {"from": 0, "to": 1, "amount": 500}, at=0.06)
    for n, value in enumerate(balances):
        history.append(0, "invoke", "read", None, at=n + 0.1)
        history.append(0, "ok", "read", value, at=n + 0.2)
    return history


def test_valid_when_every_read_and_the_final_balances_hold_the_total() -> None:
    result = bank(reads({"0": 50, "1": 50}, {"0": 30, "1": 70}), {"0": 40, "1": 60}, 100)
    assert result.validity == "valid"
    assert result.counts["reads"] == 2


def test_a_read_with_a_wrong_sum_is_invalid_and_reported_with_its_time() -> None:
    result = bank(reads({"0": 50, "1": 50}, {"0": 30, "1": 60}), {"0": 40, "1": 60}, 100)
    assert result.validity == "invalid"
    assert result.counts["bad_reads"] == 1
    assert "read at 1.200s by process 0: balances sum to 90, expected 100" in result.explanation


def test_a_negative_balance_is_invalid_unless_allowed() -> None:
    history = reads({"0": -10, "1": 110})
    assert bank(history, {"0": 50, "1": 50}, 100).validity == "invalid"
    assert bank(history, {"0": 50, "1": 50}, 100, allow_negative=True).validity == "valid"


def test_bad_final_balances_are_invalid() -> None:
    result = bank(reads({"0": 50, "1": 50}), {"0": 50, "1": 49}, 100)
    assert result.validity == "invalid"
    assert result.counts["final_bad"] == 1
    assert "final read" in result.explanation


def test_failed_and_indeterminate_reads_are_not_judged() -> None:
    history = reads({"0": 50, "1": 50})
    history.append(2, "invoke", "read", None)
    history.append(2, "info", "read", None)
    history.append(3, "invoke", "read", None)
    history.append(3, "fail", "read", None)
    assert bank(history, {"0": 50, "1": 50}, 100).counts["reads"] == 1


def test_unknown_without_final_balances() -> None:
    assert bank(reads({"0": 50, "1": 50}), None, 100).validity == "unknown"


def test_invalid_reads_win_over_missing_final_balances() -> None:
    assert bank(reads({"0": 50, "1": 10}), None, 100).validity == "invalid"
