"""The high-availability kinds against the real binaries: etcd (1 and 3 members), a 3-member
Patroni cluster behind HAProxy (routing, failover after a crash of the leader's postgres and
of the whole leader member), PgBouncer, and bad input that fails clearly, leaving nothing."""

from __future__ import annotations

import os
import pwd
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from shakedown.environment import Environment
from shakedown.errors import MissingBinaryError, TopologyError
from shakedown.process import group_members, tagged_processes
from shakedown.services import (
    EtcdService,
    HAProxyService,
    PatroniService,
    PgBouncerService,
)
from shakedown.topology import load_topology
from shakedown.waits import eventually

CLUSTER = """
    [services.dcs]
    kind = "etcd"

    [services.db]
    kind = "postgres-ha"
    etcd = "dcs"
    databases = ["app"]
    init = ["schema.sql"]
    {extra}

    [services.lb]
    kind = "haproxy"
    backend = "db"
    """
SCHEMA = "CREATE TABLE t (id int primary key, v text);\n"


def wait_until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    """``check()``'s value once truthy; ``timeout`` is a hang bound (scaled)."""
    return eventually(check, timeout=timeout, interval=0.02, description=what)


def service_user_name() -> str:
    """Who servers run as: ``shakedown`` when the tests run as root, else the tests' user."""
    return "shakedown" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name


def write_through(url: str, row: int) -> bool:
    with psycopg.connect(url, autocommit=True, connect_timeout=1) as conn:
        conn.execute("INSERT INTO t VALUES (%s, 'x')", (row,))
    return True


def count_through(url: str) -> int:
    with psycopg.connect(url, autocommit=True, connect_timeout=1) as conn:
        row = conn.execute("SELECT count(*) FROM t").fetchone()
    return int(row[0]) if row else -1


# -- etcd ----------------------------------------------------------------------------------------
def test_etcd_single_member_is_healthy_and_stores_keys(
    write_topology: Callable[..., Path],
) -> None:
    with Environment.from_file(write_topology('[services.dcs]\nkind = "etcd"\n')) as env:
        dcs = env["dcs"]
        assert isinstance(dcs, EtcdService)
        assert dcs.roles() == ["etcd0"]
        assert dcs.url == f"http://127.0.0.1:{dcs.port}"
        assert dcs.exports()["endpoints"] == f"127.0.0.1:{dcs.port}"
        assert dcs.healthy(0)
        # Ready means a decided cluster version (Patroni's client parses it at start).
        version = httpx.get(f"{dcs.url}/version", trust_env=False).json()
        assert re.fullmatch(r"\d+(\.\d+)+", version["etcdcluster"]), version
        with dcs.client() as client:
            client.put("/greeting", "hello")
            assert client.get("/greeting") == "hello"
            assert client.get("/missing") is None
        owner = os.stat(f"/proc/{dcs.pids[0]}").st_uid
        assert pwd.getpwuid(owner).pw_name == service_user_name()
        assert env.measurements()["dcs.ready"] > 0  # how fast: bench/ha.py


def test_etcd_three_members_keep_quorum_when_one_dies(
    write_topology: Callable[..., Path],
) -> None:
    path = write_topology('[services.dcs]\nkind = "etcd"\nmembers = 3\n')
    with Environment.from_file(path) as env:
        dcs = env["dcs"]
        assert isinstance(dcs, EtcdService)
        assert dcs.roles() == ["etcd0", "etcd1", "etcd2"]
        assert len(set(dcs.pids)) == 3, "each member is its own process"
        assert dcs.url.count(",") == 2 and dcs.exports()["endpoints"].count(",") == 2
        with dcs.client() as client:
            client.put("/k", "v1")
        from shakedown.services.kinds.etcd import EtcdClient

        with EtcdClient([dcs.client_url(2)]) as third:
            assert third.get("/k") == "v1"  # written through member 0, read on member 2
        dcs.kill("etcd0")
        assert dcs.status() == "partial"
        with EtcdClient([dcs.client_url(1)], timeout=0.5) as second:
            wait_until(lambda: second.put("/k", "v2") is None, 5, "write with 2 of 3 members")
            assert second.get("/k") == "v2"
        dcs.start_again()  # what a fault's heal does: the killed member only
        assert dcs.status() == "running" and dcs.healthy(0)


# -- Patroni + HAProxy ---------------------------------------------------------------------------
def test_patroni_cluster_behind_haproxy_routes_and_survives_postgres_crash(
    write_topology: Callable[..., Path],
) -> None:
    # Keys that no other test sets, each checked below by its effect: postgres-ha durable and
    # settings, HAProxy's check_interval, PgBouncer's pool settings away from their defaults.
    extra = 'durable = true\n    [services.db.settings]\n    work_mem = "7MB"'
    path = write_topology(CLUSTER.format(extra=extra) + """
    check_interval = "250ms"

    [services.pool]
    kind = "pgbouncer"
    backend = "db"
    pool_mode = "session"
    default_pool_size = 7
    max_client_conn = 33
    """, schema__sql=SCHEMA)
    with Environment.from_file(path) as env:
        db, lb, pool = env["db"], env["lb"], env["pool"]
        assert isinstance(db, PatroniService) and isinstance(lb, HAProxyService)
        assert isinstance(pool, PgBouncerService)
        for member in db.members:
            with db.connect(member) as conn:
                assert conn.execute("SHOW work_mem").fetchone() == ("7MB",)
                assert conn.execute("SHOW fsync").fetchone() == ("on",)  # durable
                assert conn.execute("SHOW full_page_writes").fetchone() == ("on",)
        assert "default-server inter 250ms fastinter 250ms downinter 250ms" in \
            lb.config_path.read_text()
        with pool.connect("pgbouncer") as admin:
            config = {row[0]: row[1] for row in admin.execute("SHOW CONFIG").fetchall()}
        assert (config["pool_mode"], config["default_pool_size"], config["max_client_conn"]) \
            == ("session", "7", "33")
        leader = db.leader()
        assert leader is not None
        replicas = db.replicas()
        assert sorted(m.name for m in [leader, *replicas]) == ["db0", "db1", "db2"]
        with db.connect(leader) as conn:
            states = conn.execute("SELECT application_name, state FROM pg_stat_replication"
                                  ).fetchall()
        assert sorted(states) == sorted((m.name, "streaming") for m in replicas)
        for replica in replicas:
            with db.connect(replica) as conn:
                assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
        assert db.primary_url == lb.primary_url and db.replica_url == lb.replica_url
        assert db.exports()["url"].endswith(f":{lb.primary_port}/app")

        # A write through HAProxy's primary port is read through its replicas port.
        write_through(lb.primary_url, 1)
        wait_until(lambda: count_through(lb.replica_url) == 1, 5, "row visible on replicas")
        with psycopg.connect(lb.replica_url, autocommit=True) as conn:
            assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
        # PgBouncer in front of the cluster (its primary, through HAProxy) answers.
        with pool.connect() as conn:
            assert conn.execute("SELECT count(*) FROM t").fetchone() == (1,)
            assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (False,)

        # A replica's processes are addressable one by one: pause the member (Patroni and
        # postgres), resume it; kill its Patroni only (postgres goes on), start it again.
        replica = replicas[0]
        db.pause(replica.name)
        assert db.status() == "paused"
        db.resume(replica.name)
        assert db.status() == "running"
        postgres_pid = db.postmaster_pid(replica.index)
        db.kill(f"patroni{replica.index}")
        assert db.status() == "partial"
        assert db.postmaster_pid(replica.index) == postgres_pid, "postgres must go on"
        db.start_again()  # the new Patroni adopts the running postgres
        assert db.status() == "running" and db.postmaster_pid(replica.index) == postgres_pid

        # Kill postgres only on the leader: Patroni restarts it (or fails over).
        roles = [p.role for p in db.processes]
        assert f"postgres{leader.index}" in roles and f"patroni{leader.index}" in roles
        old_pid = db.postmaster_pid(leader.index)
        db.kill(f"postgres{leader.index}")
        assert db.postmaster_pid(leader.index) != old_pid
        assert f"patroni{leader.index}" in [p.role for p in db.processes if p.alive()]
        wait_until(lambda: write_through(lb.primary_url, 2), 15, "write after postgres crash")
        assert count_through(lb.primary_url) == 2


def test_patroni_fails_over_when_the_leader_member_is_killed(
    write_topology: Callable[..., Path],
) -> None:
    path = write_topology(CLUSTER.format(extra="synchronous_mode = true"),
                          schema__sql=SCHEMA)
    with Environment.from_file(path) as env:
        db, lb = env["db"], env["lb"]
        assert isinstance(db, PatroniService) and isinstance(lb, HAProxyService)
        old = db.leader()
        assert old is not None
        sync = [m["name"] for m in db.cluster_view()["members"]
                if m["role"] == "sync_standby"]
        assert len(sync) == 1
        for row in range(1, 51):  # acknowledged by the synchronous standby
            write_through(lb.primary_url, row)

        member_processes = dict(db.iter_member_processes())[old]
        assert {p.role for p in member_processes} == {f"patroni{old.index}",
                                                     f"postgres{old.index}"}
        db.kill(old.name)  # SIGKILL Patroni and its postgres
        for proc in member_processes:
            assert not group_members(proc.pgid), f"{proc.role} left processes behind"
        assert db.postmaster_pid(old.index) is None
        assert not db._stray_postmasters(old.index)

        # How fast a failover is (ttl + 2 s): bench/ha.py; here only a hang bound.
        wait_until(lambda: write_through(lb.primary_url, 1000), db.spec.ttl + 10,
                   "a write through HAProxy after the leader's crash")
        new = db.leader()
        assert new is not None and new.name != old.name
        assert new.name == sync[0], "only the synchronous standby may take over"
        assert count_through(lb.primary_url) == 51, "an acknowledged write was lost"

        # Heal: the killed member comes back and rejoins as a streaming replica.
        db.start_again()
        assert db.status() == "running"
        assert db.leader() == new
        assert old.name in {m.name for m in db.replicas()}
        with db.connect(old) as conn:
            assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
        wait_until(lambda: count_through(old.url) == 51, 10,
                   "the old leader replays the new leader's WAL")


def test_haproxy_reaches_members_through_links_a_partition_cuts(
    write_topology: Callable[..., Path],
) -> None:
    """HAProxy's sessions and health checks to each member go through links of its own: a
    partition of a member from HAProxy takes it out of rotation, latency on its session link
    slows queries routed to it, and heal brings it back."""
    path = write_topology(CLUSTER.format(extra=""), schema__sql=SCHEMA)
    with Environment.from_file(path) as env:
        db, lb = env["db"], env["lb"]
        assert isinstance(db, PatroniService) and isinstance(lb, HAProxyService)
        routes = env.faults.routes
        for member in db.members:
            for link in (f"lb-{member.name}", f"lb-{member.name}-api"):
                assert routes[link].source == "lb" and routes[link].to == member.name
        config = lb.config_path.read_text()
        for member in db.members:
            assert f"127.0.0.1:{env.link_ports[f'lb-{member.name}']} " in config
            assert f"port {env.link_ports[f'lb-{member.name}-api']}" in config
            assert f":{member.port} " not in config, "HAProxy must not reach a member directly"

        leader = db.leader()
        assert leader is not None
        write_through(lb.primary_url, 1)
        with env.faults.latency(f"lb-{leader.name}", ms=150):
            began = time.monotonic()
            assert count_through(lb.primary_url) == 1
            assert time.monotonic() - began >= 0.15, "the session did not cross the link"

        replica = db.replicas()[0]

        def replica_up() -> bool:
            return lb.server_states()["replicas"][replica.name].startswith("UP")

        env.faults.partition([replica.name], ["lb"])
        wait_until(lambda: not replica_up(), 5, "HAProxy marks the cut replica down")
        assert lb.routed_primary() == [leader.name], "the leader is not cut"
        for _ in range(4):  # round robin over what is left: the other replica answers
            assert count_through(lb.replica_url) == 1
        env.faults.heal()
        wait_until(replica_up, 5, "HAProxy routes to the replica again after heal")


def test_partition_cuts_only_the_peers_across_a_shared_link(
    write_topology: Callable[..., Path],
) -> None:
    """Majority | minority: {leader, replica A} | {replica B}. B's replication from the leader
    stalls (its connection into the leader's link is cut); A, which shares that link, keeps
    streaming. Heal: B catches up."""
    path = write_topology(CLUSTER.format(extra=""), schema__sql=SCHEMA)
    with Environment.from_file(path) as env:
        db = env["db"]
        assert isinstance(db, PatroniService)
        leader = db.leader()
        assert leader is not None
        kept, cut = db.replicas()

        def replayed(member: Any) -> int:
            return count_through(member.url)

        write_through(leader.url, 1)
        wait_until(lambda: replayed(kept) == 1 and replayed(cut) == 1, 10, "both replicas")
        fault = env.faults.partition([leader.name, kept.name], [cut.name])
        link_into_leader = f"{leader.name}-in"
        assert fault.params["links"] and link_into_leader in fault.params["links"]
        toxics = env.proxy().toxics(link_into_leader)  # type: ignore[union-attr]
        assert toxics and all(t["sources"] == [cut.name] for t in toxics)

        for row in range(2, 12):
            write_through(leader.url, row)
        wait_until(lambda: replayed(kept) == 11, 10, "the replica on the leader's side")
        time.sleep(1.0)  # ample time for the cut replica, were it still streaming
        assert replayed(cut) == 1, "the cut replica received WAL through the partition"

        env.faults.heal()
        wait_until(lambda: replayed(cut) == 11, 20, "the cut replica catches up after heal")

        # isolate() takes a member too: its links to etcd, from its peers and from HAProxy.
        alone = env.faults.isolate(cut.name)
        assert {f"{cut.name}-dcs", f"{cut.name}-in", f"lb-{cut.name}", f"lb-{cut.name}-api",
                link_into_leader, f"{kept.name}-in"} <= set(alone.params["links"])
        write_through(leader.url, 12)
        wait_until(lambda: replayed(kept) == 12, 10, "the other replica")
        time.sleep(1.0)
        assert replayed(cut) == 11, "the isolated member received WAL"
        env.faults.heal()
        wait_until(lambda: replayed(cut) == 12, 20, "the isolated member catches up")


# -- PgBouncer -----------------------------------------------------------------------------------
@pytest.mark.parametrize("auth_type", ["scram-sha-256", "md5", "plain"])
def test_pgbouncer_in_front_of_postgres(
    write_topology: Callable[..., Path], auth_type: str,
) -> None:
    path = write_topology(f"""
        [services.pg]
        kind = "postgres"
        databases = ["app"]

        [services.pool]
        kind = "pgbouncer"
        backend = "pg"
        auth_type = "{auth_type}"
        """)
    with Environment.from_file(path) as env:
        pg, pool = env["pg"], env["pool"]
        assert isinstance(pool, PgBouncerService)
        assert pool.url == (f"postgresql://postgres:{pg.exports()['password']}@127.0.0.1:"
                            f"{pool.port}/app")
        with psycopg.connect(pool.url, autocommit=True, prepare_threshold=None) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == ("app",)
            conn.execute("CREATE TABLE through_pool (id int)")
        with psycopg.connect(pg.url) as conn:
            assert conn.execute("SELECT count(*) FROM through_pool").fetchone() == (0,)
        with pool.connect("pgbouncer") as admin:
            pools = admin.execute("SHOW CONFIG").fetchall()
            assert ("pool_mode", "transaction") in {(r[0], r[1]) for r in pools}
            assert ("auth_type", auth_type) in {(r[0], r[1]) for r in pools}
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(pool.url.replace(pool.password, "wrong"), connect_timeout=2)
        owner = os.stat(f"/proc/{pool.pids[0]}").st_uid
        assert pwd.getpwuid(owner).pw_name == service_user_name()


# -- bad input -------------------------------------------------------------------------------------
ETCD = '[services.dcs]\nkind = "etcd"\n'


@pytest.mark.parametrize(("text", "expected"), [
    ('[services.dcs]\nkind = "etcd"\nmembers = 2\n', "odd number of members"),
    ('[services.dcs]\nkind = "etcd"\nmembers = 0\n', "at least 1 member"),
    ('[services.dcs]\nkind = "etcd"\nheartbeat_interval = "50ms"\n',
     "election_timeout >= 5 * heartbeat_interval"),
    (ETCD + '[services.db]\nkind = "postgres-ha"\netcd = "dcs"\nmembers = 0\n',
     "at least 1 member"),
    (ETCD + '[services.db]\nkind = "postgres-ha"\netcd = "dcs"\nloop_wait = 10\n'
     'retry_timeout = 10\nttl = 20\n', "loop_wait + 2 * retry_timeout <= ttl"),
    (ETCD + '[services.db]\nkind = "postgres-ha"\netcd = "dcs"\nttl = 10\n',
     "does not accept ttl below 20"),
    (ETCD + '[services.db]\nkind = "postgres-ha"\netcd = "dcs"\nretry_timeout = 1\n',
     "does not accept retry_timeout below 3"),
    ('[services.db]\nkind = "postgres-ha"\netcd = "dsc"\n', "no service named 'dsc'"),
    ('[services.c]\nkind = "redis"\n[services.db]\nkind = "postgres-ha"\netcd = "c"\n',
     "'c' is a redis service, not etcd"),
    ('[services.pg]\nkind = "postgres"\n[services.lb]\nkind = "haproxy"\nbackend = "pg"\n',
     "'pg' is a postgres service, not postgres-ha"),
    ('[services.c]\nkind = "redis"\n[services.p]\nkind = "pgbouncer"\nbackend = "c"\n',
     "not postgres or postgres-ha"),
    ('[services.db]\nkind = "postgres-ha"\n', "services.db.etcd: missing required key"),
])
def test_bad_ha_topologies_fail_clearly(
    write_topology: Callable[..., Path], text: str, expected: str,
) -> None:
    with pytest.raises(TopologyError) as info:
        load_topology(write_topology(text))
    assert expected in str(info.value)


def test_named_services_are_dependencies(write_topology: Callable[..., Path]) -> None:
    topology = load_topology(write_topology(CLUSTER.format(extra="") + """
    [services.pool]
    kind = "pgbouncer"
    backend = "db"
    """))
    assert topology.dependencies("db") == {"dcs"}
    assert topology.dependencies("lb") == {"db"}
    assert topology.start_order() == ["dcs", "db", "lb", "pool"]


def test_missing_etcd_binary_is_a_clear_error(write_topology: Callable[..., Path]) -> None:
    path = write_topology('[services.dcs]\nkind = "etcd"\nbin_dir = "/nonexistent"\n')
    with pytest.raises(MissingBinaryError) as info:
        Environment.from_file(path).up()
    assert "apt-get install -y etcd-server" in str(info.value)


def test_missing_patroni_fails_before_start_and_leaves_nothing(
    write_topology: Callable[..., Path], monkeypatch: pytest.MonkeyPatch, runtime_root: Path,
) -> None:
    monkeypatch.setenv("SHAKEDOWN_PATRONI", "/nonexistent/patroni-venv")
    path = write_topology(ETCD + '[services.db]\nkind = "postgres-ha"\netcd = "dcs"\n')
    env = Environment.from_file(path)
    with pytest.raises(MissingBinaryError) as info:
        env.up()
    message = str(info.value)
    assert "/usr/bin/python3 -m venv /opt/shakedown/patroni-venv" in message
    assert "scripts/bootstrap.sh" in message
    assert not tagged_processes(root=runtime_root), "etcd must be stopped again"
