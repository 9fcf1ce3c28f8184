"""Rebalancing: a worker added to a loaded cluster receives shards from the others through
Citus's background rebalancer (online, by logical replication), and no row is lost or
changed: the content by key is the same before and after."""

from __future__ import annotations

from citus_helpers import connect, one, seed_customers


def content(conn) -> dict[str, list]:
    return {
        "customers": conn.execute("SELECT id, name, region FROM customers ORDER BY id").fetchall(),
        "orders": conn.execute("SELECT customer_id, id, amount, currency FROM orders "
                               "ORDER BY customer_id, id").fetchall(),
    }


def test_rebalance_onto_an_added_worker_loses_no_row(cluster, fresh):
    with connect(fresh.url) as conn:
        seed_customers(conn, 2000, orders_each=3)
        before = content(conn)
    assert cluster.shards_per_node("customers", fresh.name)["worker3"] == 0
    added = cluster.add_worker(fresh.name)
    assert added.role == "worker3"
    with connect(fresh.url) as conn:
        assert one(conn, "SELECT count(*) FROM citus_get_active_worker_nodes()") == 3
        job = one(conn, "SELECT citus_rebalance_start()")
        assert job is not None, "the rebalancer found shards to move"
        conn.execute("SELECT citus_rebalance_wait()")
        state = one(conn, "SELECT state FROM citus_rebalance_status() WHERE job_id = %s", job)
        assert state == "finished"
        after = content(conn)
    per_node = cluster.shards_per_node("customers", fresh.name)
    assert per_node["worker3"] > 0, per_node
    assert max(per_node.values()) - min(v for k, v in per_node.items()
                                        if k != "coordinator") <= 1
    # Co-location kept: every orders shard followed its customers shard.
    assert ([p.node for p in cluster.shard_placements("customers", fresh.name)]
            == [p.node for p in cluster.shard_placements("orders", fresh.name)])
    assert after == before, "rows lost or changed by the rebalance"
