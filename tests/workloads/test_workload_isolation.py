"""The transactional workloads (``list_append``, ``rw_register``) against a real PostgreSQL at
each isolation level, checked by ``checkers.isolation``: SERIALIZABLE shows no anomaly even
strict serializability forbids; REPEATABLE READ (snapshot isolation) shows write skew under
contention and never what snapshot isolation forbids; READ COMMITTED shows read skew and lost
updates. A seeded client bug (a read cache) is caught at SERIALIZABLE. Each run is short,
over three keys and six workers so that transactions collide."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from shakedown.checkers import Result, isolation
from shakedown.history import History, record_final
from shakedown.services import PostgresService
from shakedown.workloads import Runner, RunSummary
from shakedown.workloads.postgres import WORKLOADS, ListAppendClient, list_append, rw_register
from shakedown.workloads.postgres._session import Connection

StartPostgres = Callable[..., PostgresService]
SECONDS, KEYS, WORKERS, MAX_RUNS = 2.0, 3, 6, 8
"""Each test stops at its first run that shows what it looks for; MAX_RUNS bounds a test
that never sees it (measured: lost-update in 8 of 10 READ COMMITTED runs, and a busy machine
completes fewer transactions per run, so no single run is asked to show everything)."""
SI_FORBIDS = {"G0", "G1a", "G1b", "G1c", "G-single", "G-nonadjacent", "lost-update",
              "internal", "duplicate-elements", "incompatible-order", "garbage-read"}


def run(url: str, module: ModuleType, isolation_level: str, seed: int,
        client: Callable[[int], Any] | None = None) -> RunSummary:
    module.setup(url)
    name = module.WORKLOAD.name
    clients = client or WORKLOADS[name].clients(url, isolation=isolation_level)
    return Runner(clients, module.generator(keys=KEYS, seconds=SECONDS, seed=seed),
                  concurrency=WORKERS).run()


def anomalies(result: Result) -> set[str]:
    return set(result.details["anomalies"])


@pytest.mark.parametrize("module", [list_append, rw_register], ids=["list_append", "rw_register"])
def test_serializable_shows_no_anomaly(pg_url: str, module: ModuleType) -> None:
    completions: Counter[str] = Counter()
    for seed in range(MAX_RUNS):
        summary = run(pg_url, module, "serializable", seed)
        result = isolation(summary.history, model="strict-serializable")
        assert result.validity == "valid", result.explanation
        assert result.counts["ok"] == summary.completions.get("ok", 0)
        completions.update(summary.completions)
        if seed >= 1 and completions["ok"] > 60 and completions["fail"] > 0:
            break
    # enough committed transactions to judge, and serialization failures: contention
    assert completions["ok"] > 60 and completions["fail"] > 0, completions


def test_repeatable_read_shows_write_skew_and_nothing_snapshot_isolation_forbids(
    pg_url: str,
) -> None:
    seen: Counter[str] = Counter()
    for seed in range(MAX_RUNS):
        summary = run(pg_url, list_append, "repeatable-read", seed)
        result = isolation(summary.history, model="snapshot-isolation")
        assert result.validity == "valid", result.explanation
        assert not anomalies(result) & SI_FORBIDS, result.explanation
        seen.update(anomalies(result))
        if "G2-item" in seen:
            break
    assert "G2-item" in seen, seen
    assert isolation(summary.history, model="serializable").validity == "invalid"


def test_read_committed_shows_read_skew_and_lost_updates(pg_url: str) -> None:
    seen: Counter[str] = Counter()
    for seed in range(MAX_RUNS):
        summary = run(pg_url, list_append, "read-committed", seed)
        result = isolation(summary.history, model="read-committed")
        assert result.validity == "valid", result.explanation  # no G0 / G1 at this level
        seen.update(anomalies(result))
        if {"G-single", "lost-update"} <= set(seen):
            break
    assert {"G-single", "lost-update"} <= set(seen), seen
    snapshot = isolation(summary.history, model="snapshot-isolation")
    assert snapshot.validity == "invalid"


def test_an_unknown_isolation_level_is_refused(pg_url: str) -> None:
    with pytest.raises(ValueError, match="choose one of serializable, repeatable-read"):
        ListAppendClient(pg_url, isolation="snapshot")


class CachingClient(ListAppendClient):
    """A seeded bug: reads are served from a per-connection cache filled by earlier reads, so
    a transaction can see a list as it was in an earlier transaction. Appends go to the
    database and drop the cached key, as a careless write-through cache would."""

    def __init__(self, url: str, **options: Any) -> None:
        super().__init__(url, **options)
        self.cache: dict[Any, list[int]] = {}

    def read(self, conn: Connection, key: Any) -> list[int]:
        if key not in self.cache:
            self.cache[key] = super().read(conn, key)
        return list(self.cache[key])

    def write(self, conn: Connection, key: Any, value: Any) -> None:
        super().write(conn, key, value)
        self.cache.pop(key, None)


def test_a_stale_read_cache_in_the_client_is_caught_at_serializable(pg_url: str) -> None:
    seen: Counter[str] = Counter()
    for seed in range(MAX_RUNS):
        summary = run(pg_url, list_append, "serializable", seed,
                      client=lambda _worker: CachingClient(pg_url, isolation="serializable"))
        result = isolation(summary.history, model="serializable")
        seen.update(anomalies(result))
        if result.validity == "invalid":
            break
    assert result.validity == "invalid", result.explanation
    assert seen.keys() & {"G-single", "G2-item", "G-nonadjacent"}, seen


def test_a_transaction_returns_its_micro_ops_in_elles_shape(pg_url: str) -> None:
    client = ListAppendClient(pg_url, isolation="serializable")
    list_append.setup(pg_url)
    client.open()
    try:
        done = client.invoke("txn", [["append", 1, 10], ["r", 1, None], ["r", 2, None]])
    finally:
        client.close()
    assert done == ("ok", [["append", 1, 10], ["r", 1, [10]], ["r", 2, []]])
    assert list_append.final_read(pg_url) == {1: [10]}


def test_a_stored_run_is_checked_offline_by_shakedown_check(pg_url: str, tmp_path: Path) -> None:
    path = tmp_path / "histories" / "run.jsonl"
    path.parent.mkdir()
    history = History(path)
    for seed in range(MAX_RUNS):
        list_append.setup(pg_url)
        Runner(WORKLOADS["list_append"].clients(pg_url, isolation="repeatable-read"),
               list_append.generator(keys=KEYS, seconds=SECONDS, seed=seed),
               concurrency=WORKERS, history=history).run()
        # A run that committed nothing (a loaded machine) is "unknown", with no anomalies.
        if "G2-item" in isolation(history, model="serializable").details.get("anomalies", []):
            break
    record_final(history, "isolation-model", "snapshot-isolation")
    history.close()
    command = [sys.executable, "-m", "shakedown", "check", str(tmp_path)]
    env = {**os.environ, "COLUMNS": "250"}
    recorded = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    assert recorded.returncode == 0, recorded.stdout + recorded.stderr
    assert "found but allowed by snapshot-isolation: G2-item" in recorded.stdout
    strict = subprocess.run([*command, "--isolation-model", "serializable"],
                            capture_output=True, text=True, check=False, env=env)
    assert strict.returncode == 1 and "forbidden by serializable: G2-item" in strict.stdout
