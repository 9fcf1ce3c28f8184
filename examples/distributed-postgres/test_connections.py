"""Connection management through PgBouncer in front of the coordinator: a pool of 40 serves 40
clients at once, 20 workers x 10 queries all get their answers, and a connection whose query
timed out is usable again."""

from __future__ import annotations

import threading
from collections.abc import Callable

import psycopg
import pytest
from citus_helpers import connect, one, seed_customers


def in_parallel(count: int, work: Callable[[int], object]) -> list[object]:
    results: list[object] = [None] * count
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            results[index] = work(index)
        except BaseException as exc:  # reported below, with the others
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors[:3]
    return results


def test_pool_of_40_serves_40_clients_at_once(shakedown_env, fresh):
    pool = shakedown_env["pool"]
    with connect(fresh.url) as conn:
        seed_customers(conn, 100)
    url = pool.url_for(fresh.name)
    barrier = threading.Barrier(40, timeout=60)

    def client(index: int) -> str:
        with psycopg.connect(url, connect_timeout=10) as conn:
            barrier.wait()  # all 40 hold a server connection in a transaction at once
            row = conn.execute("SELECT name, pg_sleep(0.2) FROM customers WHERE id = %s",
                               (index + 1,)).fetchone()
            conn.commit()
            return str(row[0]) if row else ""

    assert in_parallel(40, client) == [f"customer {i + 1}" for i in range(40)]
    with psycopg.connect(pool.url_for("pgbouncer"), autocommit=True) as admin:
        cursor = admin.execute("SHOW POOLS")
        columns = [c.name for c in cursor.description or []]
        pools = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
    ours = next(p for p in pools if p["database"] == fresh.name)
    assert ours["cl_waiting"] == 0


def test_20_workers_times_10_queries(shakedown_env, fresh):
    pool = shakedown_env["pool"]
    with connect(fresh.url) as conn:
        seed_customers(conn, 200, orders_each=2)
    url = pool.url_for(fresh.name)

    def worker(index: int) -> list[int]:
        answers = []
        # prepare_threshold=None: in transaction pooling, the next transaction may run on
        # another server connection, which has not the statements psycopg prepared.
        with psycopg.connect(url, autocommit=True, prepare_threshold=None) as conn:
            for query in range(10):
                key = 1 + (index * 10 + query) % 200
                answers.append(one(conn, "SELECT count(*) FROM orders o JOIN customers c "
                                         "ON c.id = o.customer_id WHERE c.id = %s", key))
        return answers

    assert in_parallel(20, worker) == [[2] * 10] * 20


def test_connection_recovers_after_a_timeout(shakedown_env, fresh):
    pool = shakedown_env["pool"]
    with connect(fresh.url) as conn:
        seed_customers(conn, 10)
    with psycopg.connect(pool.url_for(fresh.name), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.QueryCanceled), conn.transaction():
            conn.execute("SET LOCAL statement_timeout = '100ms'")
            conn.execute("SELECT count(*) FROM customers WHERE pg_sleep(0.05) IS NOT NULL")
        assert one(conn, "SELECT count(*) FROM customers") == 10
