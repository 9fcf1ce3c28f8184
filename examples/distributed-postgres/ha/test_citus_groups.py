"""HA of the Citus groups (Patroni's Citus mode, ``ha/shakedown.toml``): one leader per group
with a synchronous standby, HAProxy routing to the coordinator group's leader, distributed and
reference tables across the worker groups, and a failover of a worker group and of the
coordinator group under the append (set) workload: writes to the failed group's shards resume,
no acknowledged write is lost (``set_full``) and no group ever has two writable primaries
(``single_leader``, per group). Its own environment, for this module only: the suite's other
files use the plain Citus cluster of ``../shakedown.toml``."""

from __future__ import annotations

import time

import psycopg
import pytest

from shakedown import eventually
from shakedown.checkers import set_full, single_leader
from shakedown.history import History, record_final
from shakedown.workloads import Runner
from shakedown.workloads.postgres import PgOptions, RoleSampler, append

pytestmark = pytest.mark.shakedown(scope="module")
# Generous: a new session's first distributed statement opens connections to the workers,
# which on a loaded machine takes seconds; a tighter timeout fails it, the client reconnects
# and the next session pays the same again.
FAST = PgOptions(connect_timeout_s=3, statement_timeout_s=10.0, op_timeout_s=15.0)


def one(conn, query, *args):
    row = conn.execute(query, args or None).fetchone()
    return row[0] if row else None


def sampler(cluster, history):
    """Every member's role, sampled together, each tagged with its group."""
    return RoleSampler(cluster.all_members(), history, groups=cluster.member_groups())


def appends(url, history):
    """The append workload through ``url`` (HAProxy's primary port), in the background, on
    an empty table (the distributed one schema.sql made; each test adds ids from 0)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {append.TABLE}")
    return Runner(lambda _worker: append.AppendClient(url, options=FAST),
                  append.generator(rate=100.0), concurrency=3, history=history)


def acknowledged(history, since):
    return sum(1 for op in history.ops() if op.type == "ok" and op.f == "add"
               and op.time > since)


def key_in_group(url, group):
    """An accounts id whose shard lives in ``group`` (a worker group's number)."""
    with psycopg.connect(url, autocommit=True) as conn:
        return one(conn, "SELECT k FROM generate_series(1, 1000) k "
                         "JOIN pg_dist_placement p "
                         "ON p.shardid = get_shard_id_for_distribution_column('accounts', k) "
                         "WHERE p.groupid = %s LIMIT 1", group)


def seconds_until_written(url, key, since):
    """Seconds from ``since`` until an upsert of ``key`` through ``url`` succeeds."""
    def write():
        with psycopg.connect(url, autocommit=True, connect_timeout=1,
                             options="-c statement_timeout=2000") as conn:
            conn.execute("INSERT INTO accounts VALUES (%s, 'probe', 0) ON CONFLICT (id) "
                         "DO UPDATE SET balance = accounts.balance + 1", (key,))
        return True

    eventually(write, timeout=120, interval=0.1, description=f"a write of key {key}")
    return time.monotonic() - since


def check_history(history, url):
    """No acknowledged add lost, and never two writable primaries in one group."""
    final = append.final_read(url)
    record_final(history, "final-read", sorted(final))
    lost = set_full(history, final)
    assert lost.validity == "valid", lost.explanation
    assert lost.counts["lost"] == 0 and lost.counts["ok"] >= 100
    leaders = single_leader(history)
    assert leaders.validity == "valid", leaders.explanation


def test_one_leader_and_a_synchronous_standby_per_group(cluster):
    history = History()
    with sampler(cluster, history) as roles:
        eventually(lambda: roles.samples >= 5, timeout=30)
    result = single_leader(history)
    assert result.validity == "valid", result.explanation
    assert result.counts["max_writable_primaries"] == 3, "coordinator + two worker groups"
    for group in cluster.groups:
        leader = group.leader()
        assert leader is not None and len(group.replicas()) == 1, group.label
        with psycopg.connect(leader.url, autocommit=True) as conn:
            states = conn.execute("SELECT state, sync_state FROM pg_stat_replication").fetchall()
        assert [state for state, _ in states] == ["streaming"], group.label
        assert states[0][1] in ("sync", "quorum"), group.label


def test_haproxy_routes_to_the_coordinator_groups_leader(cluster, shakedown_env):
    lb = shakedown_env["lb"]
    leader = cluster.coordinator.leader()
    assert lb.routed_primary() == [leader.name]
    assert cluster.url == cluster.coordinator_url and f":{lb.primary_port}/" in cluster.url
    with psycopg.connect(lb.primary_url, autocommit=True) as conn:
        assert one(conn, "SELECT pg_is_in_recovery()") is False
        assert one(conn, "SELECT inet_server_port()") == leader.port
    with psycopg.connect(lb.replica_url, autocommit=True) as conn:
        assert one(conn, "SELECT pg_is_in_recovery()") is True
        replica = cluster.coordinator.replicas()[0]
        assert one(conn, "SELECT inet_server_port()") == replica.port


def test_distributed_and_reference_tables_span_the_worker_groups(cluster):
    with psycopg.connect(cluster.url, autocommit=True) as conn:
        conn.execute("INSERT INTO accounts SELECT g, 'owner' || g, 100 "
                     "FROM generate_series(1, 100) g ON CONFLICT DO NOTHING")
        conn.execute("INSERT INTO transfers SELECT g, 1, 5 FROM generate_series(1, 100) g "
                     "ON CONFLICT DO NOTHING")
        groups = {row[0]: row[1] for row in conn.execute(
            "SELECT p.groupid, count(*) FROM pg_dist_shard s JOIN pg_dist_placement p "
            "USING (shardid) WHERE s.logicalrelid = 'accounts'::regclass GROUP BY 1")}
        assert groups == {1: 4, 2: 4}, "8 shards, half in each worker group"
        reference = one(conn, "SELECT array_agg(DISTINCT p.groupid ORDER BY p.groupid) "
                              "FROM pg_dist_shard s JOIN pg_dist_placement p USING (shardid) "
                              "WHERE s.logicalrelid = 'currencies'::regclass")
        assert reference == [0, 1, 2], "a reference table is in every group"
        joined = one(conn, "SELECT count(*) FROM accounts a JOIN transfers t "
                           "ON t.account_id = a.id WHERE a.id <= 100")
        assert joined == 100
        assert one(conn, "SELECT count(*) FROM accounts a JOIN currencies c "
                         "ON c.code = 'EUR' WHERE a.id <= 100") == 100


def test_worker_group_failover_loses_no_acknowledged_write(cluster, shakedown_env):
    history = History()
    group = cluster.group(1)
    old = group.leader()
    key = key_in_group(cluster.url, 1)
    with sampler(cluster, history), appends(cluster.url, history) as runner:
        began = history.now()
        eventually(lambda: acknowledged(history, began) >= 50, timeout=60)
        killed_at = time.monotonic()
        shakedown_env.faults.kill("db", f"group1-member{old.index}")
        new = group.wait_leader(timeout=120, exclude=old.name)
        shakedown_env.record("worker_failover",
                             seconds_until_written(cluster.url, key, killed_at))
        cluster.wait_registered(timeout=60)
        assert cluster.registered_primaries()[1] == group.connect_address(new)
        since = history.now()
        eventually(lambda: acknowledged(history, since) >= 50, timeout=60)
        runner.stop()
    shakedown_env.faults.start("db")  # the old leader rejoins as a replica
    assert old.name in {m.name for m in group.replicas()}
    check_history(history, cluster.url)


def test_coordinator_group_failover_loses_no_acknowledged_write(cluster, shakedown_env):
    history = History()
    lb = shakedown_env["lb"]
    old = cluster.coordinator.leader()
    key = key_in_group(cluster.url, 2)
    with sampler(cluster, history), appends(lb.primary_url, history) as runner:
        began = history.now()
        eventually(lambda: acknowledged(history, began) >= 50, timeout=60)
        killed_at = time.monotonic()
        shakedown_env.faults.kill("db", f"group0-member{old.index}")
        new = cluster.coordinator.wait_leader(timeout=120, exclude=old.name)
        shakedown_env.record("coordinator_failover",
                             seconds_until_written(lb.primary_url, key, killed_at))
        eventually(lambda: lb.routed_primary() == [new.name], timeout=30)
        cluster.wait_registered(timeout=60)  # the new leader registered itself as coordinator
        since = history.now()
        eventually(lambda: acknowledged(history, since) >= 50, timeout=60)
        runner.stop()
    shakedown_env.faults.start("db")
    assert old.name in {m.name for m in cluster.coordinator.replicas()}
    check_history(history, lb.primary_url)
