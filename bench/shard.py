"""Sharding benchmark (issue 21): the wall time of the examples' suites (examples/demo and
examples/replication-job by default) unsharded, as 2 and as 3 shards run in parallel on this
machine, and with ``-n 2``; each figure against the unsharded run measured in the same run.

    python bench/shard.py [--suites examples/demo examples/replication-job]

The unsharded run goes first and is recorded in .shakedown/history.db, so the shards plan
from its durations (test times and environment starts). Parallel shards on one machine share
its cores: on a 2-core machine, 3 shards cannot be 3x faster; the figure to read is how close
the slowest shard comes to its planned share.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _pytest(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:randomly", "-q", *args],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def _wall(commands: list[list[str]]) -> tuple[float, list[str]]:
    began = time.perf_counter()
    processes = [_pytest(*c) for c in commands]
    outputs = [p.communicate()[0] for p in processes]
    took = time.perf_counter() - began
    for process, out in zip(processes, outputs, strict=True):
        if process.returncode != 0:
            print(out[-3000:])
            raise SystemExit(f"pytest exited {process.returncode}")
    return took, outputs


def _planned(outputs: list[str]) -> str:
    lines = [line for out in outputs for line in out.splitlines() if line.startswith("shard ")]
    return "; ".join(lines[:1]) if lines else ""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--suites", nargs="+",
                        default=["examples/demo", "examples/replication-job"])
    suites = parser.parse_args().suites
    unsharded, _ = _wall([suites])
    print(f"{'unsharded':<26} {unsharded:7.1f} s", flush=True)
    for count in (2, 3):
        took, outputs = _wall([[*suites, f"--shakedown-shard={k}/{count}"]
                               for k in range(1, count + 1)])
        print(f"{f'{count} shards in parallel':<26} {took:7.1f} s  "
              f"{took / unsharded:5.2f}x unsharded  ({_planned(outputs)})", flush=True)
    took, _ = _wall([[*suites, "-n", "2"]])
    print(f"{'-n 2 (grouped)':<26} {took:7.1f} s  {took / unsharded:5.2f}x unsharded",
          flush=True)
    took, _ = _wall([[*suites, "-n", "2", "--shakedown-no-group"]])
    print(f"{'-n 2 --shakedown-no-group':<26} {took:7.1f} s  {took / unsharded:5.2f}x unsharded",
          flush=True)
    print(json.dumps({"suites": suites}))


if __name__ == "__main__":
    main()
