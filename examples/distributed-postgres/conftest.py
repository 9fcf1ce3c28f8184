"""Fixtures of the distributed-postgres suite: the Citus cluster and a fresh database per test
(a Citus cluster of its own on every node, with schema.sql run in it: tests that write do not
meet). Helpers: citus_helpers.py."""

from __future__ import annotations

import pytest


@pytest.fixture
def cluster(shakedown_env):
    return shakedown_env["db"]


@pytest.fixture
def fresh(cluster):
    """A database of its own, dropped on every node after the test."""
    return cluster.fresh_database("dist")
