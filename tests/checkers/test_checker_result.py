"""Result and compose: validity, truthiness, JSON round trip."""

import json

import pytest

from shakedown.checkers import Result, compose


def test_only_valid_is_true() -> None:
    assert Result("valid", "fine")
    assert not Result("invalid", "lost 1")
    assert not Result("unknown", "no final read")


def test_rejects_an_unknown_validity() -> None:
    with pytest.raises(ValueError, match="validity"):
        Result("maybe", "?")  # type: ignore[arg-type]


def test_round_trips_through_json() -> None:
    result = Result("invalid", "lost 2", {"lost": 2}, {"lost": [1, 2]})
    assert Result.from_dict(json.loads(json.dumps(result.to_dict()))) == result


def test_compose_is_invalid_if_any_is_invalid() -> None:
    combined = compose(
        {
            "set": Result("valid", "ok", {"ok": 3}),
            "bank": Result("invalid", "bad read", {"bad_reads": 1}),
            "lag": Result("unknown", "no samples"),
        }
    )
    assert combined.validity == "invalid"
    assert "bank: invalid: bad read" in combined.explanation
    assert "set: valid: ok" in combined.explanation
    assert combined.counts == {"set.ok": 3, "bank.bad_reads": 1}
    assert combined.details["bank"]["validity"] == "invalid"


def test_compose_is_unknown_if_any_unknown_and_none_invalid() -> None:
    combined = compose({"set": Result("valid", "ok"), "lag": Result("unknown", "no samples")})
    assert combined.validity == "unknown"


def test_compose_is_valid_when_all_are_valid() -> None:
    assert compose({"a": Result("valid", "ok"), "b": Result("valid", "ok")}).validity == "valid"


def test_compose_of_nothing_is_unknown() -> None:
    assert compose({}).validity == "unknown"
