"""Fixtures of the workload tests: PostgreSQL servers brought up by ``Environment`` (each test
gets its own, stopped when the test ends however it ends)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack
from pathlib import Path

import pytest

from shakedown.environment import Environment
from shakedown.services import PostgresService

StartPostgres = Callable[..., PostgresService]


def postgres_topology(settings: Mapping[str, str], databases: tuple[str, ...]) -> str:
    lines = ["[services.db]", 'kind = "postgres"']
    if databases:
        lines.append("databases = [" + ", ".join(f'"{d}"' for d in databases) + "]")
    if settings:
        lines.append("[services.db.settings]")
        lines += [f'{key} = "{value}"' for key, value in settings.items()]
    return "\n".join(lines) + "\n"


@pytest.fixture
def start_postgres(write_topology: Callable[..., Path]) -> Iterator[StartPostgres]:
    """``start_postgres(settings={...}, databases=(...))`` -> the running ``db`` service."""
    with ExitStack() as stack:

        def start(
            settings: Mapping[str, str] | None = None, databases: tuple[str, ...] = ()
        ) -> PostgresService:
            path = write_topology(postgres_topology(settings or {}, databases))
            env = stack.enter_context(Environment.from_file(path))
            db = env["db"]
            assert isinstance(db, PostgresService)
            return db

        yield start


@pytest.fixture
def pg_url(start_postgres: StartPostgres) -> str:
    return start_postgres().url
