"""``shakedown check``: checkers re-run offline on stored histories (hand-built here)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from shakedown.checkers import check_history
from shakedown.history import NEMESIS, History, record_final


def stored(tmp_path: Path, name: str, lost: bool) -> Path:
    path = tmp_path / "histories" / f"{name}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    history = History(path)
    for value in range(5):
        history.append(0, "invoke", "add", value)
        history.append(0, "ok", "add", value)
    history.append(NEMESIS, "info", "fault-start", {"target": "db", "kind": "kill", "id": 1})
    history.append(1, "invoke", "add", 99)
    history.append(1, "info", "add", 99, error="connection lost")
    record_final(history, "final-read", [0, 1, 2, 3] if lost else [0, 1, 2, 3, 4])
    history.close()
    return path


def test_check_history_finds_the_set_checker(tmp_path: Path) -> None:
    results = check_history(History.load(stored(tmp_path, "good", lost=False)))
    assert set(results) == {"set"}
    assert results["set"].validity == "valid"
    assert results["set"].counts["indeterminate"] == 1
    results = check_history(History.load(stored(tmp_path, "bad", lost=True)))
    assert results["set"].validity == "invalid" and results["set"].counts["lost"] == 1


def test_bank_needs_a_total(tmp_path: Path) -> None:
    history = History()
    history.append(0, "invoke", "transfer", {"from": "a", "to": "b", "amount": 1})
    history.append(0, "ok", "transfer", {"from": "a", "to": "b", "amount": 1})
    history.append(0, "invoke", "read", None)
    history.append(0, "ok", "read", {"a": 9, "b": 11})
    assert check_history(history)["bank"].validity == "unknown"
    record_final(history, "final-balances", {"a": 9, "b": 11}, total=20)
    assert check_history(history)["bank"].validity == "valid"
    record_final(history, "final-balances", {"a": 9, "b": 12}, total=20)
    assert check_history(history)["bank"].validity == "invalid"


def test_lag_needs_a_bound() -> None:
    history = History()
    history.append(NEMESIS, "info", "lag", {"replica": 0.5})
    assert check_history(history)["replication_lag"].validity == "unknown"
    assert check_history(history, lag_bound_s=1)["replication_lag"].validity == "valid"
    assert check_history(history, lag_bound_s=0.1)["replication_lag"].validity == "invalid"


def check(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "shakedown", "check", *args],
                          capture_output=True, text=True, check=False,
                          env={**os.environ, "COLUMNS": "200"})


def verdicts(stdout: str) -> dict[str, str]:
    """history file -> the result column of its row."""
    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in stdout.splitlines()
            if line.startswith("│")]
    return {row[0]: row[3] for row in rows}


def test_cli_check_exits_0_when_every_history_is_valid(tmp_path: Path) -> None:
    stored(tmp_path, "good", lost=False)
    result = check(str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert verdicts(result.stdout) == {"good.jsonl": "valid"}


def test_cli_check_exits_1_on_a_lost_write(tmp_path: Path) -> None:
    stored(tmp_path, "good", lost=False)
    stored(tmp_path, "bad", lost=True)
    result = check(str(tmp_path))
    assert result.returncode == 1, result.stdout + result.stderr
    assert verdicts(result.stdout) == {"bad.jsonl": "invalid", "good.jsonl": "valid"}
    assert "1 acknowledged adds missing from the final read: 4" in result.stdout
    empty = subprocess.run([sys.executable, "-m", "shakedown", "check", str(tmp_path / "histories"
                                                                             / "..")],
                           capture_output=True, text=True, check=False)
    assert empty.returncode == 1
    none = tmp_path / "none"
    none.mkdir()
    missing = subprocess.run([sys.executable, "-m", "shakedown", "check", str(none)],
                             capture_output=True, text=True, check=False)
    assert missing.returncode == 1 and "no history in" in missing.stderr


def test_cli_check_lag_bound(tmp_path: Path) -> None:
    path = tmp_path / "histories" / "lag.jsonl"
    path.parent.mkdir(parents=True)
    history = History(path)
    history.append(NEMESIS, "info", "lag", {"replica": 0.5})
    history.close()
    without = check(str(tmp_path))  # no bound: the lag checker cannot judge
    assert without.returncode == 0 and verdicts(without.stdout) == {"lag.jsonl": "unknown"}
    within = check(str(tmp_path), "--lag-bound", "1s")
    assert within.returncode == 0 and verdicts(within.stdout) == {"lag.jsonl": "valid"}
    over = check(str(tmp_path), "--lag-bound", "100ms")
    assert over.returncode == 1 and verdicts(over.stdout) == {"lag.jsonl": "invalid"}
    bad = check(str(tmp_path), "--lag-bound", "soon")
    assert bad.returncode == 1 and "duration such as 200ms" in bad.stderr


def test_histories_are_checked_per_test(tmp_path: Path) -> None:
    """Two tests on one environment reuse the same ids: each is checked on its own."""
    from shakedown.checkers import split_by_test

    history = History()
    for test, final in (("t.py::one", [0, 1]), ("t.py::two", [0])):
        history.append(NEMESIS, "info", "test", {"target": test, "event": "start"})
        for value in (0, 1):
            history.append(0, "invoke", "add", value)
            history.append(0, "ok", "add", value)
        record_final(history, "final-read", final)
        history.append(NEMESIS, "info", "test", {"target": test, "event": "end"})
    segments = split_by_test(history)
    assert list(segments) == ["t.py::one", "t.py::two"]
    assert check_history(segments["t.py::one"])["set"].validity == "valid"
    two = check_history(segments["t.py::two"])["set"]
    assert two.validity == "invalid" and two.counts["lost"] == 1
