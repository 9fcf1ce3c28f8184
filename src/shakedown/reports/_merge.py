"""Merging shards (issue 21): the run directories of ``pytest --shakedown-shard K/N`` jobs
joined into one run (``runs/merged-…``): one results.json with every test once and the shard
it ran on, the environments of every shard, their histories, timings and log copies, one
history.db entry (the shards themselves are never recorded apart) and one HTML report."""

from __future__ import annotations

import secrets
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

from ..errors import ShakedownError
from ..store import Results, RunPaths, StateStore
from . import build_report
from ._historydb import HistoryDB, git_commit
from ._run import StoredRun


class MergeError(ShakedownError):
    exit_code = 2  # bad input: the directories given are not shards of one suite


def merge_runs(run_dirs: Sequence[Path], state_root: Path) -> RunPaths:
    """Join ``run_dirs`` into a new run under ``state_root``; returns its paths."""
    shards = [(RunPaths(d), _read(RunPaths(d))) for d in _distinct(run_dirs)]
    _check_each_test_once(shards)
    target = StateStore(state_root).run(time.strftime("merged-%Y%m%d-%H%M%S-")
                                        + secrets.token_hex(2))
    merged = Results(run_id=target.run_id, started=min(r.started for _, r in shards),
                     finished=max(r.finished for _, r in shards),
                     host=", ".join(sorted({r.host for _, r in shards if r.host})),
                     python=shards[0][1].python)
    merged.shard = {"merged": [{"run_id": r.run_id, "label": _label(r), "host": r.host,
                                "tests": len(r.tests)} for _, r in shards]}
    target.dir.mkdir(parents=True)
    for paths, results in shards:
        renamed = _copy_files(paths, target)
        label = _label(results)
        for test in results.tests:
            test.shard = test.shard or label
            merged.tests.append(test)
        for env in results.environments:
            name = renamed.get(str(env.get("name")), env.get("name"))
            merged.environments.append({**env, "name": name, "shard": env.get("shard") or label})
        merged.targets.update(results.targets)
        merged.logs.extend(str(target.env_logs(renamed.get(Path(p).name, Path(p).name)))
                           for p in results.logs)
    merged.tests.sort(key=lambda t: t.nodeid)
    merged.write(target)
    _record_and_report(target, [r.run_id for _, r in shards], state_root)
    return target


def _distinct(run_dirs: Sequence[Path]) -> list[Path]:
    if not run_dirs:
        raise MergeError("shakedown merge: no run directory given",
                         fix=["shakedown merge RUN_DIR RUN_DIR... (each a .shakedown/runs/RUN_ID "
                              "of one shard)"])
    seen: dict[Path, Path] = {}
    for directory in run_dirs:
        seen.setdefault(directory.resolve(), directory)
    return list(seen.values())


def _read(paths: RunPaths) -> Results:
    try:
        return Results.read(paths)
    except ShakedownError as exc:
        raise MergeError(f"shakedown merge: {exc.what}", checked=exc.checked,
                         fix=exc.fix) from exc


def _label(results: Results) -> str:
    return str(results.shard.get("label") or results.run_id)


def _check_each_test_once(shards: Sequence[tuple[RunPaths, Results]]) -> None:
    where: dict[str, str] = {}
    for paths, results in shards:
        for test in results.tests:
            if test.nodeid in where:
                raise MergeError(
                    f"shakedown merge: {test.nodeid} ran in two of the runs given "
                    f"({where[test.nodeid]} and {paths.dir})",
                    checked=["every test id appears in one run only (shards of one suite, "
                             "split with the same --shakedown-shard N and durations)"],
                    fix=["give the run directories of one sharded run, one per shard",
                         "shards planned from different durations overlap: plan every shard "
                         "from one file (--shakedown-durations FILE)"])
            where[test.nodeid] = str(paths.dir)


def _copy_files(source: RunPaths, target: RunPaths) -> dict[str, str]:
    """Histories, timings and log copies; an environment name already taken by another
    shard gets the shard's run id in front. Returns the renames."""
    renamed: dict[str, str] = {}
    for history in source.history_files():
        name = history.stem
        if target.history_file(name).exists():
            name = renamed[history.stem] = f"{source.run_id}-{history.stem}"
        target.histories_dir.mkdir(exist_ok=True)
        shutil.copyfile(history, target.history_file(name))
    for timing in sorted(source.timings_dir.glob("*.json")):
        target.timings_dir.mkdir(exist_ok=True)
        shutil.copyfile(timing, target.timing_file(renamed.get(timing.stem, timing.stem)))
    if source.logs_dir.is_dir():
        for logs in sorted(p for p in source.logs_dir.iterdir() if p.is_dir()):
            name = renamed.get(logs.name, logs.name)
            shutil.copytree(logs, target.env_logs(name), dirs_exist_ok=True)
    return renamed


def _record_and_report(target: RunPaths, shard_ids: list[str], state_root: Path) -> None:
    run = StoredRun.load(target.dir)
    db = HistoryDB(StateStore(state_root).history_db)
    commit = git_commit(Path.cwd())
    db.delete_runs(shard_ids)  # a shard recorded by an older shakedown: only the whole counts
    db.record_run(run, git_commit=commit, rootdir=str(Path.cwd()))
    if commit:
        run.data["git_commit"] = commit
    target.report_file.write_text(build_report(run, db=db), encoding="utf-8")
