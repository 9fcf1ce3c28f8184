"""The ``shakedown`` command: bring environments up and down, show their status, logs and
URLs, check the machine (doctor) and reap leftovers. Every error is a ``ShakedownError``
printed as what failed / what was checked / how to fix it, with a non-zero exit, never a
traceback."""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from . import __version__
from ._cli_support import BadOption, console, plain, real_console
from ._cli_support import friendly as _friendly
from .errors import ShakedownError, UsageError
from .names import DEFAULT_FILE, DEFAULT_STATE_DIR
from .store import RunPaths

if TYPE_CHECKING:
    from rich.live import Live
    from rich.table import Table

    from .environment import Environment

# Commands import what they use inside their bodies: ``--help``, ``--version`` and the commands
# that only read a running environment (status, env, logs) must not pay for the services,
# pydantic, psycopg or bokeh (bench/cli.py measures them beside ``python -c pass``).


def _state_root(files: Sequence[str]) -> Path:
    base = Path(files[0]).resolve().parent if files else Path.cwd()
    return base / DEFAULT_STATE_DIR


file_option = click.option("-f", "--file", "files", multiple=True, metavar="FILE",
                           help=f"Topology file; repeat for overlays. Default: {DEFAULT_FILE}")
name_option = click.option("--name", default="default", show_default=True,
                           help="Environment name.")


class _LazyGroup(click.Group):
    """Commands that live in modules of their own (``register(group)`` each), imported when a
    command of theirs is asked for: ``status`` or ``logs`` do not pay for ``report`` or ``env``.
    """

    LAZY = {"report": "cli_reports", "history": "cli_reports", "run": "cli_reports",
            "merge": "cli_shard", "durations": "cli_shard", "env": "cli_env",
            "reap": "cli_reap", "init": "cli_init"}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.LAZY})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.LAZY and cmd_name not in self.commands:
            import importlib

            importlib.import_module(f"{__package__}.{self.LAZY[cmd_name]}").register(self)
        return super().get_command(ctx, cmd_name)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(version=__version__, prog_name="shakedown")
def main() -> None:
    """Real infrastructure for integration tests, on one machine, in seconds, with faults."""


@main.command()
@file_option
@name_option
@click.option("--detach", is_flag=True, help="Return once ready; the environment lives until "
              "`shakedown down`. Without it, up stays in the foreground until Ctrl-C.")
@_friendly
def up(files: tuple[str, ...], name: str, detach: bool) -> None:
    """Start every service of the topology and wait until each is ready."""
    from rich.live import Live

    from .environment import Environment

    paths = list(files) or [DEFAULT_FILE]
    progress = _Progress()
    env = Environment.from_file(paths, name, detach=detach, state_root=_state_root(paths),
                                observer=progress.update)
    for service, spec in env.topology.services.items():
        progress.add(service, spec.kind)
    began = time.monotonic()
    with Live(progress.table(), console=real_console(), refresh_per_second=12,
              transient=False) as live:
        progress.live = live
        env.up()
        progress.refresh()
    console.print()
    console.print(f"[green]ready[/] in {time.monotonic() - began:.2f}s: environment "
                  f"[bold]{name}[/] ({env.env_id})")
    _print_urls(env)
    _warn_clashes(env)
    if detach:
        console.print(f"take it down with: shakedown down --name {name}")
        return
    _wait_for_interrupt(env)


def _wait_for_interrupt(env: Environment) -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())
    console.print("Press Ctrl-C to stop.")  # only once a signal would be handled
    stop.wait()
    console.print("stopping...")
    env.down()
    console.print("[green]down[/]")


class _Progress:
    """A live table: each service starting → ready with its time."""

    def __init__(self) -> None:
        self.rows: dict[str, list[str]] = {}
        self.live: Live | None = None
        self._lock = threading.Lock()

    def add(self, service: str, kind: str) -> None:
        self.rows[service] = [service, kind, "waiting", ""]

    def update(self, service: str, event: str, seconds: float | None) -> None:
        colour = {"ready": "green", "failed": "red", "starting": "yellow"}.get(event, "white")
        with self._lock:
            row = self.rows.setdefault(service, [service, "", "", ""])
            row[2] = f"[{colour}]{event}[/]"
            row[3] = f"{seconds * 1000:.0f} ms" if seconds is not None else ""
        self.refresh()

    def refresh(self) -> None:
        if self.live is not None:
            self.live.update(self.table())

    def table(self) -> Table:
        from rich.table import Table

        table = Table("service", "kind", "state", "time", box=None)
        with self._lock:
            for row in self.rows.values():
                table.add_row(*row)
        return table


def _print_urls(env: Environment) -> None:
    for service in env.services.values():
        console.print(f"  {service.name:<12} {plain(service.url)}", highlight=False)


def _warn_clashes(env: Environment) -> None:
    """The names `shakedown env` will export that a known tool reads (cli_env's list)."""
    from .cli_env import clash_warnings, warn

    warn(clash_warnings("", {name: s.exports() for name, s in env.services.items()}))


@main.command()
@file_option
@name_option
@click.option("--keep", is_flag=True, help="Keep data and logs (removed at the next up).")
@_friendly
def down(files: tuple[str, ...], name: str, keep: bool) -> None:
    """Stop every service of the environment and remove its data."""
    from .environment import Environment

    env = Environment.attach(name, _state_root(files))
    env.down(keep=keep)
    console.print(f"[green]down[/]: environment {name}" + (" (data and logs kept)" if keep else ""))


@main.command()
@file_option
@name_option
@click.option("--json", "as_json", is_flag=True,
              help="Machine-readable: env's data (unmasked) with state, pids, uptime.")
@click.option("--wide", is_flag=True, help="One line per service, never wrapped.")
@_friendly
def status(files: tuple[str, ...], name: str, as_json: bool, wide: bool) -> None:
    """Show each service: kind, state, pids, URL (password masked), uptime."""
    from .cli_state import EnvironmentView, uptime

    env = EnvironmentView.load(name, _state_root(files))
    if as_json:
        import json

        from .cli_env import status_data

        click.echo(json.dumps(status_data(env, _state_root(files)), indent=2))
        return
    from rich.table import Table

    table = Table("service", "kind", "state", "pid", "url", "uptime", "restarts",
                  title=f"{name} ({env.env_id})")
    table.columns[4].overflow = "fold"  # whole URLs, wrapped, never cut with an ellipsis
    for service in env.services.values():
        pids = service.pids
        restarts = service.restarts()
        table.add_row(plain(service.name), service.kind, service.status(),
                      ",".join(map(str, pids)) or "-", plain(service.url),
                      uptime(pids[0]) if pids else "-",
                      "-" if restarts is None else str(restarts))
    if wide:
        real_console().width = max(real_console().width, 1000)  # URLs whole, never folded
    console.print(table)


@main.command()
@click.argument("service")
@file_option
@name_option
@click.option("--follow", "-F", is_flag=True, help="Keep printing new lines.")
@click.option("--lines", "-n", default=50, show_default=True, help="Lines to show.")
@_friendly
def logs(service: str, files: tuple[str, ...], name: str, follow: bool, lines: int) -> None:
    """Print a service's log."""
    from .cli_state import EnvironmentView

    path = EnvironmentView.load(name, _state_root(files)).log_of(service)
    click.echo(_tail(path, lines))
    if follow:
        _follow(path)


def _tail(path: Path, lines: int) -> str:
    """The last ``lines`` lines of a log (the end of the file only is read)."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, 2)
            handle.seek(max(0, handle.tell() - 256 * 1024))
            text = handle.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _follow(path: Path) -> None:
    with path.open("r", errors="replace") as handle:
        handle.seek(0, 2)
        try:
            while True:
                line = handle.readline()
                if line:
                    click.echo(line, nl=False)
                else:
                    time.sleep(0.2)
        except KeyboardInterrupt:
            return


@main.group()
def fault() -> None:
    """Inject faults into a running environment (and heal them)."""


def _faults_of(files: tuple[str, ...], name: str) -> tuple[Environment, Any]:
    from .environment import Environment

    env = Environment.attach(name, _state_root(files))
    return env, env.faults


def _fault_command(func: Callable[..., None]) -> Callable[..., None]:
    return fault.command(name=func.__name__.rstrip("_").replace("_", "-"))(
        file_option(name_option(_friendly(func))))


def _process_fault(action: str, done: str, doc: str) -> Callable[..., None]:
    """kill / pause / resume: a service, or one of its processes (``--process``)."""

    def command(service: str, process: str | None, files: tuple[str, ...], name: str) -> None:
        _, faults = _faults_of(files, name)
        getattr(faults, action)(service, process)
        console.print(f"{done} {service}" + (f" ({process})" if process else ""))

    command.__name__ = action
    command.__doc__ = doc
    return command


for _action, _done, _doc in (
    ("kill", "killed", "SIGKILL a service's processes and their children."),
    ("pause", "paused", "SIGSTOP a service: its clients hang until resume."),
    ("resume", "resumed", "SIGCONT a paused service."),
):
    _fault_command(click.argument("service")(click.option(
        "--process", help="Only this process of the service (see `shakedown status`).")(
        _process_fault(_action, _done, _doc))))


def _lifecycle(action: str) -> Callable[..., None]:
    def command(service: str, files: tuple[str, ...], name: str) -> None:
        env, faults = _faults_of(files, name)
        getattr(faults, action)(service)
        console.print(f"{action}: {service} ({env[service].status()})")

    command.__name__ = action + "_"
    command.__doc__ = {"stop": "Stop a service gracefully, keeping its port and data.",
                       "start": "Start a stopped or killed service and wait until ready.",
                       "restart": "Stop and start a service; same port, same data."}[action]
    return command


for _action in ("stop", "start", "restart"):
    _fault_command(click.argument("service")(_lifecycle(_action)))


@_fault_command
@click.argument("link")
@click.argument("delay")
@click.option("--jitter", default="0ms", help="e.g. 50ms")
@click.option("--direction", type=click.Choice(["downstream", "upstream", "both"]),
              default="downstream", show_default=True)
def latency(link: str, delay: str, jitter: str, direction: str, files: tuple[str, ...],
            name: str) -> None:
    """Delay data on a link, e.g. `shakedown fault latency api-db 200ms`."""
    _, faults = _faults_of(files, name)
    faults.latency(link, ms=_ms(delay), jitter=_ms(jitter), direction=direction)
    console.print(f"latency {delay} on {link} ({direction})")


@_fault_command
@click.argument("link")
@click.argument("kbps", type=float)
@click.option("--direction", type=click.Choice(["downstream", "upstream", "both"]),
              default="downstream", show_default=True)
def bandwidth(link: str, kbps: float, direction: str, files: tuple[str, ...], name: str) -> None:
    """Limit a link to KBPS kilobytes per second."""
    _, faults = _faults_of(files, name)
    faults.bandwidth(link, kbps, direction=direction)
    console.print(f"bandwidth {kbps:g} KB/s on {link} ({direction})")


@_fault_command
@click.argument("link")
def down_(link: str, files: tuple[str, ...], name: str) -> None:
    """Refuse new connections on a link and drop open ones."""
    _, faults = _faults_of(files, name)
    faults.down(link)
    console.print(f"link {link} is down")


@_fault_command
@click.argument("link")
@click.argument("after", default="0ms")
def reset_peer(link: str, after: str, files: tuple[str, ...], name: str) -> None:
    """Reset connections on a link (after AFTER, default at once)."""
    _, faults = _faults_of(files, name)
    faults.reset_peer(link, _ms(after))
    console.print(f"reset_peer on {link}")


@_fault_command
@click.argument("group_a")
@click.argument("group_b")
def partition(group_a: str, group_b: str, files: tuple[str, ...], name: str) -> None:
    """Cut every link between two groups (comma-separated service names), both ways."""
    _, faults = _faults_of(files, name)
    cut = faults.partition(group_a.split(","), group_b.split(","))
    parts = [f"links {', '.join(cut.params['links'])}"] if cut.params["links"] else []
    if cut.params.get("kernel"):
        parts.append(f"kernel {', '.join(cut.params['kernel'])}")
    console.print(plain(f"partitioned {group_a} | {group_b}: {'; '.join(parts)}"),
                  highlight=False)


@_fault_command
@click.argument("service")
def isolate(service: str, files: tuple[str, ...], name: str) -> None:
    """Cut every link to and from a service."""
    _, faults = _faults_of(files, name)
    faults.isolate(service)
    console.print(f"isolated {service}")


@_fault_command
@click.argument("service")
@click.argument("size")
def memory_limit(service: str, size: str, files: tuple[str, ...], name: str) -> None:
    """Cap a service's memory (cgroup), e.g. `shakedown fault memory-limit api 64M`."""
    _, faults = _faults_of(files, name)
    faults.memory_limit(service, _bytes(size))
    console.print(f"memory limit {plain(size)} on {service}", highlight=False)


@_fault_command
@click.argument("service")
@click.argument("fraction", type=click.FloatRange(min=0.001, max=64))
def cpu_limit(service: str, fraction: float, files: tuple[str, ...], name: str) -> None:
    """Throttle a service to FRACTION of one core, e.g. 0.1."""
    _, faults = _faults_of(files, name)
    faults.cpu_limit(service, fraction)
    console.print(f"cpu limit {fraction:g} core on {service}", highlight=False)


@_fault_command
@click.argument("service")
@click.argument("count", type=click.IntRange(min=1))
def pids_limit(service: str, count: int, files: tuple[str, ...], name: str) -> None:
    """Allow a service at most COUNT processes and threads."""
    _, faults = _faults_of(files, name)
    faults.pids_limit(service, count)
    console.print(f"pids limit {count} on {service}", highlight=False)


@_fault_command
@click.argument("service")
def disk_full(service: str, files: tuple[str, ...], name: str) -> None:
    """Fill a service's data directory: writes fail with ENOSPC until heal."""
    _, faults = _faults_of(files, name)
    faults.disk_full(service)
    console.print(f"disk full for {service}", highlight=False)


@_fault_command
@click.argument("service")
@click.argument("offset")
@click.option("--rate", type=click.FloatRange(min=0.001, max=1000), default=None,
              help="Clock speed, e.g. 1.01 for 1% fast.")
def clock(service: str, offset: str, rate: float | None, files: tuple[str, ...],
          name: str) -> None:
    """Move a service's wall clock by OFFSET (e.g. 1h, -30s) and restart it with the skew."""
    _, faults = _faults_of(files, name)
    negative = offset.startswith("-")
    seconds = _ms(offset.removeprefix("-")) / 1000
    faults.clock(service, -seconds if negative else seconds, rate=rate)
    console.print(f"clock of {service} moved {plain(offset)}"
                  + (f" running at {rate:g}x" if rate else ""), highlight=False)


@_fault_command
def heal(files: tuple[str, ...], name: str) -> None:
    """Remove every toxic, resume paused services, start stopped and killed ones."""
    _, faults = _faults_of(files, name)
    faults.heal()
    console.print("healed")


@_fault_command
def list_(files: tuple[str, ...], name: str) -> None:
    """What is wrong right now: toxics on links, paused or stopped services."""
    _, faults = _faults_of(files, name)
    lines = faults.current()
    for line in lines:
        console.print(plain(line), highlight=False)
    if not lines:
        console.print("no faults")


_SIZE_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30}


def _bytes(text: str) -> int:
    """``64M``, ``512K``, ``1G`` or a number of bytes."""
    number, unit = text.strip().upper().removesuffix("B").removesuffix("I"), ""
    if number[-1:] in _SIZE_UNITS:
        number, unit = number[:-1], number[-1]
    try:
        value = int(float(number) * _SIZE_UNITS[unit])
    except ValueError:
        value = 0
    if value < 4096:
        raise BadOption(f"{text!r} is not a memory size of at least 4K",
                        checked=["a number with K, M or G (powers of 1024), or bytes"],
                        fix=["write it like 64M or 512K"])
    return value


def _ms(text: str) -> float:
    from .topology import parse_duration

    try:
        return parse_duration(text) * 1000
    except ValueError as exc:
        raise ShakedownError(str(exc), fix=["write a duration such as 200ms or 1.5s"]) from None


@main.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=True, path_type=Path))
@click.option("--lag-bound", default=None, help="Bound for replication lag samples, e.g. 5s.")
@click.option("--isolation-model", default=None,
              type=click.Choice(["read-committed", "snapshot-isolation", "repeatable-read",
                                 "serializable", "strict-serializable"]),
              help="Model transactions are checked against (default: as recorded, else "
                   "serializable).")
@_friendly
def check(run_dir: Path, lag_bound: str | None, isolation_model: str | None) -> None:
    """Re-run the checkers on a stored run's histories (a run directory or one .jsonl)."""
    from rich.markup import escape

    from .checkers import check_history, split_by_test
    from .history import History
    from .store import CheckRecord, write_checks

    run = RunPaths(run_dir)
    paths = [run_dir] if run_dir.is_file() else run.history_files()
    if not paths:
        raise ShakedownError(f"no history in {run_dir}",
                             checked=[f"{run.histories_dir}/*.jsonl"],
                             fix=["pass a run directory: .shakedown/runs/RUN_ID"])
    bound = _ms(lag_bound) / 1000 if lag_bound else None
    from rich.table import Table

    table = Table("history", "test", "checker", "result", "explanation")
    worst = 0
    records: list[CheckRecord] = []
    for path in paths:
        checked = 0
        try:
            history = History.load(path)
        except (ValueError, OSError) as exc:
            if run_dir.is_file():
                raise UsageError(f"{path.name} is not a history: {exc}",
                                 checked=[f"{path}: each line one JSON operation"],
                                 fix=["pass a history a run wrote: .shakedown/runs/RUN_ID/"
                                      "histories/NAME.jsonl, or the run directory"]) from None
            table.add_row(plain(path.name), "-", "-", "[red]unreadable[/]", plain(exc))
            worst = 2  # a history that cannot be read proves nothing: never a pass
            continue
        for test, segment in split_by_test(history).items():
            found = check_history(segment, lag_bound_s=bound, isolation_model=isolation_model)
            for name, result in found.items():
                records.append(CheckRecord(path.stem, test, name, result.to_dict()))
                colour = {"valid": "green", "invalid": "red"}.get(result.validity, "yellow")
                table.add_row(plain(path.name), plain(test or "-"), name,
                              f"[{colour}]{result.validity}[/]", plain(result.explanation))
                worst = max(worst, {"valid": 0, "unknown": 0, "invalid": 1}[result.validity])
                checked += 1
        if not checked:
            table.add_row(plain(path.name), "-", "-", "no checker applies", "")
    console.print(table)
    if run_dir.is_dir():  # kept for the report (`shakedown report RUN_DIR` shows them)
        console.print(f"checks: {escape(str(write_checks(run, records)))}")
    sys.exit(worst)


@main.command()
@_friendly
def doctor() -> None:
    """Check which server binaries are installed, their versions, and how to install the rest."""
    from rich.table import Table

    from .doctor import run_checks

    table = Table("component", "status", "detail")
    missing: list[str] = []
    for check in run_checks():
        table.add_row(plain(check.name), "[green]ok[/]" if check.ok else "[red]missing[/]",
                      plain(check.detail))
        if not check.ok and check.install:
            missing.append(check.install)
    console.print(table)
    if missing:
        console.print("install what is missing with:")
        for command in dict.fromkeys(missing):
            console.print(f"  {plain(command)}", highlight=False)
        sys.exit(1)


if __name__ == "__main__":
    main()
