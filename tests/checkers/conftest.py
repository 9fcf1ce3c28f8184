"""Fixtures of the checker tests: a PostgreSQL environment for the table comparisons."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from shakedown.environment import Environment


@pytest.fixture
def pg_env(write_topology: Callable[..., Path]) -> Iterator[Environment]:
    """Two PostgreSQL services, ``source`` (databases a and b) and ``target``."""
    path = write_topology("""
        [services.source]
        kind = "postgres"
        databases = ["a", "b"]

        [services.target]
        kind = "postgres"
        """)
    with Environment.from_file(path) as env:
        yield env
