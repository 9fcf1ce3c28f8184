"""Transactions under faults on the Patroni cluster (issue 18 item 4): list-append at
SERIALIZABLE through HAProxy while the leader is killed, and while it is cut from its replicas
and etcd, checked against strict serializability (what one primary with durable failover
promises) and for acknowledged appends missing from a final read. With synchronous replication
the promise holds under both faults; with asynchronous replication a partitioned leader keeps
acknowledging commits its successor never gets, which both checks catch. Each scenario gets a
fresh cluster (function scope), so no fault leaks into the next."""

from __future__ import annotations

import pytest
from ha_isolation import PROMISED, Outcome, run

from shakedown.waits import scaled

SYNC = pytest.mark.shakedown(file="shakedown.toml", scope="function")
ASYNC = pytest.mark.shakedown(file="async.toml", scope="function")
pytestmark = pytest.mark.timeout(scaled(600))  # a fresh cluster per scenario, under a fault


def explain(outcome: Outcome) -> str:
    return f"{outcome.line()}\n{outcome.isolation.explanation}\n{outcome.lost.explanation}"


@pytest.mark.parametrize("fault", ["kill", "partition"])
@SYNC
def test_synchronous_cluster_keeps_its_promise(shakedown_env, fault):
    outcome = run(shakedown_env, fault)
    print(outcome.line())
    assert outcome.synchronous
    assert outcome.isolation.counts["ok"] > 100
    assert outcome.isolation.validity == "valid", explain(outcome)
    assert outcome.lost.validity == "valid" and outcome.lost_appends == 0, explain(outcome)


@ASYNC
def test_asynchronous_cluster_loses_appends_when_the_leader_is_partitioned(shakedown_env):
    outcome = run(shakedown_env, "partition")
    print(outcome.line())
    assert not outcome.synchronous
    assert outcome.lost_appends > 0, explain(outcome)
    assert outcome.isolation.validity == "invalid", explain(outcome)
    assert outcome.isolation.details["model"] == PROMISED
    assert outcome.isolation.details["forbidden_found"], explain(outcome)


@ASYNC
def test_asynchronous_kill_verdicts_agree(shakedown_env):
    """A killed async leader may or may not take acknowledged commits with it (a few in
    flight at most): whichever happened, the isolation checker agrees with the final read."""
    outcome = run(shakedown_env, "kill")
    print(outcome.line())
    if outcome.lost_appends:
        assert outcome.isolation.validity == "invalid", explain(outcome)
    else:
        assert outcome.isolation.validity == "valid", explain(outcome)
