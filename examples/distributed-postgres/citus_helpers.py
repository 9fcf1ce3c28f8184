"""Helpers of the distributed-postgres suite, thin over Citus's own functions."""

from __future__ import annotations

import psycopg


def connect(url: str) -> psycopg.Connection:
    return psycopg.connect(url, autocommit=True)


def one(conn: psycopg.Connection, query: str, *args):
    row = conn.execute(query, args or None).fetchone()
    assert row is not None
    return row[0]


def seed_customers(conn: psycopg.Connection, count: int, orders_each: int = 3) -> None:
    regions = "ARRAY['north', 'south', 'east', 'west']"
    conn.execute(f"INSERT INTO customers SELECT g, 'customer ' || g, ({regions})[1 + mod(g, 4)] "
                 "FROM generate_series(1, %s::int) g", (count,))
    conn.execute("INSERT INTO orders SELECT c, o, (c * 10 + o) / 100.0, "
                 "(ARRAY['EUR', 'USD', 'GBP'])[1 + mod(c + o, 3)] "
                 "FROM generate_series(1, %s::int) c, generate_series(1, %s::int) o",
                 (count, orders_each))


def nodes_of(cluster, database: str, table: str, keys) -> dict[int, str]:
    """The node (coordinator, worker1, ...) holding the shard of ``table`` for each key."""
    on_node = {p.shard: p.node for p in cluster.shard_placements(table, database)}
    with connect(cluster.url_for(database)) as conn:
        shards = conn.execute("SELECT k, get_shard_id_for_distribution_column(%s, k) "
                              "FROM unnest(%s::bigint[]) k", (table, list(keys))).fetchall()
    return {key: on_node[shard] for key, shard in shards}


def median_seconds(action, runs: int = 10) -> float:
    """The median duration of ``runs`` calls: one sample on a busy 2-core machine can catch a
    scheduling pause that says nothing about the system under test."""
    import statistics
    import time

    samples = []
    for _ in range(runs):
        began = time.perf_counter()
        action()
        samples.append(time.perf_counter() - began)
    return statistics.median(samples)
