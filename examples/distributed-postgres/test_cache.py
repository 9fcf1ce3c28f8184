"""Redis as a cache in front of the distributed database: cache-aside reads, write-through,
invalidation on update, expiry by TTL, and a concurrent workload whose recorded history the
``stale_reads`` checker proves coherent; a seeded bug (a write path that skips the cache)
is caught by the same checker."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable

import redis
from citus_helpers import connect, median_seconds, one

from shakedown import eventually
from shakedown.checkers import stale_reads
from shakedown.history import History

# Store a version only if it is newer than the cached one: concurrent write-throughs of one
# key may reach Redis out of order.
NEWER = """
local current = redis.call('GET', KEYS[1])
if current and tonumber(current) >= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""


class Cache:
    """The application's data path: documents' versions in Citus, cached in Redis."""

    def __init__(self, db_url: str, redis_url: str, ttl_ms: int = 60_000,
                 skip_cache: Callable[[int], bool] = lambda _version: False) -> None:
        self.db = connect(db_url)
        self.redis = redis.Redis.from_url(redis_url)
        self.ttl_ms = ttl_ms
        self.newer = self.redis.register_script(NEWER)
        self.skip_cache = skip_cache  # the seeded bug: True -> the write leaves the cache stale

    def read(self, key: int) -> int | None:
        """Cache-aside: Redis first; on a miss, the database, then fill the cache."""
        cached = self.redis.get(f"doc:{key}")
        if cached is not None:
            return int(cached)
        row = self.db.execute("SELECT version FROM cached_docs WHERE id = %s", (key,)).fetchone()
        if row is None:
            return None
        self.newer(keys=[f"doc:{key}"], args=[row[0], self.ttl_ms])
        return int(row[0])

    def write_through(self, key: int) -> int:
        """A new version in the database, then in the cache (never over a newer one)."""
        version = int(one(self.db, "INSERT INTO cached_docs VALUES (%s, 1) ON CONFLICT (id) "
                                   "DO UPDATE SET version = cached_docs.version + 1 "
                                   "RETURNING version", key))
        if not self.skip_cache(version):
            self.newer(keys=[f"doc:{key}"], args=[version, self.ttl_ms])
        return version

    def update_and_invalidate(self, key: int) -> int:
        """A new version in the database, and the cached one dropped."""
        version = int(one(self.db, "UPDATE cached_docs SET version = version + 1 "
                                   "WHERE id = %s RETURNING version", key))
        self.redis.delete(f"doc:{key}")
        return version

    def close(self) -> None:
        self.db.close()
        self.redis.close()


def schema(url: str) -> None:
    with connect(url) as conn:
        conn.execute("CREATE TABLE cached_docs (id bigint PRIMARY KEY, version int NOT NULL)")
        conn.execute("SELECT create_distributed_table('cached_docs', 'id')")


def test_cache_aside_write_through_invalidation_and_ttl(shakedown_env, fresh):
    schema(fresh.url)
    cache = Cache(fresh.url, shakedown_env["cache"].url, ttl_ms=300)
    try:
        cache.redis.flushdb()
        assert cache.read(1) is None, "absent in the database: nothing cached"
        assert cache.write_through(1) == 1
        assert cache.read(1) == 1
        shakedown_env.record("cache_read", median_seconds(lambda: cache.read(1), 20))
        assert cache.redis.get("doc:1") == b"1"
        assert 0 < cache.redis.pttl("doc:1") <= 300
        assert cache.update_and_invalidate(1) == 2
        assert cache.redis.get("doc:1") is None
        assert cache.read(1) == 2 and cache.redis.get("doc:1") == b"2", "filled on a miss"
        # A change made behind the cache's back shows once the cached entry expires.
        cache.db.execute("UPDATE cached_docs SET version = 9 WHERE id = 1")
        assert cache.read(1) == 2
        eventually(lambda: cache.redis.get("doc:1") is None, timeout=5)
        assert cache.read(1) == 9
    finally:
        cache.close()


def run_workload(db_url: str, redis_url: str, history: History, *, operations: int = 400,
                 skip_cache: Callable[[int], bool] = lambda _v: False) -> None:
    """4 clients, each reading and writing 10 keys at random, recording every operation."""
    keys = list(range(1, 11))
    rng = random.Random(16)
    plans = [[(rng.random() < 0.3, rng.choice(keys)) for _ in range(operations // 4)]
             for _ in range(4)]
    errors: list[BaseException] = []

    def client(process: int) -> None:
        cache = Cache(db_url, redis_url, skip_cache=skip_cache)
        try:
            for is_write, key in plans[process]:
                f = "cache-write" if is_write else "cache-read"
                history.append(process, "invoke", f, {"key": key})
                version = cache.write_through(key) if is_write else cache.read(key)
                history.append(process, "ok", f, {"key": key, "version": version})
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            cache.close()

    threads = [threading.Thread(target=client, args=(p,)) for p in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors[:3]


def test_concurrent_reads_through_the_cache_are_never_stale(shakedown_env, fresh):
    schema(fresh.url)
    redis.Redis.from_url(shakedown_env["cache"].url).flushdb()
    history = History()
    run_workload(fresh.url, shakedown_env["cache"].url, history)
    result = stale_reads(history)
    assert result.validity == "valid", result
    assert result.counts["reads"] > 200 and result.counts["writes"] > 50


def test_the_checker_catches_a_write_path_that_skips_the_cache(shakedown_env, fresh):
    schema(fresh.url)
    redis.Redis.from_url(shakedown_env["cache"].url).flushdb()
    history = History()
    # The seeded bug: one write in three updates the database but not the cache.
    run_workload(fresh.url, shakedown_env["cache"].url, history,
                 skip_cache=lambda version: version % 3 == 0)
    result = stale_reads(history)
    assert result.validity == "invalid", result
    assert result.counts["stale"] > 0 and result.counts["unexpected"] == 0
    assert "stale read(s)" in result.explanation
