"""Plugin benchmark (issue #3): the per-test database clone, and the plugin's own overhead per
test (an empty test with and without the ``shakedown_env`` fixture), measured in one run.

    python bench/plugin.py [--clones N] [--tests N]

The floor, measured in the same run against the same server, interleaved with the clones:
the same clone made by hand with psycopg (``CREATE DATABASE ... TEMPLATE ... STRATEGY
FILE_COPY``, connect, the same first query), no shakedown code in between.

Target: a clone (``fresh_database()`` + first query) <= 1.33x that floor (the issue's
40 ms target over the 30 ms a hand-made cycle took when it was set).
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).parent))
from shakedown.services.postgres import TEMPLATE_DATABASE

from _common import repeat, verdict
from shakedown import Environment
from shakedown.services import PostgresService

TOPOLOGY = """
[services.db]
kind = "postgres"
init = ["schema.sql"]
"""
SCHEMA = """
CREATE TABLE customers (id bigserial PRIMARY KEY, name text NOT NULL, email text UNIQUE);
CREATE TABLE orders (id bigserial PRIMARY KEY, customer bigint REFERENCES customers,
                     total numeric(10, 2), created timestamptz DEFAULT now());
INSERT INTO customers (name, email)
    SELECT 'c' || g, 'c' || g || '@x' FROM generate_series(1, 500) g;
INSERT INTO orders (customer, total) SELECT 1 + g % 500, g FROM generate_series(1, 2000) g;
"""


def project() -> Path:
    directory = Path(tempfile.mkdtemp(prefix="shakedown-bench-plugin-"))
    (directory / "shakedown.toml").write_text(TOPOLOGY)
    (directory / "schema.sql").write_text(SCHEMA)
    return directory


CLONE_TARGET_RATIO = 1.33


def clone_figures(directory: Path, runs: int) -> tuple[float, float, float]:
    """Medians: fresh_database() + first query, its floor by hand, a full cycle."""
    with Environment.from_file(directory / "shakedown.toml") as env:
        db = env["db"]
        assert isinstance(db, PostgresService)

        def by_hand() -> float:
            name = f"floor_{secrets.token_hex(4)}"
            began = time.perf_counter()
            with db.connect() as admin:
                admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY FILE_COPY")
                              .format(sql.Identifier(name), sql.Identifier(TEMPLATE_DATABASE)))
            with psycopg.connect(db.url_for(name)) as conn:
                conn.execute("SELECT count(*) FROM orders")
            seconds = time.perf_counter() - began
            db.drop_database(name, wait=False)
            return seconds

        def clone_and_connect() -> float:
            began = time.perf_counter()
            fresh = db.fresh_database()
            with psycopg.connect(fresh.url) as conn:
                conn.execute("SELECT count(*) FROM orders")
            seconds = time.perf_counter() - began
            db.drop_database(fresh.name, wait=False)
            return seconds

        def cycle() -> float:
            began = time.perf_counter()
            fresh = db.fresh_database()
            with psycopg.connect(fresh.url) as conn:
                conn.execute("SELECT 1")
            db.drop_database(fresh.name, wait=True)
            return time.perf_counter() - began

        clone_and_connect()  # warm both paths once
        by_hand()
        floors: list[float] = []
        clones: list[float] = []
        for _ in range(runs):  # interleaved: both see the same load
            floors.append(by_hand())
            clones.append(clone_and_connect())
        floor = repeat("floor: the same clone by hand (psycopg)", runs, iter(floors).__next__)
        clone = repeat("fresh_database() + first query", runs, iter(clones).__next__)
        db.wait_for_drops()
        full = repeat("create + connect + drop (waited)", runs, cycle)
    return clone.median, floor.median, full.median


def per_test_seconds(directory: Path, test_file: str, body: str, tests: int) -> list[float]:
    (directory / test_file).write_text(textwrap.dedent(body).replace("N_TESTS", str(tests)))
    junit = directory / f"{test_file}.xml"
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                    f"--junitxml={junit}", test_file], cwd=directory, check=True,
                   capture_output=True)
    cases = ET.parse(junit).getroot().iter("testcase")
    return [float(case.get("time", "0")) for case in cases]


PLAIN = """
import pytest
@pytest.mark.parametrize("n", range(N_TESTS))
def test_plain(n):
    pass
"""
WITH_ENV = """
import pytest
@pytest.mark.parametrize("n", range(N_TESTS))
def test_env(shakedown_env, n):
    pass
"""
WITH_DB = """
import pytest
@pytest.mark.parametrize("n", range(N_TESTS))
def test_db(shakedown_env, n):
    shakedown_env["db"].fresh_database()
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clones", type=int, default=30)
    parser.add_argument("--tests", type=int, default=50)
    args = parser.parse_args()
    directory = project()
    print(f"plugin benchmark: {args.clones} clones, {args.tests} tests per pytest run")
    clone, floor, cycle = clone_figures(directory, args.clones)
    plain = per_test_seconds(directory, "test_plain.py", PLAIN, args.tests)
    with_env = per_test_seconds(directory, "test_env.py", WITH_ENV, args.tests)
    with_db = per_test_seconds(directory, "test_db.py", WITH_DB, args.tests)
    first, rest = with_env[0], with_env[1:]
    overhead = statistics.median(rest) - statistics.median(plain)
    print(f"{'empty test, no fixture (median)':<44} {statistics.median(plain) * 1000:8.2f} ms")
    print(f"{'empty test with shakedown_env (median)':<44} {statistics.median(rest) * 1000:8.2f} ms"
          f"   (first test, which starts the environment: {first * 1000:.0f} ms)")
    print(f"{'test with fresh_database() (median)':<44} "
          f"{statistics.median(with_db[1:]) * 1000:8.2f} ms")
    print()
    print(f"{'clone: fresh_database() + first query (ms)':<58} {clone * 1000:8.2f}")
    print(f"{'floor: the same clone by hand, this run (ms)':<58} {floor * 1000:8.2f}")
    print(verdict("clone / floor (x)", clone / floor, CLONE_TARGET_RATIO))
    print(f"{'create + connect + drop cycle (ms)':<58} {cycle * 1000:8.2f}")
    print(f"{'plugin overhead per test (ms)':<58} {overhead * 1000:8.2f}")


if __name__ == "__main__":
    main()
