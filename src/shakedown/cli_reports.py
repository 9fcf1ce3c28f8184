"""The reporting commands of ``shakedown``: ``report`` (the HTML report of a stored run),
``history`` (trends of outcomes and measurements from .shakedown/history.db) and ``run``
(pytest, optionally repeated N times for pass rates). Registered on the main group by
``register(main)`` at the end of cli.py; imports only the reports layer."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ._cli_support import console, plain
from ._cli_support import friendly as _friendly
from .errors import ShakedownError
from .names import DEFAULT_STATE_DIR
from .store import RunPaths, StateStore

if TYPE_CHECKING:  # the commands import reports (bokeh...) when they run, not at startup

    from .reports import HistoryDB, Iteration, RepeatSummary

SYMBOLS = {"passed": "[green]✓[/]", "failed": "[red]✗[/]", "error": "[yellow]E[/]",
           "skipped": "[dim]s[/]", "xfailed": "[blue]x[/]", "xpassed": "[magenta]X[/]",
           "not run": "[magenta]-[/]"}


state_option = click.option("--state-dir", default=DEFAULT_STATE_DIR, show_default=True,
                            type=click.Path(file_okay=False, path_type=Path),
                            help="Where runs and history.db are kept.")


def register(main: click.Group) -> None:
    main.add_command(report)
    main.add_command(history)
    main.add_command(run_command)


# -- report ----------------------------------------------------------------------------------
@click.command()
@click.argument("run_dir", required=False, type=click.Path(file_okay=False, path_type=Path))
@state_option
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the HTML (default: RUN_DIR/report.html).")
@click.option("--threshold", default=25.0, show_default=True, metavar="PERCENT",
              help="Regression threshold against the median of recent comparable runs.")
@click.option("--runs", default=5, show_default=True, metavar="N",
              help="How many recent comparable runs the median is of.")
@click.option("--screenshot", type=click.Path(dir_okay=False, path_type=Path),
              help="Also render the report in headless Chromium and save a full-page PNG.")
@_friendly
def report(run_dir: Path | None, state_dir: Path, output: Path | None, threshold: float,
           runs: int, screenshot: Path | None) -> None:
    """Write the HTML report of a stored run (default: the latest under .shakedown/runs)."""
    from .reports import (
        HistoryDB,
        Policy,
        StoredRun,
        build_report,
        compare,
        default_history_db,
        latest_run,
    )

    run_dir = run_dir or latest_run(state_dir)
    run = StoredRun.load(run_dir)
    db = HistoryDB(default_history_db(run_dir))
    policy = Policy(runs=runs, threshold=threshold / 100)
    comparisons = compare(run, db, policy) if db.exists() else []
    target = output or RunPaths(run_dir).report_file
    target.write_text(build_report(run, db=db if db.exists() else None, policy=policy,
                                   comparisons=comparisons), encoding="utf-8")
    counts = run.counts()
    console.print(", ".join(f"{counts[k]} {k}" for k in counts
                            if counts[k] or k in ("passed", "failed", "error", "skipped")),
                  highlight=False)
    for comparison in comparisons:
        if comparison.regressed:
            console.print(f"[red]REGRESSION[/] {plain(comparison.describe())}", highlight=False)
    size = target.stat().st_size
    shown = f"{size / 1e6:.1f} MB" if size >= 1e6 else f"{size / 1e3:.0f} kB"
    console.print(f"report: {plain(target)} ({shown})", highlight=False)
    if screenshot is not None:
        from .reports._browser import DRAWN_CANVASES, visit

        page = visit(target, screenshot=screenshot,
                     checks={"timelines": f"({DRAWN_CANVASES})('body')"})
        problems = page.external_requests + page.console_errors + page.exceptions
        console.print(f"screenshot: {plain(screenshot)}" + (f" (problems: {plain(problems)})"
                                                      if problems else ""), highlight=False)


# -- history ---------------------------------------------------------------------------------
@click.command()
@click.argument("match", required=False)
@state_option
@click.option("--last", default=10, show_default=True, help="How many recent runs to show.")
@_friendly
def history(match: str | None, state_dir: Path, last: int) -> None:
    """Trends from .shakedown/history.db: outcomes (pass rate, flips) and measurements
    (recent values, median, min/max). MATCH filters tests and metrics by substring."""
    import statistics

    from rich.table import Table

    from .reports import HistoryDB
    from .reports import _format as fmt

    db = HistoryDB(StateStore(state_dir).history_db)
    if not db.exists():
        raise ShakedownError(f"no run history at {db.path}",
                             fix=["runs are recorded at the end of every pytest run whose "
                                  "tests use shakedown_env", "or pass --state-dir DIR"])
    if not match:
        _runs_table(db, last)
    tests = db.test_trends(match, last)
    if tests:
        table = Table("test", "recent outcomes", "pass rate", "flips", "median time",
                      title=f"tests (last {last} outcomes, oldest first: ✓ passed, ✗ failed, "
                      "E error, s skipped)", title_justify="left")
        table.columns[0].overflow = "fold"
        table.columns[1].no_wrap = True
        for trend in tests:
            flaky = " [bold red]FLAKY[/]" if trend.flaky else ""
            table.add_row(plain(trend.nodeid), "".join(SYMBOLS.get(o, "?") for o in trend.outcomes),
                          fmt.percent(trend.pass_rate), f"{trend.flips}{flaky}",
                          fmt.seconds(statistics.median(trend.durations)))
        console.print(table)
    metrics = db.metric_trends(match, last)
    if metrics:
        table = Table("test · metric", "topology", "recent values, oldest first", "median",
                      "min", "max", "trend", title="measurements", title_justify="left")
        for m in metrics:
            unit, scale = ("ms", 1000.0) if max(m.values) < 10 else ("s", 1.0)
            table.add_row(f"[dim]{plain(m.nodeid)}[/]\n{plain(m.metric)}", m.topology[:8] or "-",
                          " ".join(_num(v * scale) for v in m.values) + f" {unit}",
                          f"{_num(m.median * scale)} {unit}",
                          f"{_num(min(m.values) * scale)} {unit}",
                          f"{_num(max(m.values) * scale)} {unit}", fmt.sparkline(m.values))
        console.print(table)
    rates = db.repeat_pass_rates(match, last)
    if rates:
        table = Table("test", "pass rate per repeat (oldest first)", "flaky in",
                      title="repeated runs (shakedown run --repeat)", title_justify="left")
        for nodeid, rows in rates.items():
            table.add_row(plain(nodeid), ", ".join(fmt.percent(r) for _, r, _ in rows),
                          f"{sum(1 for *_, f in rows if f)} of {len(rows)}")
        console.print(table)
    if not (tests or metrics or rates):
        console.print(f"nothing recorded matches {plain(repr(match))}" if match
                      else "no runs recorded")


def _runs_table(db: HistoryDB, last: int) -> None:
    from rich.table import Table

    from .reports import _format as fmt

    runs = db.recent_runs(last)
    table = Table("run", "started", "commit", "passed", "failed", "error", "skipped",
                  title="runs", title_justify="left")
    table.columns[0].no_wrap = table.columns[1].no_wrap = True
    for row in runs:
        counts = row.counts
        table.add_row(plain(row.run_id), fmt.when(row.started)[5:], (row.git_commit or "-")[:10],
                      str(counts.get("passed", 0)), _red(counts.get("failed", 0)),
                      _red(counts.get("error", 0)), str(counts.get("skipped", 0)))
    console.print(table)


def _num(value: float) -> str:
    return f"{value:.3g}" if value < 1000 else f"{value:.0f}"


def _red(count: int) -> str:
    return f"[red]{count}[/]" if count else "0"


# -- run -------------------------------------------------------------------------------------
@click.command("run", context_settings={"ignore_unknown_options": True})
@click.option("--repeat", default=1, show_default=True, metavar="N",
              help="Run the suite N times (each a new pytest process) and report pass rates.")
@click.option("--target", default=95.0, show_default=True, metavar="PERCENT",
              help="With --repeat: the success rate the suite must reach.")
@click.option("--stream", is_flag=True,
              help="With --repeat: show pytest's output instead of keeping it in log files.")
@state_option
@click.argument("pytest_args", nargs=-1, type=click.UNPROCESSED)
@_friendly
def run_command(repeat: int, target: float, stream: bool, state_dir: Path,
                pytest_args: tuple[str, ...]) -> None:
    """Run pytest with PYTEST_ARGS (after --). With --repeat N: N times, then the pass rate
    of every test, the tests that flipped, and the success rate against --target; the exit
    status is non-zero when the target is missed."""
    import subprocess

    from .reports import HistoryDB, git_commit, new_repeat_id, run_repeated

    if repeat < 1:
        raise click.BadParameter("must be at least 1", param_hint="--repeat")
    if repeat == 1:
        sys.exit(subprocess.run([sys.executable, "-m", "pytest", *pytest_args],
                                check=False).returncode)
    repeat_id = new_repeat_id()
    directory = state_dir / "repeats" / repeat_id
    console.print(f"running pytest {plain(' '.join(pytest_args))} {repeat} times "
                  f"(output in {plain(directory)})", highlight=False)
    started = time.time()
    summary = run_repeated(list(pytest_args), repeat, directory, target=target / 100,
                           on_iteration=_print_iteration, stream=stream)
    _print_summary(summary)
    rows = [(t.nodeid, t.passed, t.failed + t.not_run, t.skipped, t.pass_rate, t.flaky)
            for t in summary.tests]
    HistoryDB(StateStore(state_dir).history_db).record_repeat(
        repeat_id, started, time.time(), git_commit=git_commit(Path.cwd()), iterations=repeat,
        success_rate=summary.success_rate, target=summary.target, args=pytest_args,
        tests=rows)
    console.print(f"summary: {plain(directory / 'summary.json')}", highlight=False)
    if not summary.met:
        sys.exit(1)


def _print_iteration(iteration: Iteration) -> None:
    counts: dict[str, int] = {}
    for outcome in iteration.outcomes.values():
        counts[outcome] = counts.get(outcome, 0) + 1
    text = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "[red]no results[/]"
    colour = "green" if iteration.exit_code == 0 else "red"
    log = f"  log: {plain(iteration.log)}" if iteration.exit_code != 0 and iteration.log else ""
    console.print(f"  run {iteration.number}: [{colour}]exit {iteration.exit_code}[/] "
                  f"{text} in {iteration.duration:.1f}s{log}", highlight=False)


def _print_summary(summary: RepeatSummary) -> None:
    from rich.table import Table

    from .reports import _format as fmt

    table = Table("test", "outcomes", "passed", "failed", "not run", "skipped", "pass rate",
                  title="pass rate per test", title_justify="left")
    for test in summary.tests:
        rate = fmt.percent(test.pass_rate) if test.pass_rate is not None else "skipped"
        if test.flaky:
            rate += " [bold red]FLAKY[/]"
        table.add_row(plain(test.nodeid), "".join(SYMBOLS.get(o, "?") for o in test.outcomes),
                      str(test.passed), _red(test.failed), _red(test.not_run),
                      str(test.skipped), rate)
    console.print(table)
    verdict = "[green]met[/]" if summary.met else "[bold red]MISSED[/]"
    console.print(
        f"success rate {fmt.percent(summary.success_rate)} "
        f"({sum(t.passed for t in summary.tests)} of "
        f"{summary.executions} test runs passed; skips not counted), target "
        f"{summary.target * 100:.0f}%: {verdict}; {summary.clean_iterations} of "
        f"{len(summary.iterations)} pytest runs exited 0; "
        f"{len(summary.flaky)} flaky test(s)", highlight=False)
