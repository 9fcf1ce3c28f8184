"""The ``citus`` kind against the real extension: a coordinator and two workers formed into a
cluster (extension on every node, workers registered through their links, healthy), distributed,
co-located and reference tables, transactions across shards, pgvector's HNSW search on a
distributed table, per-test databases on every node, a killed worker and a partitioned worker,
and bad input that fails clearly, leaving nothing running.

Without Citus installed these tests skip, except with CI=true, where they fail: bash
scripts/extensions.sh installs it (see the README)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from shakedown.environment import Environment
from shakedown.errors import TopologyError
from shakedown.process import tagged_processes
from shakedown.services import CitusService
from shakedown.services.kinds.postgres import find_binaries
from shakedown.services.kinds.postgres._extensions import installed
from shakedown.topology import load_topology

HAVE_CITUS = "citus" in installed(find_binaries(None))


@pytest.fixture(autouse=True)
def _citus() -> None:
    """Citus or a skip, which strict mode (this repository's default) makes a failure."""
    if not HAVE_CITUS:
        pytest.skip("Citus is not installed: bash scripts/extensions.sh")

SCHEMA = """
CREATE TABLE accounts (id bigint PRIMARY KEY, owner text NOT NULL, balance int NOT NULL);
SELECT create_distributed_table('accounts', 'id');
CREATE TABLE transfers (account_id bigint, id bigint, amount int,
                        PRIMARY KEY (account_id, id));
SELECT create_distributed_table('transfers', 'account_id', colocate_with => 'accounts');
CREATE TABLE currencies (code text PRIMARY KEY, name text);
SELECT create_reference_table('currencies');
"""
VECTORS = """
CREATE TABLE items (id bigint PRIMARY KEY, embedding vector(3));
SELECT create_distributed_table('items', 'id');
CREATE INDEX ON items USING hnsw (embedding vector_l2_ops);
"""
CLUSTER = """
    [services.db]
    kind = "citus"
    databases = ["app"]
    init = ["schema.sql"]
    {extra}
    """


def cluster(env: Environment) -> CitusService:
    db = env["db"]
    assert isinstance(db, CitusService)
    return db


def scalar(conn: psycopg.Connection[object], query: str, *args: object) -> object:
    row = conn.execute(query, args or None).fetchone()
    assert row is not None
    return row[0]


def seed(db: CitusService, accounts: int = 100) -> None:
    with db.connect() as conn:
        conn.execute("INSERT INTO accounts SELECT g, 'owner' || g, 100 "
                     "FROM generate_series(1, %s) g", (accounts,))
        conn.execute("INSERT INTO transfers SELECT g, 1, 10 FROM generate_series(1, %s) g",
                     (accounts,))
        conn.execute("INSERT INTO currencies VALUES ('EUR', 'euro'), ('USD', 'dollar')")


def test_cluster_is_formed_on_every_node_and_distributes(
    write_topology: Callable[..., Path],
) -> None:
    path = write_topology(CLUSTER.format(extra='extensions = ["vector"]'),
                          schema__sql=SCHEMA + VECTORS)
    with Environment.from_file(path) as env:
        db = cluster(env)
        assert db.roles() == ["coordinator", "worker1", "worker2"]
        assert [p.role for p in db.processes] == db.roles()
        assert db.database == "app" and db.coordinator_url == db.url
        assert db.exports()["worker_urls"].split(",") == [w.url for w in db.workers]
        assert "Citus 13." in db.version()

        server_ids = set()
        for node in db.nodes:
            with psycopg.connect(node.url, autocommit=True) as conn:
                extensions = {r[0] for r in conn.execute("SELECT extname FROM pg_extension")}
                assert {"citus", "vector"} <= extensions, node.role
                preload = str(scalar(conn, "SHOW shared_preload_libraries"))
                assert preload.split(",")[0] == "citus", node.role
                server_ids.add(scalar(conn, "SELECT metadata->>'server_id' "
                                            "FROM pg_dist_node_metadata"))
        assert len(server_ids) == 3, "every node needs a server id of its own"

        with db.connect() as conn:
            assert scalar(conn, "SELECT count(*) FROM citus_get_active_worker_nodes()") == 2
            assert scalar(conn, "SELECT bool_and(result) "
                                "FROM citus_check_cluster_node_health()") is True
            registered = set(conn.execute("SELECT nodename, nodeport FROM pg_dist_node"))
        # Registered at their links' addresses: inter-node traffic crosses the proxy.
        assert registered == {db.registered_address(n) for n in db.nodes}
        assert all(port != n.port for n in db.nodes
                   for _, port in [db.registered_address(n)])

        tables = {t["table_name"]: t for t in db.citus_tables()}
        assert {k: v["citus_table_type"] for k, v in tables.items()} == {
            "accounts": "distributed", "transfers": "distributed", "items": "distributed",
            "currencies": "reference"}
        assert tables["accounts"]["colocation_id"] == tables["transfers"]["colocation_id"]
        shards = db.shards_per_node("accounts")
        assert shards["coordinator"] == 0 and shards["worker1"] > 0 and shards["worker2"] > 0
        assert sum(shards.values()) == tables["accounts"]["shard_count"]
        assert db.shards_per_node("currencies") == {"coordinator": 1, "worker1": 1,
                                                    "worker2": 1}

        seed(db)
        with db.connect() as conn:
            joined = scalar(conn, "SELECT count(*) FROM accounts a JOIN transfers t "
                                  "ON t.account_id = a.id")
            assert joined == 100
            plan = "\n".join(r[0] for r in conn.execute(
                "EXPLAIN SELECT a.owner, sum(t.amount) FROM accounts a JOIN transfers t "
                "ON t.account_id = a.id GROUP BY a.owner"))
            assert "Citus Adaptive" in plan and "Repartition" not in plan
            with_reference = scalar(conn, "SELECT count(*) FROM transfers t "
                                          "JOIN currencies c ON c.code = 'EUR'")
            assert with_reference == 100
            # A multi-shard transaction rolled back leaves nothing; committed, all of it.
            with conn.transaction(force_rollback=True):
                conn.execute("UPDATE accounts SET balance = balance - 10")
            assert scalar(conn, "SELECT sum(balance) FROM accounts") == 10_000
            with conn.transaction():
                conn.execute("UPDATE accounts SET balance = balance - 10")
                conn.execute("INSERT INTO transfers SELECT g, 2, -10 "
                             "FROM generate_series(1, 100) g")
            assert scalar(conn, "SELECT sum(balance) FROM accounts") == 9_000
            assert scalar(conn, "SELECT count(*) FROM transfers") == 200

            conn.execute("INSERT INTO items SELECT g, ARRAY[g, g, g]::vector "
                         "FROM generate_series(1, 50) g")
            nearest = [r[0] for r in conn.execute(
                "SELECT id FROM items ORDER BY embedding <-> '[10, 10, 11]' LIMIT 3")]
            assert nearest == [10, 11, 9]


def test_fresh_database_is_a_cluster_on_every_node_and_is_dropped_everywhere(
    write_topology: Callable[..., Path],
) -> None:
    path = write_topology(CLUSTER.format(extra=""), schema__sql=SCHEMA)
    with Environment.from_file(path) as env:
        db = cluster(env)
        fresh = db.fresh_database()
        with psycopg.connect(fresh.url, autocommit=True) as conn:
            assert scalar(conn, "SELECT count(*) FROM citus_get_active_worker_nodes()") == 2
            conn.execute("INSERT INTO accounts SELECT g, 'x', 1 FROM generate_series(1, 10) g")
            assert scalar(conn, "SELECT count(*) FROM accounts") == 10
        assert {t["table_name"] for t in db.citus_tables(fresh.name)} == {
            "accounts", "transfers", "currencies"}
        with db.connect() as conn:
            assert scalar(conn, "SELECT count(*) FROM accounts") == 0, "app is untouched"
        db.drop_database(fresh.name)
        for node in db.nodes:
            with node.connect() as conn:
                assert scalar(conn, "SELECT count(*) FROM pg_database WHERE datname = %s",
                              fresh.name) == 0, node.role


def test_killed_worker_fails_queries_until_started_again(
    write_topology: Callable[..., Path],
) -> None:
    path = write_topology(CLUSTER.format(extra=""), schema__sql=SCHEMA)
    with Environment.from_file(path) as env:
        db = cluster(env)
        seed(db)
        worker1 = db.node("worker1").pids
        env.faults.kill("db", "worker1")
        assert db.status() == "partial"
        assert db.node("worker2").pids and not db.node("worker1").pids
        with pytest.raises(psycopg.Error), db.connect() as conn:
            conn.execute("SELECT count(*) FROM accounts")
        env.faults.heal()  # starts the killed node again and waits for a healthy cluster
        assert db.status() == "running" and db.node("worker1").pids != worker1
        with db.connect() as conn:
            assert scalar(conn, "SELECT count(*) FROM accounts") == 100
            assert scalar(conn, "SELECT bool_and(result) "
                                "FROM citus_check_cluster_node_health()") is True


def test_partition_cuts_a_worker_from_the_coordinator_only(
    write_topology: Callable[..., Path],
) -> None:
    path = write_topology(CLUSTER.format(extra=""), schema__sql=SCHEMA)
    with Environment.from_file(path) as env:
        db = cluster(env)
        seed(db)
        on_node = {p.shard: p.node for p in db.shard_placements("accounts")}
        with db.connect() as conn:
            def node_of(key: int) -> str:
                shard = scalar(conn, "SELECT get_shard_id_for_distribution_column("
                                     "'accounts', %s)", key)
                return on_node[int(str(shard))]

            key_on_worker2 = next(k for k in range(1, 101) if node_of(k) == "worker2")
        fault = env.faults.partition(["db-worker1"], ["db-coordinator"])
        assert set(fault.params["links"]) == {"db-worker1-in", "db-coordinator-in"}
        with db.connect() as conn:
            conn.execute("SET statement_timeout = '3s'")
            # Shards on worker2 answer; a query that needs worker1 cannot finish.
            assert scalar(conn, "SELECT owner FROM accounts WHERE id = %s",
                          key_on_worker2) == f"owner{key_on_worker2}"
            with pytest.raises(psycopg.errors.QueryCanceled):
                conn.execute("SELECT count(*) FROM accounts")
        env.faults.heal()
        with db.connect() as conn:
            assert scalar(conn, "SELECT count(*) FROM accounts") == 100


@pytest.mark.parametrize(("body", "message"), [
    ('kind = "citus"\nworkers = 0', "services.db.workers: a citus cluster has 1 to 16 workers"),
    ('kind = "citus"\nworkers = 17', "services.db.workers: a citus cluster has 1 to 16 workers"),
    ('kind = "postgres"\nworkers = 2',
     "services.db.workers: unknown key 'workers' (a key of kind 'citus'"),
    ('kind = "postgres"\nextensions = ["citus"]', "a Citus cluster is a kind of its own"),
    ('kind = "postgres-ha"\netcd = "dcs"\nextensions = ["citus"]',
     "a Citus cluster is a kind of its own"),
    ('kind = "citus"\nextensions = ["Vector Search"]', "is not an extension name"),
    ('kind = "citus"\nextensions = ["vector", "vector"]', "extensions listed twice: vector"),
    ('kind = "citus"\nworkers = 10\nspare_workers = 7',
     "workers + spare_workers = 17: a citus cluster has at most 16 workers"),
])
def test_bad_citus_topologies_fail_clearly(write_topology: Callable[..., Path], body: str,
                                           message: str) -> None:
    path = write_topology(f'[services.dcs]\nkind = "etcd"\n\n[services.db]\n{body}\n')
    with pytest.raises(TopologyError) as info:
        load_topology(path)
    assert message in str(info.value)


def test_spare_worker_joins_when_added_and_unknown_nodes_are_clear_errors(
    write_topology: Callable[..., Path],
) -> None:
    path = write_topology('[services.db]\nkind = "citus"\nworkers = 1\nspare_workers = 1\n')
    env = Environment.from_file(path)
    with env:
        db = cluster(env)
        assert [n.role for n in db.workers] == ["worker1"]
        assert [n.role for n in db.spares] == ["worker2"]
        with db.connect() as conn:
            assert scalar(conn, "SELECT count(*) FROM citus_get_active_worker_nodes()") == 1
        assert db.add_worker().role == "worker2"
        with db.connect() as conn:
            assert scalar(conn, "SELECT count(*) FROM citus_get_active_worker_nodes()") == 2
        with pytest.raises(Exception, match="no spare worker left to add"):
            db.add_worker()
        with pytest.raises(Exception, match="has no process 'worker3'") as info:
            env.faults.kill("db", "worker3")
        assert "coordinator, worker1, worker2" in str(info.value)
        assert db.status() == "running"


def test_missing_citus_fails_before_anything_starts(
    write_topology: Callable[..., Path], server_without_extensions: Path, runtime_root: Path,
) -> None:
    bin_dir = server_without_extensions
    path = write_topology(f'[services.cache]\nkind = "redis"\n\n'
                          f'[services.db]\nkind = "citus"\nbin_dir = "{bin_dir}"\n')
    env = Environment.from_file(path)
    with pytest.raises(Exception) as info:
        env.up()
    message = str(info.value)
    assert "PostgreSQL extension 'citus' is not installed" in message
    assert f"{bin_dir.parent}/share/extension/citus.control: not found" in message
    assert "install.citusdata.com" in message and "postgresql-15-citus-13.2" in message
    assert "scripts/extensions.sh" in message
    assert not tagged_processes(root=runtime_root), "redis must be stopped again"


NEEDS_DB = "def test_needs_db(shakedown_env):\n    pass\n"


@pytest.mark.parametrize("ci", [False, True])
def test_missing_citus_is_a_skip_locally_and_an_error_in_ci(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, ci: bool,
    server_without_extensions: Path,
) -> None:
    bin_dir = server_without_extensions
    if ci:
        monkeypatch.setenv("CI", "true")
    else:
        monkeypatch.delenv("CI", raising=False)
    pytester.makefile(".toml", shakedown=f'[services.db]\nkind = "citus"\n'
                                         f'bin_dir = "{bin_dir}"\n')
    pytester.makepyfile(test_citus_needed=NEEDS_DB)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rs")
    if ci:
        result.assert_outcomes(errors=1)
        result.stdout.fnmatch_lines(
            ["*shakedown (strict): PostgreSQL extension 'citus' is not installed*"])
    else:
        result.assert_outcomes(skipped=1)
        result.stdout.fnmatch_lines(["*extension 'citus' is not installed*install.citusdata*"])


def test_doctor_reports_citus_and_pgvector() -> None:
    from shakedown.doctor import run_checks

    checks = {check.name: check for check in run_checks()}
    citus = checks["citus (citus kind)"]
    assert citus.ok and citus.detail.startswith("version 13.2"), citus
    assert "pgvector (extension)" in checks
