"""Vector search on a distributed table: pgvector's HNSW index on every shard, a top-k query
merged by the coordinator, checked against the exact nearest neighbours computed here."""

from __future__ import annotations

import random

from citus_helpers import connect, median_seconds


def literal(vector: list[float]) -> str:
    return "[" + ",".join(f"{x:.6f}" for x in vector) + "]"


def distance(a: list[float], b: list[float]) -> float:
    return sum((x - y) ** 2 for x, y in zip(a, b, strict=True))


def test_hnsw_search_finds_the_nearest_documents(shakedown_env, fresh):
    rng = random.Random(16)
    vectors = {i: [rng.uniform(-1, 1) for _ in range(8)] for i in range(1, 1001)}
    with connect(fresh.url) as conn:
        with conn.cursor() as cursor, cursor.copy(
                "COPY documents (id, title, embedding) FROM STDIN") as copy:
            for key, vector in vectors.items():
                copy.write_row((key, f"doc {key}", literal(vector)))
        # The vector inline: Citus cannot EXPLAIN on the workers a query with parameters.
        plan = "\n".join(r[0] for r in conn.execute(
            f"EXPLAIN (VERBOSE) SELECT id FROM documents "
            f"ORDER BY embedding <-> '{literal(vectors[1])}' LIMIT 5"))
        assert "documents_embedding" in plan, "each shard searches with its HNSW index"
        search = "SELECT id FROM documents ORDER BY embedding <-> %s::vector LIMIT 5"
        conn.execute(search, (literal(vectors[2]),))  # connections to every shard's worker
        found = 0
        for _ in range(10):
            query = [rng.uniform(-1, 1) for _ in range(8)]
            exact = sorted(vectors, key=lambda k, q=query: distance(vectors[k], q))[:5]
            got = [r[0] for r in conn.execute(search, (literal(query),))]
            found += len(set(got) & set(exact))
        shakedown_env.record("vector_search", median_seconds(
            lambda: conn.execute(search, (literal(vectors[3]),)).fetchall()))
    assert found / 50 >= 0.9, f"recall {found / 50:.2f}: the index missed neighbours"
