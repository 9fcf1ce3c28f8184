"""``shakedown init``: the starter project of every kind that offers one runs green at once
under pytest against real servers, the kinds a starter needs come first, and bad input (an
unknown kind, files already there, a directory that is a file or cannot be made) exits non-zero
with what/checked/fix and writes nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bounds import hang_bound
from shakedown.cli_init import TEST_FILE, chosen, render_topology, starters
from shakedown.topology import KINDS, load_topology


def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "shakedown", *args], cwd=cwd,
                          capture_output=True, text=True, check=False, timeout=hang_bound(60),
                          env={**os.environ, "COLUMNS": "200"})


def test_every_starter_runs_green_in_one_project(tmp_path: Path) -> None:
    kinds = list(starters())
    assert {"postgres", "redis", "etcd", "process", "aws", "pgbouncer", "postgres-ha"} <= set(kinds)
    made = cli(tmp_path, "init", "--dir", "proj", *kinds)
    assert made.returncode == 0, made.stderr
    project = tmp_path / "proj"
    run = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q"],
                         cwd=project, capture_output=True, text=True, check=False,
                         timeout=hang_bound(240))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert f"{len(kinds)} passed" in run.stdout, run.stdout[-2000:]


def test_a_starter_test_fails_when_its_service_is_wrong(tmp_path: Path) -> None:
    """The starter checks can fail: point the aws check at a bucket that does not exist."""
    assert cli(tmp_path, "init", "aws").returncode == 0
    (tmp_path / TEST_FILE).write_text((tmp_path / TEST_FILE).read_text()
                                      .replace('"uploads" in', '"no-such-bucket" in'))
    run = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q"],
                         cwd=tmp_path, capture_output=True, text=True, check=False,
                         timeout=hang_bound(240))
    assert run.returncode == 1 and "1 failed" in run.stdout, run.stdout[-2000:]


@pytest.mark.parametrize("kind", sorted(starters()))
def test_each_starter_alone_is_a_valid_topology(kind: str, tmp_path: Path) -> None:
    picked = chosen([kind])
    starter = KINDS[kind].starter
    assert starter is not None and list(picked)[-1] == kind
    for needed in starter.needs:
        assert list(picked).index(needed) < list(picked).index(kind)
    (tmp_path / "shakedown.toml").write_text(render_topology(picked))
    topology = load_topology(tmp_path / "shakedown.toml")
    assert [spec.kind for spec in topology.services.values()] == list(picked)


def test_needed_kinds_come_first_once_and_default_is_postgres() -> None:
    assert list(chosen(["pgbouncer", "postgres", "redis"])) == ["postgres", "pgbouncer", "redis"]
    assert list(chosen(["postgres-ha", "etcd"])) == ["etcd", "postgres-ha"]
    assert list(chosen([])) == ["postgres"]


def test_unknown_kind_exits_2_listing_the_kinds(tmp_path: Path) -> None:
    result = cli(tmp_path, "init", "postgres", "mongo\x1b[31m")
    assert result.returncode == 2
    assert "no starter for kind" in result.stderr and "redis" in result.stderr
    assert "\x1b[31m" not in result.stderr
    assert not list(tmp_path.iterdir())


def test_existing_files_are_kept_unless_force(tmp_path: Path) -> None:
    (tmp_path / "shakedown.toml").write_text("# mine\n")
    result = cli(tmp_path, "init", "redis")
    assert result.returncode == 1
    assert "already exist" in result.stderr and "--force" in result.stderr
    assert (tmp_path / "shakedown.toml").read_text() == "# mine\n"
    assert not (tmp_path / TEST_FILE).exists()
    assert cli(tmp_path, "init", "redis", "--force").returncode == 0
    assert 'kind = "redis"' in (tmp_path / "shakedown.toml").read_text()


@pytest.mark.parametrize("make", ["file", "unwritable"])
def test_a_directory_it_cannot_use_is_refused(make: str, tmp_path: Path) -> None:
    target = tmp_path / "target"
    if make == "file":
        target.write_text("x")
    else:
        target = Path("/proc/self/no-such-dir")
    result = cli(tmp_path, "init", "--dir", str(target), "redis")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "init:" in result.stderr and "--dir" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_readme_lists_the_kinds_that_have_a_starter() -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    listed = readme.split("Kinds with a starter: ", 1)[1].split(". ", 1)[0]
    assert sorted(k.split(" ")[0] for k in listed.split(", ")) == sorted(starters())
