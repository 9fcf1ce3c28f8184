"""``shakedown reap``: which environments it may stop, and the listing shown before it stops them.

Scopes, widest last, each needing the one before:

- default: environments whose owner (the process that ran ``up`` or the test run) died, and
  tagged processes that belong to no record, of the invoking user;
- ``--all``: also the invoking user's *detached* environments of the current project (those
  whose state directory is this project's ``.shakedown``, from ``-f FILE`` or the current
  directory) - never another project's, which may be in the middle of its run;
- ``--everyone`` (root only): the same scopes for every user's environments.

The owner of an environment is the owner of its record file (``RUNTIME_ROOT/ENV_ID/env.json``,
written by the process that started it); the owner of a stray process is its real user."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ._cli_support import BadOption, console, friendly

if TYPE_CHECKING:
    from .process import EnvRecord


@dataclass(frozen=True)
class Candidate:
    """One environment the reaper looked at, and whether this scope takes it."""

    name: str
    env_id: str
    uid: int
    state_dir: str
    reason: str
    """Why it is reaped ('owner died', 'detached', 'no record'), or why it is left alone."""
    take: bool
    record: EnvRecord | None = None
    pids: tuple[int, ...] = ()


@dataclass(frozen=True)
class Scope:
    project: Path
    """This project's state directory (resolved)."""
    include_detached: bool
    everyone: bool

    def judge(self, record: EnvRecord, uid: int) -> tuple[bool, str]:
        if uid != os.getuid() and not self.everyone:
            return False, f"owned by {_user(uid)} (root may pass --everyone)"
        if not record.detached:
            return (False, "owner alive") if record.owner_alive() else (True, "owner died")
        if not self.include_detached:
            return False, "detached (reap --all, from its project)"
        if not _inside(Path(record.state_dir), self.project):
            return False, "detached, another project's"
        return True, "detached, this project's"


def _inside(path: Path, root: Path) -> bool:
    try:
        return path.resolve().is_relative_to(root)
    except OSError:
        return False


def _user(uid: int) -> str:
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def candidates(root: Path, scope: Scope) -> list[Candidate]:
    """Every environment recorded under ``root`` and every stray tag, judged by ``scope``."""
    from .process import all_records, strays

    found = []
    known = set()
    for path, record in all_records(root):
        known.add(record.env_id)
        uid = _owner_uid(path)
        take, reason = scope.judge(record, uid)
        found.append(Candidate(name=record.name, env_id=record.env_id, uid=uid,
                               state_dir=record.state_dir, reason=reason, take=take,
                               record=record))
    for tag, pids in strays(root, known).items():
        uids = {_process_uid(pid) for pid in pids}
        mine = uids <= {os.getuid()}
        take = mine or scope.everyone
        found.append(Candidate(name="(no record)", env_id=tag, uid=min(uids), state_dir="-",
                               reason="no record" if take else
                               f"no record, owned by {_user(min(uids))}",
                               take=take, pids=tuple(pids)))
    return found


def _owner_uid(path: Path) -> int:
    try:
        return path.stat().st_uid
    except OSError:
        return -1


def _process_uid(pid: int) -> int:
    import psutil

    try:
        return int(psutil.Process(pid).uids().real)
    except psutil.Error:  # gone meanwhile: counts as nobody's
        return -1


def show(found: list[Candidate], dry_run: bool) -> None:
    from rich.markup import escape
    from rich.table import Table

    chosen = [c for c in found if c.take]
    verb = "would reap" if dry_run else "reaping"
    table = Table("", "environment", "id", "user", "state directory", "why", box=None,
                  title=f"{verb} {len(chosen)} of {len(found)} environments")
    for c in found:
        table.add_row("[red]reap[/]" if c.take else "[dim]leave[/]", escape(c.name),
                      c.env_id, escape(_user(c.uid)), escape(c.state_dir), escape(c.reason))
    console.print(table)


def reap_chosen(found: list[Candidate], root: Path) -> None:
    from .process import ReapReport, reap_env, reap_stray

    report = ReapReport()
    for c in found:
        if not c.take:
            continue
        if c.record is not None:
            reap_env(c.record, root, report)
        else:
            reap_stray(c.env_id, root, report)
    for env_name in report.environments:
        console.print(f"reaped {env_name}", highlight=False)
    console.print(f"killed {len(report.killed)} processes, removed {len(report.removed)} "
                  "directories")


def register(main: click.Group) -> None:
    """Add ``reap`` to the ``shakedown`` command (replacing one registered before)."""
    from .cli import _state_root, file_option

    @main.command("reap")
    @file_option
    @click.option("--all", "include_detached", is_flag=True,
                  help="Also this project's detached environments (yours only).")
    @click.option("--everyone", is_flag=True,
                  help="Root only: other users' environments too, in the same scopes.")
    @click.option("--dry-run", is_flag=True, help="List what would be reaped; stop nothing.")
    @friendly
    def reap_command(files: tuple[str, ...], include_detached: bool, everyone: bool,
                     dry_run: bool) -> None:
        """Stop processes and remove data of environments whose owner died (--all: also
        this project's detached ones). Lists what it stops first."""
        from .process import runtime_root

        if everyone and os.geteuid() != 0:
            raise BadOption("--everyone is for root only",
                            checked=[f"you are {_user(os.geteuid())}"],
                            fix=["leave it out to reap your own environments",
                                 "or run it as root: sudo shakedown reap --everyone"])
        root = runtime_root()
        scope = Scope(project=_state_root(files).resolve(), include_detached=include_detached,
                      everyone=everyone)
        found = candidates(root, scope)
        if not any(c.take for c in found):
            console.print("nothing to reap" + (f" ({len(found)} left alone: `--dry-run` "
                                               "lists them)" if found and not dry_run else ""))
            if found and dry_run:
                show(found, dry_run)
            return
        show(found, dry_run)
        if not dry_run:
            reap_chosen(found, root)
