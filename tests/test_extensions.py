"""``extensions = [...]`` of the postgres kinds against the real extensions (pgvector and
contrib's pg_stat_statements): preloaded where needed, created in every database (declared ones,
the init template and per-test clones) from a template cache keyed by them, and names that do
not exist fail clearly before anything starts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from shakedown.environment import Environment
from shakedown.errors import MissingBinaryError, ShakedownError
from shakedown.process import service_user, tagged_processes
from shakedown.services import PatroniService, PostgresService
from shakedown.services.kinds.postgres import find_binaries
from shakedown.services.kinds.postgres._extensions import ensure_template_with, installed, preload

HAVE_VECTOR = "vector" in installed(find_binaries(None))


@pytest.fixture
def _vector() -> None:
    """pgvector or a skip, which strict mode (this repository's default) makes a failure."""
    if not HAVE_VECTOR:
        pytest.skip("pgvector is not installed: bash scripts/extensions.sh")


needs_vector = pytest.mark.usefixtures("_vector")


def extensions_in(url: str) -> set[str]:
    with psycopg.connect(url, autocommit=True) as conn:
        return {r[0] for r in conn.execute("SELECT extname FROM pg_extension")}


@needs_vector
def test_postgres_extensions_in_every_database_and_preloaded(
    write_topology: Callable[..., Path],
) -> None:
    path = write_topology("""
        [services.db]
        kind = "postgres"
        databases = ["app", "other"]
        init = ["schema.sql"]
        extensions = ["vector", "pg_stat_statements"]

        [services.copy]
        kind = "postgres"
        replica_of = "db"
        """, schema__sql="CREATE TABLE items (id int PRIMARY KEY, embedding vector(2));\n"
                         "CREATE INDEX ON items USING hnsw (embedding vector_l2_ops);\n")
    with Environment.from_file(path) as env:
        db, replica = env["db"], env["copy"]
        assert isinstance(db, PostgresService) and isinstance(replica, PostgresService)
        wanted = {"vector", "pg_stat_statements"}
        for database in ("postgres", "app", "other"):
            assert wanted <= extensions_in(db.url_for(database)), database
        fresh = db.fresh_database()
        assert wanted <= extensions_in(fresh.url)
        with psycopg.connect(fresh.url, autocommit=True) as conn:
            conn.execute("INSERT INTO items SELECT g, ARRAY[g, g]::vector "
                         "FROM generate_series(1, 20) g")
            conn.execute("SET enable_seqscan = off")  # the HNSW index answers
            plan = "\n".join(r[0] for r in conn.execute(
                "EXPLAIN SELECT id FROM items ORDER BY embedding <-> '[5, 5]' LIMIT 3"))
            assert "items_embedding_idx" in plan
            nearest = [r[0] for r in conn.execute(
                "SELECT id FROM items ORDER BY embedding <-> '[5, 5.2]' LIMIT 3")]
            assert nearest == [5, 6, 4]
            assert conn.execute("SHOW shared_preload_libraries").fetchone() == (
                "pg_stat_statements",)
            calls = conn.execute("SELECT count(*) FROM pg_stat_statements").fetchone()
            assert calls is not None and calls[0] > 0
        # The replica runs with the same libraries (its primary's extensions).
        with psycopg.connect(replica.url, autocommit=True) as conn:
            assert conn.execute("SHOW shared_preload_libraries").fetchone() == (
                "pg_stat_statements",)


@needs_vector
def test_template_cache_is_keyed_by_extensions() -> None:
    binaries = find_binaries(None)
    run_as = service_user()
    plain = ensure_template_with(binaries, (), run_as)
    with_vector = ensure_template_with(binaries, (), run_as, ["vector"])
    assert with_vector.key.startswith(plain.key + "-x") and with_vector.key != plain.key
    assert ensure_template_with(binaries, (), run_as, ["vector"]).key == with_vector.key
    assert ensure_template_with(binaries, (), run_as, ["vector", "pg_trgm"]).key != (
        with_vector.key)
    assert with_vector.bootstrap_password == plain.bootstrap_password
    conf = (with_vector.data_dir / "postgresql.conf").read_text()
    assert conf == (plain.data_dir / "postgresql.conf").read_text(), \
        "the build's own settings must not stay in the template"


def test_preload_puts_citus_first_and_keeps_the_users_libraries() -> None:
    assert preload(["vector"], {}) is None
    assert preload(["pg_stat_statements", "citus"], {}) == "citus,pg_stat_statements"
    assert preload(["vector", "pg_stat_statements"],
                   {"shared_preload_libraries": "auto_explain"}) == (
        "pg_stat_statements,auto_explain")
    assert preload(["citus"], {"shared_preload_libraries": "auto_explain, citus"}) == (
        "citus,auto_explain")


@needs_vector
def test_patroni_cluster_has_the_extensions(write_topology: Callable[..., Path]) -> None:
    path = write_topology("""
        [services.dcs]
        kind = "etcd"

        [services.db]
        kind = "postgres-ha"
        etcd = "dcs"
        members = 2
        databases = ["app"]
        extensions = ["vector", "pg_stat_statements"]
        """)
    with Environment.from_file(path) as env:
        db = env["db"]
        assert isinstance(db, PatroniService)
        assert {"vector", "pg_stat_statements"} <= extensions_in(db.url_for("app"))
        for member in db.members:
            with db.connect(member) as conn:
                assert conn.execute("SHOW shared_preload_libraries").fetchone() == (
                    "pg_stat_statements",)


def test_unknown_extension_fails_before_start_and_leaves_nothing(
    write_topology: Callable[..., Path], runtime_root: Path,
) -> None:
    path = write_topology("""
        [services.cache]
        kind = "redis"

        [services.db]
        kind = "postgres"
        extensions = ["pg_trgm", "pg_stat_statement"]
        """)
    env = Environment.from_file(path)
    with pytest.raises(ShakedownError) as info:
        env.up()
    assert not isinstance(info.value, MissingBinaryError), "a typo is no reason to skip"
    message = str(info.value)
    assert "service 'db': extensions: PostgreSQL 15" in message
    assert "has no extension 'pg_stat_statement' (did you mean 'pg_stat_statements'?)" in message
    assert "pg_stat_statement.control: not found" in message
    assert not tagged_processes(root=runtime_root)


def test_known_extension_not_installed_names_the_install_command(
    write_topology: Callable[..., Path], server_without_extensions: Path,
) -> None:
    bin_dir = server_without_extensions
    path = write_topology(f'[services.db]\nkind = "postgres"\nbin_dir = "{bin_dir}"\n'
                          'extensions = ["vector"]\n')
    with pytest.raises(MissingBinaryError) as info:
        Environment.from_file(path).up()
    message = str(info.value)
    assert "PostgreSQL extension 'vector' is not installed" in message
    assert "apt-get install -y postgresql-15-pgvector" in message
    assert "SHAKEDOWN_EXTENSION_SOURCES" in message
