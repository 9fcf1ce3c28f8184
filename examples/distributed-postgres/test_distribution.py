"""Data distribution: rows land on the shard of their key (and nowhere else), co-located and
reference joins are pushed down to the workers, distributed aggregates and inserts are exact,
and the plan's performance targets are measured."""

from __future__ import annotations

import re
from decimal import Decimal

from citus_helpers import connect, median_seconds, nodes_of, one, seed_customers


def plan_of(conn, query: str) -> str:
    return "\n".join(r[0] for r in conn.execute("EXPLAIN (VERBOSE) " + query))


def test_rows_land_on_the_shard_of_their_key(cluster, fresh):
    with connect(fresh.url) as conn:
        seed_customers(conn, 40)
    keys = list(range(1, 41))
    homes = nodes_of(cluster, fresh.name, "customers", keys)
    with connect(cluster.url_for(fresh.name)) as conn:
        shards = dict(conn.execute("SELECT k, get_shard_id_for_distribution_column("
                                   "'customers', k) FROM unnest(%s::bigint[]) k",
                                   (list(keys),)).fetchall())
    assert set(homes.values()) == {"worker1", "worker2"}
    for worker in cluster.workers:
        # On the worker itself, a shard is a plain table named customers_<shard>.
        with connect(worker.url_for(fresh.name)) as conn:
            conn.execute("SET citus.override_table_visibility = off")
            for key in keys:
                home, shard = homes[key], shards[key]
                found = one(conn, "SELECT count(*) FROM pg_class WHERE relname = %s",
                            f"customers_{shard}")
                if worker.role == home:
                    assert found == 1
                    assert one(conn, f"SELECT name FROM customers_{shard} WHERE id = %s",
                               key) == f"customer {key}"
                else:
                    assert found == 0, f"shard {shard} must live on {home} only"


def test_simple_query_by_key_is_routed_to_one_worker(shakedown_env, fresh):
    with connect(fresh.url) as conn:
        seed_customers(conn, 100)
        plan = plan_of(conn, "SELECT name FROM customers WHERE id = 42")
        assert "Task Count: 1" in plan
        assert one(conn, "SELECT name FROM customers WHERE id = 42") == "customer 42"
        shakedown_env.record("simple_query", median_seconds(
            lambda: conn.execute("SELECT name FROM customers WHERE id = 42").fetchone()))


def test_colocated_join_is_pushed_down(shakedown_env, fresh):
    query = ("SELECT c.region, count(*), sum(o.amount) FROM customers c "
             "JOIN orders o ON o.customer_id = c.id GROUP BY c.region ORDER BY 1")
    with connect(fresh.url) as conn:
        seed_customers(conn, 200, orders_each=5)
        plan = plan_of(conn, query)
        # One task per pair of co-located shards, each joined on its worker: no
        # repartitioning, no rows pulled to the coordinator to join there.
        assert "Repartition" not in plan and "MapMergeJob" not in plan
        assert re.search(r"customers_\d+ c JOIN \S*orders_\d+ o", plan), plan
        with shakedown_env.measure("colocated_join"):
            rows = conn.execute(query).fetchall()
    expected: dict[str, list] = {}
    for c in range(1, 201):
        region = ["north", "south", "east", "west"][(c % 4)]
        for o in range(1, 6):
            entry = expected.setdefault(region, [0, Decimal(0)])
            entry[0] += 1
            entry[1] += Decimal(c * 10 + o) / 100
    assert {r[0]: [r[1], r[2]] for r in rows} == {k: [v[0], round(v[1], 2)]
                                                   for k, v in expected.items()}


def test_reference_join_stays_on_the_workers(fresh):
    query = ("SELECT o.currency, round(sum(o.amount * r.rate), 2) FROM orders o "
             "JOIN currencies r ON r.code = o.currency GROUP BY 1 ORDER BY 1")
    with connect(fresh.url) as conn:
        seed_customers(conn, 60, orders_each=2)
        plan = plan_of(conn, query)
        assert "Repartition" not in plan
        rows = dict(conn.execute(query).fetchall())
        local = dict(conn.execute(
            "WITH o AS (SELECT * FROM orders), r AS MATERIALIZED (SELECT * FROM currencies) "
            "SELECT o.currency, round(sum(o.amount * r.rate), 2) FROM o "
            "JOIN r ON r.code = o.currency GROUP BY 1").fetchall())
    assert rows == local and set(rows) == {"EUR", "USD", "GBP"}


def test_distributed_aggregates_are_exact(shakedown_env, fresh):
    with connect(fresh.url) as conn:
        seed_customers(conn, 1000, orders_each=4)
        with shakedown_env.measure("parallel_distributed_query"):
            count, total, biggest, customers = conn.execute(
                "SELECT count(*), sum(amount), max(amount), count(DISTINCT customer_id) "
                "FROM orders").fetchone()
    amounts = [Decimal(c * 10 + o) / 100 for c in range(1, 1001) for o in range(1, 5)]
    assert (count, total, biggest, customers) == (4000, sum(amounts), max(amounts), 1000)


def test_bulk_insert_of_1000_rows(shakedown_env, fresh):
    rows = [(i, f"bulk {i}", "north") for i in range(1, 1001)]
    with connect(fresh.url) as conn:
        with shakedown_env.measure("bulk_insert_1000"), conn.cursor() as cursor, \
                cursor.copy("COPY customers (id, name, region) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        assert one(conn, "SELECT count(*) FROM customers") == 1000
        assert one(conn, "SELECT sum(id) FROM customers") == sum(range(1, 1001))
