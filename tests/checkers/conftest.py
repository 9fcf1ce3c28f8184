"""Fixtures of the checker tests: PostgreSQL servers from ``shakedown_testpg`` (kept beside
the workload tests, which need the same servers)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "workloads"))

from shakedown_testpg import pg_cluster, pg_server, pg_url, private_pg

__all__ = ["pg_cluster", "pg_server", "pg_url", "private_pg"]
