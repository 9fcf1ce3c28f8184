"""Patroni's Citus mode on the ``postgres-ha`` kind against the real Patroni, etcd, HAProxy and
Citus: a coordinator group and two worker groups of two members each form one Citus cluster
(Patroni creates the extension in every group and registers each group's leader through the
members' links), HAProxy routes to the coordinator group's leader, and a worker group's
leader killed under the append (set) workload fails over within Patroni's target: the
coordinator's metadata follows, distributed writes resume, no acknowledged write is lost and
no group ever has two writable primaries. Bad input fails clearly, leaving nothing running.

Without Citus installed these tests skip, except with CI=true, where they fail: bash
scripts/extensions.sh installs it (see the README)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from shakedown.checkers import set_full, single_leader
from shakedown.environment import Environment
from shakedown.errors import FaultError, TopologyError
from shakedown.history import History, record_final
from shakedown.process import tagged_processes
from shakedown.services import HAProxyService
from shakedown.services.kinds.postgres import PatroniCitusService, find_binaries
from shakedown.services.kinds.postgres._extensions import installed
from shakedown.topology import load_topology
from shakedown.waits import eventually
from shakedown.workloads import Runner
from shakedown.workloads.postgres import PgOptions, RoleSampler, append

HAVE_CITUS = "citus" in installed(find_binaries(None))
# Generous: a new session's first distributed statement opens connections to the workers,
# which on a loaded machine takes seconds; a tighter timeout fails it, the client reconnects
# and the next session pays the same again.
FAST = PgOptions(connect_timeout_s=3, statement_timeout_s=10.0, op_timeout_s=15.0)
CLUSTER = """
    [services.dcs]
    kind = "etcd"

    [services.db]
    kind = "postgres-ha"
    etcd = "dcs"
    members = 2
    synchronous_mode = true           # a killed primary's acknowledged writes are on its standby
    citus = {{ workers = 2, database = "app" }}
    init = ["schema.sql"]
    settings = {{ "citus.shard_count" = 4 }}
    {extra}

    [services.lb]
    kind = "haproxy"
    backend = "db"
    """
SCHEMA = """
CREATE TABLE accounts (id bigint PRIMARY KEY, balance int NOT NULL);
SELECT create_distributed_table('accounts', 'id');
CREATE TABLE shakedown_append (id bigint PRIMARY KEY);
SELECT create_distributed_table('shakedown_append', 'id');
"""


@pytest.fixture(autouse=True)
def _citus() -> None:
    """Citus or a skip, which strict mode (this repository's default) makes a failure."""
    if not HAVE_CITUS:
        pytest.skip("Citus is not installed: bash scripts/extensions.sh")


def cluster(env: Environment) -> PatroniCitusService:
    db = env["db"]
    assert isinstance(db, PatroniCitusService)
    return db


def scalar(conn: psycopg.Connection[object], query: str, *args: object) -> object:
    row = conn.execute(query, args or None).fetchone()
    assert row is not None
    return row[0]


def shards_per_group(db: PatroniCitusService, table: str) -> dict[int, int]:
    with db.connect() as conn:
        rows = conn.execute(
            "SELECT n.groupid, count(*) FROM pg_dist_shard s JOIN pg_dist_placement p "
            "USING (shardid) JOIN pg_dist_node n ON n.groupid = p.groupid "
            "AND n.noderole = 'primary' WHERE s.logicalrelid = %s::regclass GROUP BY 1",
            (table,)).fetchall()
    return {int(group): int(count) for group, count in rows}


def acknowledged(history: History, since: float) -> int:
    return sum(1 for op in history.ops() if op.type == "ok" and op.f == "add"
               and op.time > since)


def test_groups_form_one_citus_cluster_behind_haproxy(
    write_topology: Callable[..., Path],
) -> None:
    path = write_topology(CLUSTER.format(extra=""), schema__sql=SCHEMA)
    with Environment.from_file(path) as env:
        db, lb = cluster(env), env["lb"]
        assert isinstance(lb, HAProxyService)
        assert [g.label for g in db.groups] == ["group0", "group1", "group2"]
        assert db.roles()[:6] == ["group0-member0", "group0-member1", "group0-patroni0",
                                  "group0-patroni1", "group0-postgres0", "group0-postgres1"]
        assert len(db.roles()) == 18 and db.status() == "running"
        assert db.database == "app" and "Citus 13." in db.version()

        # Every group's leader is its group's primary in the coordinator's metadata, at its
        # Patroni connect_address: the member's inbound link, not its own port.
        registered = db.registered_primaries()
        for group in db.groups:
            leader = group.leader()
            assert leader is not None
            assert registered[group.group] == group.connect_address(leader)
            assert registered[group.group][1] != leader.port
            assert len(group.replicas()) == 1
        with db.connect() as conn:
            assert scalar(conn, "SELECT count(*) FROM citus_get_active_worker_nodes()") == 2
            secondaries = scalar(conn, "SELECT count(*) FROM pg_dist_node "
                                       "WHERE noderole = 'secondary'")
            assert secondaries == 3, "Patroni registers every group's replica as secondary"

        server_ids = set()
        for group in db.groups:
            for member in group.members:
                with psycopg.connect(member.url, autocommit=True) as conn:
                    assert str(scalar(conn, "SHOW shared_preload_libraries")
                               ).split(",")[0] == "citus"
                    server_ids.add(scalar(conn, "SELECT metadata->>'server_id' "
                                                "FROM pg_dist_node_metadata"))
        assert len(server_ids) == 3, "a Citus server id per group (replicas share theirs)"

        # HAProxy fronts the coordinator group: the service's URL is its primary port.
        coordinator = db.coordinator.leader()
        assert coordinator is not None
        assert lb.routed_primary() == [coordinator.name]
        assert f":{lb.primary_port}/app" in db.url and db.coordinator_url == db.url
        assert db.exports()["coordinator_url"] == db.url  # {db.coordinator_url}, DB_COORDINATOR_URL
        with psycopg.connect(db.url, autocommit=True) as conn:
            conn.execute("INSERT INTO accounts SELECT g, 100 FROM generate_series(1, 200) g")
            assert scalar(conn, "SELECT sum(balance) FROM accounts") == 20000
            assert scalar(conn, "SELECT pg_is_in_recovery()") is False
        assert shards_per_group(db, "accounts") == {1: 2, 2: 2}

        # The coordinator reaches a worker group's leader through that member's inbound link:
        # cut from it, a query needing that group's shards cannot finish, the other's can.
        worker1 = db.group(1).leader()
        assert worker1 is not None
        with psycopg.connect(db.url, autocommit=True) as conn:
            on_group2 = scalar(conn, "SELECT k FROM generate_series(1, 200) k JOIN "
                                     "pg_dist_placement p ON p.shardid = "
                                     "get_shard_id_for_distribution_column('accounts', k) "
                                     "WHERE p.groupid = 2 LIMIT 1")
        cut = env.faults.partition([worker1.name], [coordinator.name])
        assert f"{worker1.name}-in" in cut.params["links"]
        with psycopg.connect(db.url, autocommit=True) as conn:
            conn.execute("SET statement_timeout = '3s'")
            assert scalar(conn, "SELECT balance FROM accounts WHERE id = %s", on_group2) == 100
            with pytest.raises(psycopg.errors.QueryCanceled):
                conn.execute("SELECT count(*) FROM accounts")
        env.faults.heal()
        with psycopg.connect(db.url, autocommit=True) as conn:
            assert scalar(conn, "SELECT count(*) FROM accounts") == 200

        with pytest.raises(FaultError, match="has no process 'group3-member0'") as info:
            env.faults.kill("db", "group3-member0")
        assert "group2-postgres1" in str(info.value)
        worker = db.group(1).member(1)
        assert {p.role for p in db._select(worker.name)} == {"patroni1", "postgres1"}
        with pytest.raises(FaultError, match="no Citus group 'group9'"):
            db.group("group9")


# Six Patroni members and two waits of Patroni's fixed ttl: under a shared
# machine's load the default 300 s per test is too tight a hang bound.
@pytest.mark.timeout(600)
def test_worker_group_fails_over_and_distributed_writes_resume_without_loss(
    write_topology: Callable[..., Path],
) -> None:
    path = write_topology(CLUSTER.format(extra=""), schema__sql=SCHEMA)
    with Environment.from_file(path) as env:
        db, history = cluster(env), History()
        group = db.group(1)
        old = group.leader()
        assert old is not None
        url = db.url  # through HAProxy: the coordinator group is not touched

        def client(_worker: int) -> append.AppendClient:
            return append.AppendClient(url, options=FAST)

        sampler = RoleSampler(db.all_members(), history, groups=db.member_groups())
        with sampler, Runner(client, append.generator(rate=100.0), concurrency=3,
                             history=history) as runner:
            began = history.now()
            eventually(lambda: acknowledged(history, began) >= 50, timeout=30)
            killed_at = time.monotonic()
            env.faults.kill("db", f"group1-member{old.index}")
            new = group.wait_leader(timeout=90, exclude=old.name)
            db.wait_registered(timeout=60)
            assert db.registered_primaries()[1] == group.connect_address(new)
            resumed = history.now()
            eventually(lambda: acknowledged(history, resumed) >= 50, timeout=60,
                       description="distributed writes resume on the new worker primary")
            failover = time.monotonic() - killed_at
            runner.stop()
        print(f"worker group failover: {failover:.1f} s")
        assert new.name != old.name
        env.faults.start("db")  # the killed member rejoins its group as a replica
        assert old.name in {m.name for m in group.replicas()}

        final = append.final_read(db.url)
        record_final(history, "final-read", sorted(final))
        lost = set_full(history, final)
        assert lost.validity == "valid", lost.explanation
        assert lost.counts["lost"] == 0 and lost.counts["ok"] >= 100
        leaders = single_leader(history)
        assert leaders.validity == "valid", leaders.explanation
        assert leaders.counts["max_writable_primaries"] >= 3, "a primary per group at once"


@pytest.mark.parametrize(("body", "message"), [
    ("citus = { workers = 0 }",
     "services.db.citus.workers: citus.workers is the number of worker groups, 1 to 8"),
    ("citus = { workers = 9 }", "1 to 8 (got 9)"),
    ("members = 5\ncitus = { workers = 3 }",
     "members = 5 in each of 4 Citus groups (citus.workers = 3 + the coordinator's) is 20 "
     "Patroni members; at most 18"),
    ('citus = { workers = 2, database = "My App" }',
     "citus.database = 'My App': a database name"),
    ("citus = { groups = 2 }", "services.db.citus.groups: unknown key 'groups'"),
    ('extensions = ["citus"]', "or Patroni's Citus mode on a postgres-ha service"),
])
def test_bad_citus_ha_topologies_fail_clearly(write_topology: Callable[..., Path], body: str,
                                              message: str) -> None:
    path = write_topology('[services.dcs]\nkind = "etcd"\n\n[services.db]\n'
                          f'kind = "postgres-ha"\netcd = "dcs"\n{body}\n')
    with pytest.raises(TopologyError) as info:
        load_topology(path)
    assert message in str(info.value)


@pytest.mark.parametrize("kind", ["postgres", "citus"])
def test_citus_key_on_a_kind_without_it_names_the_key(
    write_topology: Callable[..., Path], kind: str,
) -> None:
    path = write_topology(f'[services.db]\nkind = "{kind}"\ncitus = {{ workers = 2 }}\n')
    with pytest.raises(TopologyError) as info:
        load_topology(path)
    assert ("services.db.citus: unknown key 'citus' (a key of kind 'postgres-ha', not of "
            "this one)") in str(info.value)


def test_bad_citus_ha_topology_exits_2_from_the_cli(
    write_topology: Callable[..., Path], runtime_root: Path,
) -> None:
    path = write_topology('[services.dcs]\nkind = "etcd"\n\n[services.db]\n'
                          'kind = "postgres-ha"\netcd = "dcs"\ncitus = { workers = 12 }\n')
    result = subprocess.run([sys.executable, "-m", "shakedown", "up", "--detach"],
                            cwd=path.parent, capture_output=True, text=True, timeout=60,
                            env={**os.environ, "COLUMNS": "200"}, check=False)
    assert result.returncode == 2, result.stderr
    assert "services.db.citus.workers" in result.stderr and "1 to 8 (got 12)" in result.stderr
    assert "Traceback" not in result.stderr
    assert not tagged_processes(root=runtime_root)
    assert not (path.parent / ".shakedown" / "envs").exists() or \
        not list((path.parent / ".shakedown" / "envs").iterdir())


def test_missing_citus_fails_before_patroni_starts_and_leaves_nothing(
    write_topology: Callable[..., Path], server_without_extensions: Path, runtime_root: Path,
) -> None:
    bin_dir = server_without_extensions
    path = write_topology(f'[services.dcs]\nkind = "etcd"\n\n[services.db]\n'
                          f'kind = "postgres-ha"\netcd = "dcs"\nbin_dir = "{bin_dir}"\n'
                          'citus = { workers = 1 }\n')
    env = Environment.from_file(path)
    with pytest.raises(Exception) as info:
        env.up()
    message = str(info.value)
    assert "PostgreSQL extension 'citus' is not installed" in message
    assert "scripts/extensions.sh" in message
    assert not tagged_processes(root=runtime_root), "etcd must be stopped again"
