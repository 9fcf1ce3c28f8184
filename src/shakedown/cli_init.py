"""``shakedown init``: a starter project for chosen kinds — a ``shakedown.toml`` with one
service per kind (and the kinds they need) and a test file that fails unless every service
answers, runnable at once with ``pytest``. What each kind contributes is its spec's
``starter``; this module only orders, renders and writes them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ._cli_support import BadOption, console, friendly, plain
from .errors import ShakedownError
from .names import DEFAULT_FILE

if TYPE_CHECKING:
    from .topology import Starter

TEST_FILE = "test_shakedown.py"
DEFAULT_KINDS = ("postgres",)


def starters() -> dict[str, Starter]:
    """Every kind that offers a starter, by kind name."""
    from .topology import KINDS

    return {kind: spec.starter for kind, spec in sorted(KINDS.items()) if spec.starter}


def chosen(kinds: Sequence[str]) -> dict[str, Starter]:
    """``kinds`` with the kinds they need put before them, each once, in a stable order."""
    offered = starters()
    unknown = [kind for kind in kinds if kind not in offered]
    if unknown:
        raise BadOption(f"init: no starter for kind {', '.join(map(repr, unknown))}",
                        checked=[f"kinds with a starter: {', '.join(offered)}"],
                        fix=["pick kinds from that list, e.g. `shakedown init postgres redis`"])
    ordered: dict[str, Starter] = {}

    def add(kind: str) -> None:
        for needed in offered[kind].needs:
            add(needed)
        ordered.setdefault(kind, offered[kind])

    for kind in kinds or DEFAULT_KINDS:
        add(kind)
    return ordered


def render_topology(kinds: dict[str, Starter]) -> str:
    lines = ["# shakedown.toml: written by `shakedown init`; the README's topology reference",
             "# lists every key of every kind."]
    for kind, starter in kinds.items():
        lines += ["", f"[services.{starter.name}]", f'kind = "{kind}"']
        lines += [line for line in starter.keys.splitlines() if line]
    return "\n".join(lines) + "\n"


def render_test(kinds: dict[str, Starter]) -> str:
    imports = sorted({module for starter in kinds.values() for module in starter.imports})
    lines = ['"""Starter tests written by `shakedown init`: each fails unless its service',
             'answers. Run them with `pytest` in this directory."""', ""]
    lines += [f"import {module}" for module in imports]
    for starter in kinds.values():
        check = starter.check.replace("{name}", starter.name)
        lines += ["", "", f"def test_{starter.name}_answers(shakedown_env):"]
        lines += [f"    {line}" for line in check.splitlines()]
    return "\n".join(lines) + "\n"


def write_project(directory: Path, kinds: Sequence[str], force: bool) -> list[Path]:
    """Write the starter files into ``directory`` (made if missing); refuse to replace a file
    unless ``force``. Nothing is written when any check fails."""
    picked = chosen(kinds)
    files = {directory / DEFAULT_FILE: render_topology(picked),
             directory / TEST_FILE: render_test(picked)}
    if directory.exists() and not directory.is_dir():
        raise ShakedownError(f"init: {directory} is not a directory",
                             checked=[f"{directory} exists and is a file"],
                             fix=["pass a directory: shakedown init --dir DIR KIND..."])
    present = [path for path in files if path.exists()]
    if present and not force:
        raise ShakedownError(
            f"init: {', '.join(str(p) for p in present)} already exist(s)",
            checked=[f"{path}: exists" for path in present],
            fix=["keep them, or pass --force to replace them", "or pick another --dir"])
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for path, text in files.items():
            path.write_text(text)
    except OSError as exc:
        raise ShakedownError(f"init: cannot write into {directory} ({exc.strerror})",
                             checked=[f"mkdir -p {directory}", "write the starter files"],
                             fix=["pick a directory you can write to with --dir"]) from exc
    return list(files)


def register(main: click.Group) -> None:
    @main.command()
    @click.argument("kinds", nargs=-1)
    @click.option("--dir", "directory", type=click.Path(path_type=Path), default=Path("."),
                  show_default=True, help="Where to write the starter files.")
    @click.option("--force", is_flag=True, help="Replace starter files that already exist.")
    @friendly
    def init(kinds: tuple[str, ...], directory: Path, force: bool) -> None:
        """Write a starter shakedown.toml and test file for KINDS (default: postgres)."""
        written = write_project(directory, kinds, force)
        for path in written:
            console.print(f"wrote {plain(path)}", highlight=False)
        console.print(f"next: cd {plain(directory)} && pytest  (or: shakedown up)",
                      highlight=False)
