"""Fixtures of the workload tests: PostgreSQL servers from ``shakedown_testpg``."""

from shakedown_testpg import pg_cluster, pg_server, pg_url, private_pg

__all__ = ["pg_cluster", "pg_server", "pg_url", "private_pg"]
