"""A seeded fault schedule over the failover workload (issue 20 item 4), synchronous against
asynchronous replication: for each mode a fresh etcd + 3-member Patroni + HAProxy cluster from
examples/ha-postgres, the set workload through HAProxy for ``--seconds`` under one schedule of
kills and pauses of the leader and of a replica (the same seed for both modes), then a final
read and the ``set`` checker. Prints per mode: faults applied, acknowledged writes, lost, and
whether the fault sequence matched the other mode's (same seed, same steps).

    .venv/bin/python bench/chaos_ha.py [--seconds 60] [--seed 20261202]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "ha-postgres"
sys.path.insert(0, str(EXAMPLE))

from ha_chaos import Chaos, run  # noqa: E402

from shakedown.environment import Environment  # noqa: E402

TOPOLOGIES = {"sync": "shakedown.toml", "async": "async.toml"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=20261202)
    args = parser.parse_args()
    print(f"set workload through HAProxy, {args.seconds:.0f} s of faults "
          f"(kill/pause of leader:db and replica:db), seed {args.seed}")
    print("| mode | faults (not applied) | acknowledged | lost | indeterminate | verdict | s |")
    print("|---|---|---|---|---|---|---|")
    runs: dict[str, Chaos] = {}
    for mode, topology in TOPOLOGIES.items():
        began = time.monotonic()
        runs[mode] = chaos(topology, mode, args.seed, args.seconds)
        done, counts = runs[mode], runs[mode].result.counts
        print(f"| {mode} | {len(done.steps)} ({len(done.errors)}) | {counts.get('ok', 0)} | "
              f"{done.lost} | {counts.get('indeterminate', 0)} | {done.result.validity} | "
              f"{time.monotonic() - began:.0f} |", flush=True)
    same = [s[:5] for s in runs["sync"].steps] == [s[:5] for s in runs["async"].steps]
    print(f"same fault sequence from the seed in both runs: {same}")
    for step in runs["sync"].steps:
        print(f"  step {step[0]} +{step[1]:.2f}s {step[3]} {step[4]} for {step[2]:.2f}s")


def chaos(topology: str, mode: str, seed: int, seconds: float) -> Chaos:
    directory = Path(tempfile.mkdtemp(prefix="shakedown-bench-chaos-"))
    try:
        for name in (topology, "schema.sql"):
            shutil.copy(EXAMPLE / name, directory / name)
        with Environment.from_file(directory / topology, name=f"bench-chaos-{mode}",
                                   state_root=directory / "state") as env:
            return run(env, seed, seconds)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
