"""The demo's system under test: a tiny HTTP app over PostgreSQL (primary + replica) and Redis.

POST /orders {"item": ...} writes to the primary and counts in Redis;
GET /orders/count reads from the replica; GET /health checks all three.
"""

from __future__ import annotations

import argparse
import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg
import redis

PRIMARY = os.environ["PRIMARY_URL"]
REPLICA = os.environ["REPLICA_URL"]
CACHE = redis.Redis.from_url(os.environ["REDIS_URL"])


class Handler(BaseHTTPRequestHandler):
    def _reply(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/health":
            with psycopg.connect(PRIMARY, connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            with psycopg.connect(REPLICA, connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            CACHE.ping()
            self._reply(200, {"status": "ok"})
        elif self.path == "/orders/count":
            with psycopg.connect(REPLICA, connect_timeout=2) as conn:
                row = conn.execute("SELECT count(*) FROM orders").fetchone()
            self._reply(200, {"replica_rows": row[0] if row else 0,
                              "cached_orders": int(CACHE.get("orders") or 0)})
        else:
            self._reply(404, {"error": "not found"})

    def do_POST(self) -> None:
        if self.path != "/orders":
            self._reply(404, {"error": "not found"})
            return
        length = int(self.headers.get("Content-Length", 0))
        try:
            item = json.loads(self.rfile.read(length))["item"]
        except (ValueError, KeyError):
            self._reply(400, {"error": "body must be {\"item\": ...}"})
            return
        with psycopg.connect(PRIMARY, connect_timeout=2) as conn:
            row = conn.execute("INSERT INTO orders (item) VALUES (%s) RETURNING id",
                               (item,)).fetchone()
        CACHE.incr("orders")
        self._reply(201, {"id": row[0] if row else None})

    def log_message(self, format: str, *args: object) -> None:
        print(f"{self.command} {self.path}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
