"""The isolation checker on hand-built list-append histories: one history per anomaly type,
found and named, and next to each its correct counterpart, valid even under strict
serializability (no false alarm)."""

from __future__ import annotations

from typing import Any

import pytest
from isolation_support import concurrent, serial, txns

from shakedown.checkers import ISOLATION_MODELS, Result, isolation
from shakedown.history import History

A, R = "append", "r"

# name -> (anomalous history, its correct counterpart)
CASES: dict[str, tuple[History, History]] = {
    "G0": (
        serial(*txns([[A, "x", 1], [A, "y", 2]], [[A, "x", 3], [A, "y", 4]],
                     [[R, "x", [1, 3]], [R, "y", [4, 2]]])),
        serial(*txns([[A, "x", 1], [A, "y", 2]], [[A, "x", 3], [A, "y", 4]],
                     [[R, "x", [1, 3]], [R, "y", [2, 4]]])),
    ),
    "G1a": (
        serial((0, "fail", [[A, "x", 1]]), (1, "ok", [[R, "x", [1]]])),
        serial((0, "fail", [[A, "x", 1]]), (1, "ok", [[R, "x", []]])),
    ),
    "G1b": (
        serial(*txns([[A, "x", 1], [A, "x", 2]], [[R, "x", [1]]])),
        serial(*txns([[A, "x", 1], [A, "x", 2]], [[R, "x", [1, 2]]])),
    ),
    "G1c": (
        concurrent(*txns([[A, "x", 1], [R, "y", [2]]], [[A, "y", 2], [R, "x", [1]]])),
        serial(*txns([[A, "x", 1], [R, "y", []]], [[A, "y", 2], [R, "x", [1]]])),
    ),
    "G-single": (
        concurrent(*txns([[A, "x", 1], [A, "y", 2]], [[R, "x", [1]], [R, "y", []]],
                         [[R, "y", [2]]])),
        serial(*txns([[A, "x", 1], [A, "y", 2]], [[R, "x", [1]], [R, "y", [2]]])),
    ),
    "G-nonadjacent": (
        concurrent(*txns([[R, "a", []], [R, "d", [4]]], [[A, "a", 1], [A, "b", 2]],
                         [[R, "b", [2]], [R, "c", []]], [[A, "c", 3], [A, "d", 4]],
                         [[R, "a", [1]], [R, "c", [3]]])),
        serial(*txns([[R, "a", []], [R, "d", []]], [[A, "a", 1], [A, "b", 2]],
                     [[R, "b", [2]], [R, "c", []]], [[A, "c", 3], [A, "d", 4]],
                     [[R, "a", [1]], [R, "c", [3]], [R, "d", [4]]])),
    ),
    "G2-item": (
        concurrent(*txns([[R, "x", []], [R, "y", []], [A, "x", 1]],
                         [[R, "x", []], [R, "y", []], [A, "y", 2]],
                         [[R, "x", [1]], [R, "y", [2]]])),
        serial(*txns([[R, "x", []], [R, "y", []], [A, "x", 1]],
                     [[R, "x", [1]], [R, "y", []], [A, "y", 2]],
                     [[R, "x", [1]], [R, "y", [2]]])),
    ),
    "lost-update": (
        concurrent(*txns([[R, "x", []], [A, "x", 1]], [[R, "x", []], [A, "x", 2]],
                         [[R, "x", [1, 2]]])),
        serial(*txns([[R, "x", []], [A, "x", 1]], [[R, "x", [1]], [A, "x", 2]],
                     [[R, "x", [1, 2]]])),
    ),
    "internal": (
        serial(*txns([[A, "x", 1], [R, "x", []]])),
        serial(*txns([[A, "x", 1], [R, "x", [1]]])),
    ),
    "duplicate-elements": (
        serial(*txns([[A, "x", 1]], [[R, "x", [1, 1]]])),
        serial(*txns([[A, "x", 1]], [[R, "x", [1]]])),
    ),
    "incompatible-order": (
        serial(*txns([[A, "x", 1]], [[A, "x", 2]], [[R, "x", [1, 2]]], [[R, "x", [2, 1]]])),
        serial(*txns([[A, "x", 1]], [[R, "x", [1]]], [[A, "x", 2]], [[R, "x", [1, 2]]])),
    ),
    "garbage-read": (
        serial(*txns([[A, "x", 1]], [[R, "x", [1, 9]]])),
        serial(*txns([[A, "x", 1]], [[R, "x", [1]]])),
    ),
    # A stale read after the write completed: serializable, not strict serializable.
    "G-single-realtime": (
        serial(*txns([[A, "x", 1]], [[R, "x", []]], [[R, "x", [1]]])),
        serial(*txns([[A, "x", 1]], [[R, "x", [1]]])),
    ),
    "G-single-process": (
        serial((0, "ok", [[A, "x", 1]]), (0, "ok", [[R, "x", []]]), (1, "ok", [[R, "x", [1]]])),
        serial((0, "ok", [[A, "x", 1]]), (0, "ok", [[R, "x", [1]]])),
    ),
}
# The weakest model that forbids each anomaly (each is also forbidden by all stronger ones).
WEAKEST = {
    "G0": "read-committed", "G1a": "read-committed", "G1b": "read-committed",
    "G1c": "read-committed", "G-single": "snapshot-isolation",
    "G-nonadjacent": "snapshot-isolation", "lost-update": "snapshot-isolation",
    "G2-item": "repeatable-read", "internal": "read-committed",
    "duplicate-elements": "read-committed", "incompatible-order": "read-committed",
    "garbage-read": "read-committed", "G-single-realtime": "strict-serializable",
    "G-single-process": "strict-serializable",
}
STRENGTH = ["read-committed", "snapshot-isolation", "repeatable-read", "serializable",
            "strict-serializable"]


def check(history: History, model: str) -> Result:
    return isolation(history, model=model)


@pytest.mark.parametrize("name", CASES)
def test_each_anomaly_is_found_and_named(name: str) -> None:
    anomalous, _ = CASES[name]
    result = check(anomalous, "strict-serializable")
    assert result.validity == "invalid", result.explanation
    assert name in result.details["anomalies"], result.explanation
    assert name in result.details["forbidden_found"]
    assert name in result.details["examples"] and result.details["examples"][name]


@pytest.mark.parametrize("name", CASES)
def test_each_anomaly_is_judged_by_the_models_that_forbid_it(name: str) -> None:
    anomalous, _ = CASES[name]
    weakest = STRENGTH.index(WEAKEST[name])
    for level, model in enumerate(STRENGTH):
        result = check(anomalous, model)
        expected = "invalid" if level >= weakest else "valid"
        assert result.validity == expected, f"{model}: {result.explanation}"
        assert (name in result.details["forbids"]) == (level >= weakest)


@pytest.mark.parametrize("name", CASES)
def test_each_counterpart_is_valid_under_every_model(name: str) -> None:
    _, correct = CASES[name]
    for model in STRENGTH:
        result = check(correct, model)
        assert result.validity == "valid", f"{model}: {result.explanation}"
        assert result.details["anomalies"] == []


def test_a_cycle_is_printed_with_its_transactions_edges_and_why() -> None:
    result = check(CASES["G-single"][0], "serializable")
    text = result.details["examples"]["G-single"][0]
    assert text.startswith("G-single: read skew")
    assert 'T1 = index 0, process 0, ok: [["append", "x", 1], ["append", "y", 2]]' in text
    assert "T1 < T2 (wr): T2 read key 'x' = [1], ending in T1's append" in text
    assert "T2 < T1 (rw): T2 read key 'y' = [] and did not see 2, which T1 appended next" in text
    assert "A cycle, T1 < T2 < T1" in text
    assert text in result.explanation
    assert result.details["cycles"]["G-single"][0]["steps"][0]["kind"] == "wr"


def test_write_skew_is_allowed_by_snapshot_isolation_and_implies_g2() -> None:
    result = check(CASES["G2-item"][0], "snapshot-isolation")
    assert result.validity == "valid", result.explanation
    assert result.details["anomalies"] == ["G2-item"]
    assert result.details["implied"] == ["G2"]
    assert "found but allowed by snapshot-isolation: G2-item" in result.explanation
    assert result.details["ruled_out"] == ["repeatable-read", "serializable",
                                           "strict-serializable"]


def test_a_read_of_an_unknown_outcome_write_is_no_aborted_read() -> None:
    history = serial((0, "info", [[A, "x", 1]]), (1, "ok", [[R, "x", [1]]]))
    result = check(history, "strict-serializable")
    assert result.validity == "valid", result.explanation


def test_realtime_edges_join_a_write_that_completed_before_a_read_began() -> None:
    stale = CASES["G-single-realtime"][0]
    assert check(stale, "serializable").validity == "valid"
    text = check(stale, "strict-serializable").details["examples"]["G-single-realtime"][0]
    assert "(realtime): T1 completed (index 1) before T2 was invoked (index 2)" in text


def test_a_long_g_single_in_many_transactions_is_found() -> None:
    # A chain of write dependencies closed by one stale read: x_0 <- x_1 <- ... <- x_n.
    chain: list[list[list[Any]]] = [[[A, "k0", 0]]]
    for n in range(1, 60):
        chain.append([[R, f"k{n - 1}", [n - 1]], [A, f"k{n}", n]])
    chain.append([[R, "k59", [59]], [R, "k0", []]])
    chain.append([[R, "k0", [0]]])
    result = check(concurrent(*txns(*chain)), "snapshot-isolation")
    assert result.validity == "invalid"
    assert result.details["anomalies"] == ["G-single"]
    assert len(result.details["cycles"]["G-single"][0]["steps"]) == 61


def test_no_transactions_is_unknown() -> None:
    assert check(History(), "serializable").validity == "unknown"
    only_reads = serial(*txns([[R, "x", []]]))
    assert check(only_reads, "serializable").validity == "unknown"


def test_a_malformed_transaction_is_reported_with_what_to_fix() -> None:
    history = History()
    history.append(0, "invoke", "txn", [["add", "x", 1]])
    history.append(0, "ok", "txn", [["add", "x", 1]])
    result = check(history, "serializable")
    assert result.validity == "unknown"
    assert "micro-op ['add', 'x', 1] is not [f, key, value]" in result.explanation
    assert "Fix: record transactions in Elle's shape" in result.explanation


def test_values_appended_twice_are_refused() -> None:
    result = check(serial(*txns([[A, "x", 1]], [[A, "x", 1]])), "serializable")
    assert result.validity == "unknown"
    assert "appended to key 'x' by two transactions" in result.explanation


def test_an_unknown_model_is_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match="choose one of read-committed, snapshot-isolation"):
        check(History(), "linearizable")
    assert set(ISOLATION_MODELS) == set(STRENGTH)


def test_a_non_repeatable_read_is_read_skew_not_an_internal_error() -> None:
    history = concurrent(*txns([[R, "x", []], [R, "x", [1]]], [[A, "x", 1]]))
    allowed = check(history, "read-committed")
    assert allowed.validity == "valid", allowed.explanation
    assert allowed.details["anomalies"] == ["G-single"]
    assert check(history, "snapshot-isolation").validity == "invalid"
