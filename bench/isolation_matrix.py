"""PostgreSQL's isolation levels as the isolation checker sees them (issue #18): N short runs of
each transactional workload at SERIALIZABLE, REPEATABLE READ and READ COMMITTED, each checked
against strict serializability (the strongest model, so every anomaly found is named), and a
table of the anomalies found with the number of runs that showed each, beside what PostgreSQL's
documentation says the level allows.

    python bench/isolation_matrix.py [--runs 10] [--seconds 2] [--keys 3] [--workers 6]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from collections import Counter
from pathlib import Path
from types import ModuleType

from shakedown import Environment
from shakedown.checkers import isolation
from shakedown.workloads import Runner
from shakedown.workloads.postgres import WORKLOADS, list_append, rw_register

TOPOLOGY = """
[services.db]
kind = "postgres"
"""
LEVELS = {
    "serializable": "no anomaly",
    "repeatable-read": "snapshot isolation: write skew (G2-item) only",
    "read-committed": "non-repeatable reads, read skew, lost updates",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--keys", type=int, default=3)
    parser.add_argument("--workers", type=int, default=6)
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="shakedown-bench-isolation-"))
    (directory / "shakedown.toml").write_text(TOPOLOGY)
    print(f"{args.runs} runs of {args.seconds}s per cell, {args.keys} active keys, "
          f"{args.workers} workers, transactions of 1-4 micro-ops, half reads")
    print("| workload | level | txns ok / fail / info | anomalies (runs showing it) | "
          "PostgreSQL documents |")
    print("|---|---|---|---|---|")
    try:
        with Environment.from_file(directory / "shakedown.toml") as env:
            url = env["db"].url
            for module in (list_append, rw_register):
                for level, documented in LEVELS.items():
                    row = cell(url, module, level, args)
                    print(f"| {module.WORKLOAD.name} | {level} | {row} | {documented} |",
                          flush=True)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def cell(url: str, module: ModuleType, level: str, args: argparse.Namespace) -> str:
    name = module.WORKLOAD.name
    runs: Counter[str] = Counter()
    outcomes: Counter[str] = Counter()
    for seed in range(args.runs):
        module.setup(url)
        summary = Runner(
            WORKLOADS[name].clients(url, isolation=level),
            module.generator(keys=args.keys, seconds=args.seconds, seed=seed),
            concurrency=args.workers,
        ).run()
        outcomes.update(summary.completions)
        runs.update(isolation(summary.history, model="strict-serializable").details["anomalies"])
    found = ", ".join(f"{n} ({c}/{args.runs})" for n, c in sorted(runs.items())) or "none"
    return f"{outcomes['ok']} / {outcomes['fail']} / {outcomes['info']} | {found}"


if __name__ == "__main__":
    main()
