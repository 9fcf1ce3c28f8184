"""The sharding commands of ``shakedown`` (issue 21): ``merge`` joins the run directories of
``pytest --shakedown-shard K/N`` jobs into one run with one report and one history entry, and
``durations`` exports recorded durations in pytest-split's file format (plus shakedown's
environment start/stop keys) for CI to cache and the shards to plan with. Registered on the
main group by ``register(main)`` at the end of cli.py."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ._cli_support import console
from ._cli_support import friendly as _friendly
from .errors import ShakedownError
from .names import DEFAULT_STATE_DIR
from .store import Results, StateStore


def register(main: click.Group) -> None:
    main.add_command(merge)
    main.add_command(durations)


state_option = click.option("--state-dir", default=DEFAULT_STATE_DIR, show_default=True,
                            type=click.Path(file_okay=False, path_type=Path),
                            help="Where the merged run and history.db are kept.")


@click.command()
@click.argument("run_dirs", nargs=-1, type=click.Path(path_type=Path))
@state_option
@_friendly
def merge(run_dirs: tuple[Path, ...], state_dir: Path) -> None:
    """Join the shards' RUN_DIRS (each a .shakedown/runs/RUN_ID of one
    `pytest --shakedown-shard K/N` job) into one run: results.json with every test once and
    its shard, the histories and logs, one history.db entry and one HTML report."""
    from .reports._merge import merge_runs

    target = merge_runs(list(run_dirs), state_dir)
    results = Results.read(target)
    counts = results.counts()
    shards = ", ".join(f"{s['label']} ({s['tests']} tests)" for s in results.shard["merged"])
    console.print(f"merged {len(results.shard['merged'])} runs: {shards}", highlight=False)
    console.print(", ".join(f"{n} {k}" for k, n in counts.items()
                            if n or k in ("passed", "failed", "error", "skipped")),
                  highlight=False)
    console.print(f"run: {target.dir}", highlight=False)
    console.print(f"report: {target.report_file}", highlight=False)
    if counts["failed"] or counts["error"]:
        raise SystemExit(1)


@click.command()
@state_option
@click.option("--last", default=5, show_default=True,
              help="Medians of the last N recorded runs.")
@_friendly
def durations(state_dir: Path, last: int) -> None:
    """Print recorded durations as JSON (pytest-split's .test_durations format: test id ->
    its own seconds, plus shakedown-env::TOPOLOGY -> its start + stop seconds), for
    `pytest --shakedown-durations FILE`."""
    from .reports import HistoryDB

    db = HistoryDB(StateStore(state_dir).history_db)
    recorded = db.durations(last) if db.exists() else None
    if recorded is None or not recorded.tests:
        raise ShakedownError(
            f"no recorded durations in {db.path}",
            checked=[f"tests of the last {last} runs in {db.path}"],
            fix=["run the suite once (unsharded, or sharded and merged with shakedown merge)",
                 "or pass --state-dir DIR"])
    click.echo(json.dumps(recorded.file_format(), indent=1))
