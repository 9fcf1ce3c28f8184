"""``shakedown check`` on a stored cache workload's history: ``stale_reads`` applies to
``cache-write``/``cache-read`` operations, with the initial versions recorded as
``cache-initial``; a stale read makes the command exit 1 and names the key."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from shakedown.checkers import check_history
from shakedown.errors import ShakedownError
from shakedown.history import History, record_final


def cache_history(path: Path | None, *, stale: bool, initial: object = None) -> History:
    """Key 1 written to version 2 and acknowledged; then a read returns 2, or (stale) 1."""
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    history = History(path) if path else History()
    history.append(0, "invoke", "cache-write", {"key": 1})
    history.append(0, "ok", "cache-write", {"key": 1, "version": 2})
    history.append(1, "invoke", "cache-read", {"key": 1})
    history.append(1, "ok", "cache-read", {"key": 1, "version": 1 if stale else 2})
    if initial is not None:
        record_final(history, "cache-initial", initial)
    return history


def test_stale_reads_applies_to_cache_operations() -> None:
    fresh = check_history(cache_history(None, stale=False))
    assert set(fresh) == {"stale_reads"} and fresh["stale_reads"].validity == "valid"
    stale = check_history(cache_history(None, stale=True))["stale_reads"]
    # Version 1 was never written and no initial was recorded: stale and unexpected.
    assert stale.validity == "invalid"
    assert stale.counts["stale"] == 1 and stale.counts["unexpected"] == 1


def test_the_recorded_initial_versions_are_used(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    cache_history(path, stale=True, initial=[[1, 1]]).close()
    result = check_history(History.load(path))["stale_reads"]
    # Version 1 is the recorded initial one: the read is stale, not of an unknown version.
    assert result.counts["stale"] == 1 and result.counts["unexpected"] == 0


def test_a_malformed_initial_is_a_clear_error() -> None:
    with pytest.raises(ShakedownError, match="cache-initial") as error:
        check_history(cache_history(None, stale=False, initial=[[1, "two"]]))
    assert error.value.fix and "[key, version]" in error.value.fix[0]


def test_cli_check_reports_the_stale_read_and_exits_1(tmp_path: Path) -> None:
    cache_history(tmp_path / "histories" / "stale.jsonl", stale=True, initial=[[1, 1]]).close()
    env = {**os.environ, "COLUMNS": "250"}
    found = subprocess.run([sys.executable, "-m", "shakedown", "check", str(tmp_path)],
                           capture_output=True, text=True, check=False, env=env)
    assert found.returncode == 1, found.stdout + found.stderr
    assert "stale_reads" in found.stdout and "1 stale read(s)" in found.stdout
    good = tmp_path / "good"
    cache_history(good / "histories" / "fresh.jsonl", stale=False).close()
    fine = subprocess.run([sys.executable, "-m", "shakedown", "check", str(good)],
                          capture_output=True, text=True, check=False, env=env)
    assert fine.returncode == 0 and "valid" in fine.stdout, fine.stdout + fine.stderr
