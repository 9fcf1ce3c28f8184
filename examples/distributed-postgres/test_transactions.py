"""Transactions on a sharded cluster: a transaction that writes on two workers commits with
two-phase commit (both or neither), an error on one worker rolls back the other's write too,
ten parallel writers do not conflict, and errors come back as PostgreSQL's own."""

from __future__ import annotations

import threading

import psycopg
import pytest
from citus_helpers import connect, nodes_of, one, seed_customers


def keys_on_two_workers(cluster, database: str) -> tuple[int, int]:
    nodes = nodes_of(cluster, database, "customers", range(1, 41))
    first = next(k for k, n in nodes.items() if n == "worker1")
    second = next(k for k, n in nodes.items() if n == "worker2")
    return first, second


def test_commit_across_two_workers_is_two_phase(cluster, fresh):
    with connect(fresh.url) as conn:
        seed_customers(conn, 40)
        a, b = keys_on_two_workers(cluster, fresh.name)
        before = one(conn, "SELECT count(*) FROM pg_dist_transaction")
        with conn.transaction():
            conn.execute("UPDATE customers SET name = 'moved' WHERE id = %s", (a,))
            conn.execute("UPDATE customers SET name = 'moved' WHERE id = %s", (b,))
        # Citus records a prepared transaction per worker it committed on (kept until its
        # recovery runs): this commit went through PREPARE TRANSACTION on both.
        assert one(conn, "SELECT count(*) FROM pg_dist_transaction") >= before + 2
        assert one(conn, "SELECT count(*) FROM customers WHERE name = 'moved'") == 2
        assert one(conn, "SELECT recover_prepared_transactions()") == 0, "nothing in doubt"


def test_error_on_one_worker_rolls_back_the_other(cluster, fresh):
    with connect(fresh.url) as conn:
        seed_customers(conn, 40)
        a, b = keys_on_two_workers(cluster, fresh.name)
        with pytest.raises(psycopg.errors.UniqueViolation), conn.transaction():
            conn.execute("UPDATE customers SET name = 'half' WHERE id = %s", (a,))
            conn.execute("INSERT INTO customers VALUES (%s, 'duplicate', 'north')", (b,))
        assert one(conn, "SELECT count(*) FROM customers WHERE name = 'half'") == 0
        with conn.transaction(force_rollback=True):
            conn.execute("DELETE FROM customers")
        assert one(conn, "SELECT count(*) FROM customers") == 40


def test_ten_parallel_writers_without_conflict(fresh):
    errors: list[BaseException] = []

    def writer(index: int) -> None:
        try:
            with connect(fresh.url) as conn:
                for n in range(20):
                    key = index * 1000 + n
                    with conn.transaction():
                        conn.execute("INSERT INTO customers VALUES (%s, 'w', 'east')", (key,))
                        conn.execute("INSERT INTO orders VALUES (%s, 1, 1.00, 'EUR')", (key,))
        except BaseException as exc:  # reported below, with the others
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    with connect(fresh.url) as conn:
        assert one(conn, "SELECT count(*) FROM customers") == 200
        assert one(conn, "SELECT count(*) FROM orders o JOIN customers c "
                         "ON c.id = o.customer_id") == 200


def test_errors_come_back_as_postgres_errors(fresh):
    with connect(fresh.url) as conn:
        seed_customers(conn, 10)
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute("INSERT INTO customers VALUES (1, 'again', 'north')")
        with pytest.raises(psycopg.errors.DataException, match="expected 8 dimensions, not 3"):
            conn.execute("INSERT INTO documents VALUES (1, 'short', '[1, 2, 3]')")
        conn.execute("SET statement_timeout = '200ms'")
        with pytest.raises(psycopg.errors.QueryCanceled):
            conn.execute("SELECT count(*) FROM customers WHERE pg_sleep(0.1) IS NOT NULL")
        conn.execute("RESET statement_timeout")
        assert one(conn, "SELECT count(*) FROM customers") == 10, "the cluster goes on"
