"""The hostile-input corpus (issue 17): malformed topologies (tests/hostile/*.toml), misbehaving
services (tests/hostile/services/*.toml, run through tests/hostile/misbehave.py), files that are
not topologies, command-line arguments and environment variables. For every case, through the
real CLI: the expected exit code (2 bad input, 3 missing binary, 1 otherwise), one message
(``error:`` with what failed, ``fix:``, the key path or file named, outside text verbatim), no
traceback, no process left (tagged or not: every pid a misbehaving service forked is checked),
no state, data or runtime directory left.

Each case file starts with ``# exit: N``, ``# expect: TEXT`` and ``# not-expect: TEXT``
lines."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bounds import hang_bound
from shakedown.process import pid_alive, tagged_processes

HOSTILE = Path(__file__).parent / "hostile"
CLI = [sys.executable, "-m", "shakedown"]
GOOD = '[services.a]\nkind = "process"\ncommand = ["sleep", "60"]\n'


@dataclass
class Case:
    """One hostile input: how to build it in a fresh directory and what must come out."""

    name: str
    exit_code: int
    expect: list[str]
    not_expect: list[str] = field(default_factory=list)
    build: Callable[[Path], list[str]] | None = None
    """Writes what the case needs under the directory; returns the CLI arguments."""
    env: dict[str, str] = field(default_factory=dict)


def _from_file(path: Path) -> Case:
    header = [line[2:] for line in path.read_bytes().decode("utf-8", "replace").splitlines()
              if line.startswith("# ")]
    values: dict[str, list[str]] = {"exit": [], "expect": [], "not-expect": []}
    for line in header:
        key, _, value = line.partition(": ")
        if key in values:
            values[key].append(value)

    def build(directory: Path) -> list[str]:
        data = path.read_bytes().replace(b"@HERE@", str(HOSTILE).encode())
        (directory / "shakedown.toml").write_bytes(data)
        return ["up", "--detach", "--name", "hostile"]

    return Case(f"{path.parent.name}/{path.stem}", int(values["exit"][0]), values["expect"],
                values["not-expect"], build)


def _topology(text: str) -> Callable[[Path], list[str]]:
    def build(directory: Path) -> list[str]:
        (directory / "shakedown.toml").write_text(text)
        return ["up", "--detach", "--name", "hostile"]

    return build


def _special_files() -> list[Case]:
    def directory(d: Path) -> list[str]:
        (d / "shakedown.toml").mkdir()
        return ["up", "-f", "shakedown.toml"]

    def fifo(d: Path) -> list[str]:
        os.mkfifo(d / "shakedown.toml")
        return ["up", "-f", "shakedown.toml"]

    def through_file(d: Path) -> list[str]:
        (d / "plain").write_text("x")
        return ["up", "-f", "plain/shakedown.toml"]

    def huge(d: Path) -> list[str]:
        with (d / "shakedown.toml").open("w") as handle:
            handle.write(GOOD)
            handle.write(("# " + "x" * 1021 + "\n") * (9 * 1024))
        return ["up", "-f", "shakedown.toml"]

    def device(d: Path) -> list[str]:
        return ["up", "-f", "/dev/zero"]

    def cycle_5000(d: Path) -> list[str]:
        lines = [f'[services.s{i}]\nkind = "process"\ncommand = ["true"]\n'
                 f'depends_on = ["s{(i - 1) % 5000}"]\n' for i in range(5000)]
        (d / "shakedown.toml").write_text("".join(lines))
        return ["up", "-f", "shakedown.toml"]

    def overlay_kind(d: Path) -> list[str]:
        (d / "shakedown.toml").write_text(GOOD)
        (d / "ci.toml").write_text('[services.a]\nkind = "mysql"\n')
        return ["up", "-f", "shakedown.toml", "-f", "ci.toml"]

    def missing(d: Path) -> list[str]:
        return ["up", "-f", "nope.toml"]

    return [
        Case("file/directory", 2, ["shakedown.toml: is a directory"], build=directory),
        Case("file/fifo", 2, ["not a regular file"], build=fifo),
        Case("file/through-a-file", 2, ["plain/shakedown.toml: cannot be read"],
             build=through_file),
        Case("file/huge", 2, ["larger than 8 MiB"], build=huge),
        Case("file/device", 2, ["/dev/zero: is not a regular file"], build=device),
        Case("file/missing", 2, ["nope.toml: topology file not found"], build=missing),
        Case("file/cycle-of-5000", 2, ["dependency cycle", "(5000 services)"],
             build=cycle_5000),
        Case("file/overlay-unknown-kind", 2, ["shakedown.toml + ci.toml", "services.a.kind",
                                              "'mysql'"], build=overlay_kind),
    ]


def _cli_and_environment() -> list[Case]:
    def good(*args: str) -> Callable[[Path], list[str]]:
        def build(d: Path) -> list[str]:
            (d / "shakedown.toml").write_text(GOOD)
            (d / "a-file").write_text("x")
            return list(args)

        return build

    return [
        Case("cli/name-path", 2, ["bad environment name '../x'"],
             build=good("up", "--name", "../x")),
        Case("cli/name-empty", 2, ["bad environment name ''"], build=good("up", "--name", "")),
        Case("cli/name-markup", 2, ["bad environment name '[bold]x[/]'"],
             build=good("status", "--name", "[bold]x[/]")),
        Case("cli/status-unknown-env", 1, ["no environment named 'nope'"],
             build=good("status", "--name", "nope")),
        Case("cli/logs-unknown-env", 1, ["no environment named 'default'"],
             build=good("logs", "a")),
        Case("cli/down-unknown-env", 1, ["no environment named 'default'"],
             build=good("down")),
        Case("cli/check-garbage-history", 2, ["garbage.jsonl", "line 1"],
             build=lambda d: (d / "garbage.jsonl").write_text("{not json\n") and
             ["check", "garbage.jsonl"]),
        Case("cli/check-binary-history", 2, ["binary.jsonl", "line 1"],
             build=lambda d: (d / "binary.jsonl").write_bytes(b"\xff\x00\x1b[31m\n") and
             ["check", "binary.jsonl"]),
        Case("cli/check-json-not-an-op", 2, ["list.jsonl", "line 1"],
             build=lambda d: (d / "list.jsonl").write_text('[1, 2]\n{"a": 1}\n') and
             ["check", "list.jsonl"]),
        Case("cli/name-blank", 2, ["bad environment name ' '"], build=good("up", "--name", " ")),
        Case("env/runtime-dir-is-a-file", 2, ["SHAKEDOWN_RUNTIME_DIR", "a-file"],
             build=good("up", "--detach", "--name", "hostile"),
             env={"SHAKEDOWN_RUNTIME_DIR": "a-file"}),
        Case("env/runtime-dir-under-a-file", 2, ["SHAKEDOWN_RUNTIME_DIR"],
             build=good("reap"), env={"SHAKEDOWN_RUNTIME_DIR": "a-file/below"}),
        Case("env/disk-dir-is-a-file", 2, ["SHAKEDOWN_DISK_DIR"],
             build=lambda d: (d / "a-file").write_text("x") and _topology(
                 '[environment]\ntmpfs = false\n' + GOOD)(d),
             env={"SHAKEDOWN_DISK_DIR": "a-file"}),
    ]


CASES = ([_from_file(p) for p in sorted(HOSTILE.glob("*.toml"))]
         + [_from_file(p) for p in sorted((HOSTILE / "services").glob("*.toml"))]
         + _special_files() + _cli_and_environment())


def test_corpus_is_large() -> None:
    assert len(CASES) >= 60, len(CASES)


# Cases the corpus found that are not fixed yet (issue 17): strict, so a fix makes them fail
# until they are taken off this list.
KNOWN_GAPS: dict[str, str] = {}


@pytest.mark.parametrize("case", [
    pytest.param(c, marks=pytest.mark.xfail(strict=True, reason=KNOWN_GAPS[c.name]))
    if c.name in KNOWN_GAPS else c for c in CASES], ids=[c.name for c in CASES])
def test_hostile_input(case: Case, tmp_path: Path, runtime_root: Path) -> None:
    # The runtime root is one the service user can reach (pytest's tmp_path is closed).
    work, runtime, disk = tmp_path / "work", runtime_root, tmp_path / "disk"
    work.mkdir()
    pids_file = tmp_path / "forked.pids"
    assert case.build is not None
    args = case.build(work)
    env = {**os.environ, "COLUMNS": "200", "SHAKEDOWN_RUNTIME_DIR": str(runtime),
           "SHAKEDOWN_DISK_DIR": str(disk), "HOSTILE_PIDS": str(pids_file), **case.env}
    env.pop("SHAKEDOWN_DEBUG", None)
    began = time.monotonic()
    done = subprocess.run([*CLI, *args], cwd=work, capture_output=True, text=True,
                          errors="replace", env=env, timeout=hang_bound(120), check=False)
    output = done.stdout + done.stderr
    try:
        assert done.returncode == case.exit_code, output[-3000:]
        assert "Traceback" not in output, output[-3000:]
        assert "unexpected " not in done.stderr, done.stderr[-3000:]
        assert done.stderr.startswith("error: "), done.stderr[:500]
        assert "fix:" in done.stderr, done.stderr[-3000:]
        for text in case.expect:
            assert text in done.stderr, f"{text!r} not in:\n{done.stderr[-3000:]}"
        for text in case.not_expect:
            assert text not in output, f"{text!r} in:\n{output[-3000:]}"
        assert len(done.stderr) < 20_000, "one message, not a flood"
    finally:
        _assert_nothing_left(work, runtime, disk, pids_file, time.monotonic() - began)


def _assert_nothing_left(work: Path, runtime: Path, disk: Path, pids_file: Path,
                         _elapsed: float) -> None:
    forked = [int(p) for p in pids_file.read_text().split()] if pids_file.exists() else []
    alive = [pid for pid in forked if pid_alive(pid) and _is_misbehaver(pid)]
    tagged = tagged_processes(root=runtime) if runtime.exists() else {}
    for pid in [*alive, *tagged]:  # leave nothing for the next case whatever the outcome
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 9)
    assert not alive, f"forked by the service and still running: {alive}"
    assert not tagged, f"tagged processes left: {tagged}"
    left = [p for p in runtime.glob("*") if p.name != "ports"] if runtime.exists() else []
    locks = list((runtime / "ports").glob("*")) if (runtime / "ports").exists() else []
    data = list(disk.glob("*")) if disk.exists() else []
    envs = list((work / ".shakedown" / "envs").glob("*")) \
        if (work / ".shakedown" / "envs").exists() else []
    volumes = list((work / ".shakedown" / "volumes").glob("*")) \
        if (work / ".shakedown" / "volumes").exists() else []
    for leftover in [*left, *data]:
        shutil.rmtree(leftover, ignore_errors=True)
    assert not (left or locks or data or envs or volumes), (left, locks, data, envs, volumes)


def _is_misbehaver(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"misbehave.py" in cmdline or cmdline.startswith(b"sleep\x00600")
