"""``shakedown check`` on a stored history of transactions: the isolation checker applies,
against the model recorded with the history or the one given on the command line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from isolation_support import concurrent, txns

from shakedown.checkers import check_history
from shakedown.history import History, record_final

A, R = "append", "r"


def write_skew(path: Path, model: str | None) -> Path:
    """A write skew (G2-item: allowed by snapshot isolation, not by serializability)."""
    built = concurrent(*txns([[R, "x", []], [R, "y", []], [A, "x", 1]],
                             [[R, "x", []], [R, "y", []], [A, "y", 2]],
                             [[R, "x", [1]], [R, "y", [2]]]))
    path.parent.mkdir(parents=True, exist_ok=True)
    history = History(path)
    for op in built.ops():
        history.append(op.process, op.type, op.f, op.value)
    if model is not None:
        record_final(history, "isolation-model", model)
    history.close()
    return path


def test_the_recorded_model_is_used_unless_another_is_given(tmp_path: Path) -> None:
    history = History.load(write_skew(tmp_path / "h.jsonl", "snapshot-isolation"))
    assert check_history(history)["isolation"].validity == "valid"
    strict = check_history(history, isolation_model="serializable")["isolation"]
    assert strict.validity == "invalid" and strict.details["anomalies"] == ["G2-item"]
    unrecorded = History.load(write_skew(tmp_path / "u.jsonl", None))
    assert check_history(unrecorded)["isolation"].details["model"] == "serializable"


def test_cli_check_names_the_anomaly_and_exits_1(tmp_path: Path) -> None:
    write_skew(tmp_path / "histories" / "skew.jsonl", None)
    env = {**os.environ, "COLUMNS": "250"}
    command = [sys.executable, "-m", "shakedown", "check", str(tmp_path)]
    found = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    assert found.returncode == 1, found.stdout + found.stderr
    assert "isolation" in found.stdout and "G2-item" in found.stdout
    allowed = subprocess.run([*command, "--isolation-model", "snapshot-isolation"],
                             capture_output=True, text=True, check=False, env=env)
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    bad = subprocess.run([*command, "--isolation-model", "linearizable"],
                         capture_output=True, text=True, check=False, env=env)
    assert bad.returncode == 2 and "linearizable" in bad.stderr
