"""Citus setup: the extension on every node, the active workers, distributed and reference
tables, shard counts and their placement."""

from __future__ import annotations

from citus_helpers import connect, one


def test_citus_extension_on_every_node(cluster):
    versions = set()
    for node in cluster.nodes:  # the spare worker too: ready to join
        with connect(node.url) as conn:
            versions.add(one(conn, "SELECT extversion FROM pg_extension WHERE extname = 'citus'"))
            assert one(conn, "SHOW shared_preload_libraries").startswith("citus")
    assert len(versions) == 1 and versions.pop().startswith("13.")


def test_two_active_workers_and_a_healthy_cluster(cluster):
    with connect(cluster.url) as conn:
        workers = conn.execute("SELECT node_name, node_port "
                               "FROM citus_get_active_worker_nodes() ORDER BY 2").fetchall()
        assert len(workers) == 2
        assert sorted(workers) == sorted(cluster.registered_address(w) for w in cluster.workers)
        assert one(conn, "SELECT bool_and(result) FROM citus_check_cluster_node_health()")


def test_distributed_and_reference_tables(cluster):
    tables = {t["table_name"]: t for t in cluster.citus_tables()}
    assert {name: t["citus_table_type"] for name, t in tables.items()} == {
        "customers": "distributed", "orders": "distributed", "documents": "distributed",
        "currencies": "reference"}
    assert tables["customers"]["distribution_column"] == "id"
    assert tables["orders"]["distribution_column"] == "customer_id"
    assert tables["customers"]["colocation_id"] == tables["orders"]["colocation_id"]


def test_shard_counts_and_placement(cluster):
    with connect(cluster.url) as conn:
        shard_count = one(conn, "SHOW citus.shard_count")
    for table in ("customers", "orders", "documents"):
        per_node = cluster.shards_per_node(table)
        assert per_node["coordinator"] == 0 and per_node["worker3"] == 0, per_node
        assert per_node["worker1"] + per_node["worker2"] == int(shard_count)
        assert abs(per_node["worker1"] - per_node["worker2"]) <= 1, "spread evenly"
    # Co-located: shard i of orders is on the node of shard i of customers.
    customers = [p.node for p in cluster.shard_placements("customers")]
    orders = [p.node for p in cluster.shard_placements("orders")]
    assert customers == orders
    # A reference table has a full copy on every node of the cluster (not the spare).
    assert cluster.shards_per_node("currencies") == {
        "coordinator": 1, "worker1": 1, "worker2": 1, "worker3": 0}
