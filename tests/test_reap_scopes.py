"""``shakedown reap`` scopes with two projects' environments side by side in one runtime root:
the default reaps neither (both detached, owners alive), ``--all`` from project A reaps A's
and leaves B's, ``--dry-run`` lists and stops nothing, an environment whose record another user
owns is left alone by ``--all`` and taken by root's ``--everyone``, and ``--everyone`` is
refused to anyone but root."""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bounds import hang_bound
from shakedown.environment import Environment
from shakedown.process import tagged_processes

TOPOLOGY = '[services.cache]\nkind = "redis"\n'


def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "shakedown", *args], cwd=cwd,
                          capture_output=True, text=True, check=False,
                          timeout=hang_bound(90), env={**os.environ, "COLUMNS": "250"})


def ok(cwd: Path, *args: str) -> str:
    result = cli(cwd, *args)
    assert result.returncode == 0, f"shakedown {' '.join(args)}: {result.stdout}{result.stderr}"
    return result.stdout


def up(project: Path) -> str:
    project.mkdir()
    (project / "shakedown.toml").write_text(TOPOLOGY)
    ok(project, "up", "--detach")
    return Environment.attach("default", state_root=project / ".shakedown").env_id


@pytest.fixture
def two_projects(tmp_path: Path, runtime_root: Path) -> Iterator[tuple[Path, str, Path, str]]:
    """Two projects' detached environments in one (private) runtime root."""
    a, b = tmp_path / "project-a", tmp_path / "project-b"
    env_a, env_b = up(a), up(b)
    try:
        yield a, env_a, b, env_b
    finally:
        for project in (a, b):  # whatever a failed assertion left
            cli(project, "reap", "--all", "--everyone")


def row(out: str, env_id: str) -> str:
    return next(line for line in out.splitlines() if env_id in line)


def test_each_scope_takes_only_its_environments(two_projects: tuple[Path, str, Path, str],
                                                runtime_root: Path) -> None:
    a, env_a, _, env_b = two_projects
    assert ok(a, "reap").startswith("nothing to reap (2 left alone")
    listing = ok(a, "reap", "--all", "--dry-run")
    assert "would reap 1 of 2 environments" in listing
    assert "reap" in row(listing, env_a) and "detached, this project's" in row(listing, env_a)
    assert "leave" in row(listing, env_b) and "another project's" in row(listing, env_b)
    assert tagged_processes(env_a) and tagged_processes(env_b), "--dry-run stopped something"

    out = ok(a, "reap", "--all")
    assert f"reaped default ({env_a})" in out and env_b not in out.split("reaped", 1)[1]
    assert not tagged_processes(env_a)
    assert tagged_processes(env_b), "reap --all in project A stopped project B's environment"
    assert not (runtime_root / env_a).exists() and (runtime_root / env_b / "env.json").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to own a record as another user")
def test_another_users_environment_needs_everyone(two_projects: tuple[Path, str, Path, str],
                                                  runtime_root: Path) -> None:
    _, env_a, b, env_b = two_projects
    other = pwd.getpwnam("nobody")
    os.chown(runtime_root / env_b / "env.json", other.pw_uid, other.pw_gid)
    out = ok(b, "reap", "--all", "--dry-run")
    assert "owned by nobody (root may pass --everyone)" in row(out, env_b)
    assert "nothing to reap" in ok(b, "reap", "--all")
    assert tagged_processes(env_b)
    out = ok(b, "reap", "--all", "--everyone")
    assert f"reaped default ({env_b})" in out
    assert not tagged_processes(env_b) and tagged_processes(env_a)


def test_everyone_is_refused_to_other_users(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            runtime_root: Path) -> None:
    """In process, as uid 65534 (``nobody``): the venv's interpreter is not theirs to run."""
    from click.testing import CliRunner

    from shakedown.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(os, "geteuid", lambda: 65534)
    result = CliRunner().invoke(main, ["reap", "--everyone"])
    assert result.exit_code == 2, result.output
    assert "--everyone is for root only" in result.output and "you are nobody" in result.output
