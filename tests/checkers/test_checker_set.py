"""set_full on hand-built histories: lost, unexpected, recovered and indeterminate adds."""

from pathlib import Path

from shakedown.checkers import set_full
from shakedown.history import History


def adds(*outcomes: tuple[int, str | None]) -> History:
    """A history of adds: (value, completion type or None for an add that never completed)."""
    history = History()
    for process, (value, outcome) in enumerate(outcomes):
        history.append(process, "invoke", "add", value)
        if outcome is not None:
            history.append(process, outcome, "add", value)  # type: ignore[arg-type]
    return history


def test_valid_when_every_acknowledged_add_is_read() -> None:
    result = set_full(adds((1, "ok"), (2, "ok"), (3, "fail")), {1, 2})
    assert result.validity == "valid"
    assert result.counts["ok"] == 2
    assert result.counts["fail"] == 1
    assert result.counts["attempted"] == 3
    assert result.counts["lost"] == 0


def test_a_lost_write_is_invalid_and_named() -> None:
    result = set_full(adds((1, "ok"), (2, "ok"), (3, "ok")), {1})
    assert result.validity == "invalid"
    assert result.counts["lost"] == 2
    assert "2 acknowledged adds missing from the final read: 2, 3" in result.explanation
    assert result.details["lost"] == [2, 3]


def test_explanation_names_only_the_first_ten_lost_values() -> None:
    result = set_full(adds(*[(n, "ok") for n in range(25)]), set())
    assert result.counts["lost"] == 25
    assert "0, 1, 2, 3, 4, 5, 6, 7, 8, 9, ... (25 in all)" in result.explanation
    assert len(result.details["lost"]) == 10


def test_an_unexpected_value_is_invalid() -> None:
    result = set_full(adds((1, "ok")), {1, 99})
    assert result.validity == "invalid"
    assert result.counts["unexpected"] == 1
    assert "values read that were never added: 99" in result.explanation


def test_an_indeterminate_add_found_is_recovered() -> None:
    result = set_full(adds((1, "ok"), (2, "info")), {1, 2})
    assert result.validity == "valid"
    assert result.counts["recovered"] == 1
    assert result.counts["indeterminate"] == 0


def test_an_indeterminate_add_missing_is_not_a_loss() -> None:
    result = set_full(adds((1, "ok"), (2, "info"), (3, None)), {1})
    assert result.validity == "valid"
    assert result.counts["info"] == 2  # the add that never completed is indeterminate too
    assert result.counts["indeterminate"] == 2
    assert result.counts["lost"] == 0


def test_a_failed_add_that_took_effect_is_invalid() -> None:
    result = set_full(adds((1, "ok"), (2, "fail")), {1, 2})
    assert result.validity == "invalid"
    assert result.counts["failed_present"] == 1


def test_a_value_read_twice_is_invalid() -> None:
    result = set_full(adds((1, "ok")), [1, 1])
    assert result.validity == "invalid"
    assert result.counts["duplicated"] == 1


def test_unknown_without_a_final_read() -> None:
    result = set_full(adds((1, "ok")), None)
    assert result.validity == "unknown"
    assert not result


def test_ignores_other_operations_and_the_nemesis() -> None:
    history = adds((1, "ok"))
    history.append("nemesis", "info", "kill", "db")
    history.append(5, "invoke", "read", None)
    history.append(5, "ok", "read", [1])
    assert set_full(history, {1}).counts["attempted"] == 1


def test_runs_offline_on_a_stored_history(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    live = History(path)
    live.append(0, "invoke", "add", 1)
    live.append(0, "ok", "add", 1)
    live.append(1, "invoke", "add", 2)
    live.append(1, "ok", "add", 2)
    live.close()
    result = set_full(History.load(path), {1})
    assert result.validity == "invalid"
    assert result.details["lost"] == [2]
