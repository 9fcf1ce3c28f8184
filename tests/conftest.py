"""Shared fixtures of tests/. The leak guard, the ``runtime_root`` fixture (a private runtime
root) and pytester come from the repository-root conftest.py, for examples/ too."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture
def write_topology(tmp_path: Path) -> Callable[..., Path]:
    """Write a shakedown.toml (dedented) in a fresh directory and return its path."""

    def write(text: str, name: str = "shakedown.toml", **files: str) -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
        for file_name, content in files.items():
            (tmp_path / file_name.replace("__", ".")).write_text(textwrap.dedent(content))
        return path

    return write


def running_pids_owned_by(user: str) -> list[int]:
    import pwd

    uid = pwd.getpwnam(user).pw_uid
    return [int(p) for p in os.listdir("/proc") if p.isdigit()
            and os.stat(f"/proc/{p}").st_uid == uid]


@pytest.fixture
def server_without_extensions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bin_dir with the real PostgreSQL binaries whose pg_config points at empty extension
    directories: a PostgreSQL installation without Citus or pgvector."""
    from shakedown.services.kinds.postgres import find_binaries

    root = tmp_path_factory.mktemp("pg-without-extensions")
    real = find_binaries(None).bin_dir
    bin_dir = root / "bin"
    bin_dir.mkdir()
    for tool in ("postgres", "initdb", "psql"):
        (bin_dir / tool).symlink_to(real / tool)
    (root / "share" / "extension").mkdir(parents=True)
    (root / "lib").mkdir()
    pg_config = bin_dir / "pg_config"
    pg_config.write_text(f"#!/bin/sh\necho {root}/share\necho {root}/lib\n")
    pg_config.chmod(0o755)
    return bin_dir
