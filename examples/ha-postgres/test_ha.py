"""The failover suite: a real Patroni cluster (etcd, three PostgreSQL members, HAProxy) proves
one leader, streaming replicas with bounded lag, failover within the target with no
acknowledged write lost (synchronous replication), demotion of a leader cut from etcd, and that
the checker does catch real loss (asynchronous replication, replicas cut off)."""

from __future__ import annotations

import time

import psycopg
import pytest

from shakedown import eventually
from shakedown.checkers import replication_lag, set_full, single_leader
from shakedown.history import History, record_final
from shakedown.workloads import Runner
from shakedown.workloads.postgres import LagSampler, PgOptions, RoleSampler, append

FAST = PgOptions(connect_timeout_s=1, statement_timeout_s=2.0, op_timeout_s=3.0)


def members(cluster):
    return {m.name: m.url for m in cluster.members}


def leader_url(cluster):
    leader = cluster.leader()
    return leader.url if leader else None


def writes(url, history, rate=200.0, concurrency=4):
    """The append workload through ``url`` (HAProxy's primary port), in the background."""
    append.setup(url)
    generator = append.generator(rate=rate)
    return Runner(lambda _worker: append.AppendClient(url, options=FAST), generator,
                  concurrency=concurrency, history=history)


def first_write_after(url, since):
    """Seconds from ``since`` until a write through ``url`` succeeds."""
    def write():
        with psycopg.connect(url, connect_timeout=1, autocommit=True) as conn:
            conn.execute("INSERT INTO accounts VALUES (1000 + (random() * 1e6)::int, 0) "
                         "ON CONFLICT DO NOTHING")
        return True

    eventually(write, timeout=60, interval=0.05)
    return time.monotonic() - since


def acknowledged(history, since=0.0):
    """Writes acknowledged (``ok``) in ``history`` after ``since`` (history time)."""
    return sum(1 for op in history.ops() if op.type == "ok" and op.f == "add" and op.time > since)


def test_one_leader_and_two_streaming_replicas(shakedown_env):
    cluster = shakedown_env["db"]
    leader = cluster.leader()
    assert leader is not None and len(cluster.replicas()) == 2
    with psycopg.connect(leader.url) as conn:
        states = conn.execute("SELECT state, sync_state FROM pg_stat_replication").fetchall()
    assert [s for s, _ in states] == ["streaming", "streaming"]
    assert {sync for _, sync in states} & {"sync", "quorum"}, "synchronous_mode = true"


def test_writes_through_primary_port_are_read_through_replica_port(shakedown_env):
    lb = shakedown_env["lb"]
    with psycopg.connect(lb.primary_url, autocommit=True) as conn:
        conn.execute("INSERT INTO accounts VALUES (500, 7) ON CONFLICT (id) DO UPDATE "
                     "SET balance = 7")
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (False,)

    def replica_sees_it():
        with psycopg.connect(lb.replica_url, connect_timeout=1) as conn:
            assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
            return conn.execute("SELECT balance FROM accounts WHERE id = 500").fetchone()

    assert eventually(replica_sees_it, timeout=5) == (7,)


def test_lag_under_write_load_stays_under_5s(shakedown_env):
    cluster, lb, history = shakedown_env["db"], shakedown_env["lb"], shakedown_env.history
    with LagSampler(lambda: leader_url(cluster), history) as lag, \
            writes(lb.primary_url, history, rate=300) as runner:
        # Under load until the sampler has seen enough of it (not a fixed time).
        began = history.now()
        eventually(lambda: lag.samples >= 8 and acknowledged(history, began) >= 300,
                   timeout=60)
        runner.stop()
    assert lag.samples >= 8
    result = replication_lag(history, bound_s=5.0)
    assert result.validity == "valid", result.explanation
    assert runner.join().completions.get("ok", 0) > 100


def test_leader_crash_fails_over_without_losing_acknowledged_writes(shakedown_env):
    cluster, lb, log = shakedown_env["db"], shakedown_env["lb"], shakedown_env.history
    start = len(log)  # this test's part of the environment's history (for the report too)
    began = log.now()
    old = cluster.leader()
    with RoleSampler(members(cluster), log), writes(lb.primary_url, log) as runner:
        eventually(lambda: acknowledged(log, began) >= 100, timeout=30)  # before the crash
        killed_at = time.monotonic()
        shakedown_env.faults.kill("db", process=old.name)
        cluster.wait_leader(timeout=60, exclude=old.name)  # another member leads
        promoted_at = time.monotonic()
        shakedown_env.record("failover", first_write_after(lb.primary_url, killed_at))
        shakedown_env.record("haproxy.reroute", first_write_after(lb.primary_url, promoted_at))
        since = log.now()
        eventually(lambda: acknowledged(log, since) >= 50, timeout=30)  # on the new leader
        runner.stop()
    shakedown_env.faults.heal()
    eventually(lambda: old.name in {m.name for m in cluster.replicas()}, timeout=60,
               description="the old leader comes back as a replica")
    final = append.final_read(lb.primary_url)
    record_final(log, "final-read", sorted(final))
    history = History(ops=[op for op in log.ops() if op.index >= start])
    lost = set_full(history, final)
    assert lost.validity == "valid", lost.explanation
    assert lost.counts["lost"] == 0 and lost.counts["ok"] > 100
    leaders = single_leader(history)
    assert leaders.validity == "valid", leaders.explanation


@pytest.mark.shakedown(file="async.toml", scope="module")
def test_checker_catches_real_loss_with_asynchronous_replication(shakedown_env):
    """Cut the replicas off the leader (a partition on the members' own links), commit N rows
    on the leader, kill it, let a replica take over: exactly those N acknowledged rows are
    lost, and the set checker says so."""
    cluster, lb = shakedown_env["db"], shakedown_env["lb"]
    history = shakedown_env.history
    old = cluster.leader()
    replicas = [m.name for m in cluster.replicas()]
    append.setup(lb.primary_url)
    client = append.AppendClient(lb.primary_url, options=FAST)
    client.open()

    def add(value):
        history.append(0, "invoke", "add", value)
        history.append(0, *client.invoke("add", value))

    for value in range(100):  # replicated before the cut
        add(value)
    eventually(lambda: all(r[0] >= 100 for r in _replica_counts(cluster, replicas)), timeout=10)
    cut = shakedown_env.faults.partition([old.name], replicas)
    assert f"{old.name}-in" in cut.params["links"]
    lost_rows = list(range(100, 125))  # N = 25 acknowledged, never received by a replica
    for value in lost_rows:
        add(value)
    client.close()
    shakedown_env.faults.kill("db", process=old.name)
    new = cluster.wait_leader(timeout=60, exclude=old.name)
    assert new.name in replicas
    final = append.final_read(new.url)
    record_final(history, "final-read", sorted(final))
    result = set_full(history, final)
    print(result.explanation)
    assert result.validity == "invalid"
    assert result.counts["lost"] == len(lost_rows)
    assert set(result.details["lost"]) <= set(lost_rows)  # the first ones, for the message


def _replica_counts(cluster, names):
    counts = []
    for member in cluster.members:
        if member.name in names:
            with psycopg.connect(member.url, connect_timeout=1) as conn:
                counts.append(conn.execute(f"SELECT count(*) FROM {append.TABLE}").fetchone())
    return counts


def test_leader_cut_from_etcd_demotes_and_never_two_primaries(shakedown_env):
    """Partition the leader from etcd (its own link, made by shakedown): it cannot renew its
    lock, demotes itself, another member takes over; sampled roles never show two writable
    primaries."""
    cluster = shakedown_env["db"]
    history = History()
    old = cluster.leader()
    with RoleSampler(members(cluster), history, interval=0.1):
        cut = shakedown_env.faults.partition([old.name], ["kv"])
        assert cut.params["links"] == [f"{old.name}-kv"]
        new = cluster.wait_leader(timeout=60, exclude=old.name)

        def old_is_replica():
            with psycopg.connect(old.url, connect_timeout=1) as conn:
                return conn.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)

        eventually(old_is_replica, timeout=60)
        shakedown_env.faults.heal()
        healed = history.now()
        eventually(lambda: sum(1 for op in history.ops() if op.f == "roles"
                               and op.time > healed) >= 5, timeout=30,
                   description="roles sampled after the heal")
    assert new.name in members(cluster)
    result = single_leader(history)
    assert result.validity == "valid", result.explanation
    assert sum(1 for op in history.ops() if op.f == "roles") > 20
