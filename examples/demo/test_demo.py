"""The demo's example suite, written with shakedown's pytest plugin: the app writes through the
primary, the replica streams the rows, Redis counts, and each test may have its own database."""

from __future__ import annotations

import httpx
import psycopg
import pytest
import redis

from shakedown import eventually


def test_order_reaches_the_replica(shakedown_env):
    app = shakedown_env["app"].url
    before = httpx.get(f"{app}/orders/count").json()["replica_rows"]
    with shakedown_env.measure("order.roundtrip"):
        assert httpx.post(f"{app}/orders", json={"item": "book"}).status_code == 201
        eventually(lambda: httpx.get(f"{app}/orders/count").json()["replica_rows"] > before,
                   timeout=5, interval=0.01)


def test_bad_payload_is_rejected(shakedown_env):
    response = httpx.post(f"{shakedown_env['app'].url}/orders", content=b"not json")
    assert response.status_code == 400


def test_redis_counts_orders(shakedown_env):
    cache = redis.Redis.from_url(shakedown_env["cache"].url)
    before = int(cache.get("orders") or 0)
    httpx.post(f"{shakedown_env['app'].url}/orders", json={"item": "pen"})
    assert int(cache.get("orders") or 0) == before + 1


def test_replica_is_read_only(shakedown_env):
    with psycopg.connect(shakedown_env["replica"].url) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("INSERT INTO orders (item) VALUES ('x')")


def test_each_test_can_have_its_own_database(shakedown_env):
    db = shakedown_env["primary"].fresh_database()
    with psycopg.connect(db.url, autocommit=True) as conn:
        # a clone of the database after schema.sql: the seed rows, nothing the app wrote
        assert conn.execute("SELECT count(*) FROM orders").fetchone() == (2,)
        conn.execute("DELETE FROM orders")
