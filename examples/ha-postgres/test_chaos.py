"""A seeded schedule of mixed faults (kills and pauses of the leader and of a replica) over the
failover workload, with synchronous replication (issue 20 item 4): no acknowledged write is
lost, and a second run with the same seed replays the same fault sequence, step by step, as
both runs' histories record it. (Asynchronous replication under schedules is measured by
bench/chaos_ha.py.)"""

from __future__ import annotations

import pytest
from ha_chaos import run

from shakedown.waits import scaled

SEED, SECONDS = 20261202, 12.0


@pytest.mark.timeout(scaled(900))  # a cluster and two scheduled runs: slow on a loaded machine
@pytest.mark.shakedown(file="shakedown.toml", scope="function")
def test_a_seeded_schedule_loses_no_acknowledged_write_and_replays(shakedown_env):
    first = run(shakedown_env, SEED, SECONDS)
    print(first.line())
    assert first.steps, "the schedule injected nothing"
    assert first.result.validity == "valid" and first.lost == 0, first.result.explanation
    assert first.result.counts["ok"] > 100
    again = run(shakedown_env, SEED, SECONDS)
    print(again.line())
    assert [s[:5] for s in again.steps] == [s[:5] for s in first.steps]
    assert again.result.validity == "valid", again.result.explanation
