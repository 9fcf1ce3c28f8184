"""The isolation checker on hand-built read/write register histories (unique writes): each
anomaly the registers can show is found and named, its correct counterpart is valid. G0 needs
a write order no register read reveals without a wr edge, so it is tested on list-append."""

from __future__ import annotations

import pytest
from isolation_support import concurrent, serial, txns

from shakedown.checkers import isolation
from shakedown.history import History

W, R = "w", "r"

CASES: dict[str, tuple[History, History]] = {
    "G1a": (
        serial((0, "fail", [[W, "x", 1]]), (1, "ok", [[R, "x", 1]])),
        serial((0, "fail", [[W, "x", 1]]), (1, "ok", [[R, "x", None]])),
    ),
    "G1b": (
        serial(*txns([[W, "x", 1], [W, "x", 2]], [[R, "x", 1]])),
        serial(*txns([[W, "x", 1], [W, "x", 2]], [[R, "x", 2]])),
    ),
    "G1c": (
        concurrent(*txns([[W, "x", 1], [R, "y", 2]], [[W, "y", 2], [R, "x", 1]])),
        serial(*txns([[W, "x", 1], [R, "y", None]], [[W, "y", 2], [R, "x", 1]])),
    ),
    "G-single": (
        concurrent(*txns([[W, "x", 1], [W, "y", 2]], [[R, "x", 1], [R, "y", None]])),
        serial(*txns([[W, "x", 1], [W, "y", 2]], [[R, "x", 1], [R, "y", 2]])),
    ),
    "G2-item": (
        concurrent(*txns([[R, "x", None], [R, "y", None], [W, "x", 1]],
                         [[R, "x", None], [R, "y", None], [W, "y", 2]])),
        serial(*txns([[R, "x", None], [R, "y", None], [W, "x", 1]],
                     [[R, "x", 1], [R, "y", None], [W, "y", 2]])),
    ),
    "lost-update": (
        concurrent(*txns([[R, "x", None], [W, "x", 1]], [[R, "x", None], [W, "x", 2]])),
        serial(*txns([[R, "x", None], [W, "x", 1]], [[R, "x", 1], [W, "x", 2]])),
    ),
    "internal": (
        serial(*txns([[W, "x", 1], [R, "x", None]])),
        serial(*txns([[W, "x", 1], [R, "x", 1]])),
    ),
    "garbage-read": (
        serial(*txns([[W, "x", 1]], [[R, "x", 7]])),
        serial(*txns([[W, "x", 1]], [[R, "x", 1]])),
    ),
    "G-single-realtime": (
        serial(*txns([[W, "x", 1]], [[R, "x", None]])),
        serial(*txns([[W, "x", 1]], [[R, "x", 1]])),
    ),
}


@pytest.mark.parametrize("name", CASES)
def test_each_register_anomaly_is_found_and_named(name: str) -> None:
    result = isolation(CASES[name][0], model="strict-serializable")
    assert result.validity == "invalid", result.explanation
    assert name in result.details["anomalies"], result.explanation
    assert result.details["workload"] == "rw-register"


@pytest.mark.parametrize("name", CASES)
def test_each_register_counterpart_is_valid(name: str) -> None:
    result = isolation(CASES[name][1], model="strict-serializable")
    assert result.validity == "valid", result.explanation
    assert result.details["anomalies"] == []


def test_a_register_cycle_says_which_write_was_missed() -> None:
    text = isolation(CASES["G-single"][0]).details["examples"]["G-single"][0]
    assert "T2 < T1 (rw): T2 read key 'y' = None, before T1's write of 2" in text
    assert "T1 < T2 (wr): T2 read key 'x' = 1, which T1 wrote" in text


def test_without_writes_follow_reads_a_read_then_write_orders_nothing() -> None:
    # T2 read T1's 1 and wrote 2; T3 read 1 too: with the assumption T3 missed T2's 2.
    history = concurrent(*txns([[W, "x", 1]], [[R, "x", 1], [W, "x", 2]],
                               [[R, "x", 1], [R, "y", 3]], [[W, "y", 3], [R, "x", 2]]))
    assumed = isolation(history)
    assert "G-single" in assumed.details["anomalies"], assumed.explanation
    plain = isolation(history, writes_follow_reads=False)
    assert plain.validity == "valid", plain.explanation


def test_mixing_appends_and_register_writes_is_refused() -> None:
    history = serial(*txns([["append", "x", 1]], [[W, "y", 1]]))
    result = isolation(history)
    assert result.validity == "unknown"
    assert "mixes list appends and register writes" in result.explanation
