"""Orphaned System V segments of PostgreSQL data directories are removed before the directory
is: the one ``postmaster.pid`` names, and any other detached segment of the directory's owner
whose creator is dead (a killed postmaster's, forgotten when the directory was restarted), when
the owner is a dedicated service user. Segments whose creator still lives, of another user, or
of the invoking user are left alone. Real kernel segments, made by child processes (as
``nobody`` standing for the service user, and ``daemon`` for another user: root needed)."""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from shakedown.process._sysv import _remove, _segments, remove_orphan_segments

MAKE = ("import ctypes, ctypes.util, os, sys, time; libc = ctypes.CDLL(ctypes.util.find_library("
        "'c')); uid = int(sys.argv[1]); uid >= 0 and os.setuid(uid);"
        " shmid = libc.shmget(0, 4096, 0o1600); assert shmid >= 0; print(shmid, flush=True);"
        " time.sleep(float(sys.argv[2]))")


@pytest.fixture
def made() -> Iterator[list[int]]:
    """Segments a test made; whatever is left is removed after it."""
    ids: list[int] = []
    yield ids
    for shmid in ids:
        if shmid in _segments():
            _remove(shmid)


def segment(made: list[int], uid: int = -1,
            live: bool = False) -> tuple[int, subprocess.Popen[str]]:
    """A detached segment made by a child of ``uid``; with ``live`` the child keeps running."""
    child = subprocess.Popen([sys.executable, "-c", MAKE, str(uid), "60" if live else "0"],
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    shmid = int(child.stdout.readline())
    made.append(shmid)
    if not live:
        child.wait(timeout=30)
    return shmid, child


SERVICE, OTHER = pwd.getpwnam("nobody").pw_uid, pwd.getpwnam("daemon").pw_uid
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="segments of other users need root")


def data_directory(tmp_path: Path, owner: int = SERVICE) -> Path:
    tree = tmp_path / "data"
    (tree / "pg").mkdir(parents=True)
    (tree / "pg" / "PG_VERSION").write_text("15\n")
    if owner != os.getuid():
        os.chown(tree / "pg", owner, -1)
    return tree


@needs_root
def test_a_dead_creators_detached_segment_of_the_owner_is_removed(
        tmp_path: Path, made: list[int]) -> None:
    orphan, _ = segment(made, uid=SERVICE)
    removed = remove_orphan_segments(data_directory(tmp_path), wait=0)
    assert orphan in removed
    assert orphan not in _segments()


def test_the_invoking_users_other_segments_are_kept(tmp_path: Path, made: list[int]) -> None:
    mine, _ = segment(made)
    assert mine not in remove_orphan_segments(data_directory(tmp_path, os.getuid()), wait=0)
    assert mine in _segments()


@needs_root
def test_a_live_creators_segment_is_kept(tmp_path: Path, made: list[int]) -> None:
    kept, child = segment(made, uid=SERVICE, live=True)
    try:
        assert kept not in remove_orphan_segments(data_directory(tmp_path), wait=0)
        assert kept in _segments()
    finally:
        child.kill()
        child.wait()


@needs_root
def test_another_users_segment_is_kept(tmp_path: Path, made: list[int]) -> None:
    other, _ = segment(made, uid=OTHER)
    assert other not in remove_orphan_segments(data_directory(tmp_path), wait=0)
    assert other in _segments()


def test_the_named_segment_is_removed(tmp_path: Path, made: list[int]) -> None:
    named, _ = segment(made)
    key = _segments()[named][0]
    tree = data_directory(tmp_path, os.getuid())
    lines = ["1", str(tree / "pg"), "0", "5432", "/tmp", "localhost", f"{key:9d} {named:9d}"]
    (tree / "pg" / "postmaster.pid").write_text("\n".join(lines) + "\n")
    assert named in remove_orphan_segments(tree, wait=0)
