"""Transactions under faults on the Patroni cluster (issue 18 item 4): for each scenario
(synchronous or asynchronous replication x leader killed or partitioned from its replicas and
etcd), a fresh etcd + 3-member Patroni + HAProxy cluster from examples/ha-postgres, list-append
at SERIALIZABLE through HAProxy across the fault, a final read on the new leader, and per
scenario: the isolation checker's verdict against strict serializability with the anomalies it
found, and the acknowledged appends lost.

    .venv/bin/python bench/isolation_ha.py [--runs 1] [--only sync-partition]
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

from ha_isolation import FAULTS, PROMISED, run  # noqa: E402

from shakedown.environment import Environment  # noqa: E402

TOPOLOGIES = {"sync": "shakedown.toml", "async": "async.toml"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--only", action="append", default=[],
                        help="a scenario MODE-FAULT (sync-kill, async-partition...); repeatable")
    args = parser.parse_args()
    scenarios = [(mode, fault) for mode in TOPOLOGIES for fault in FAULTS
                 if not args.only or f"{mode}-{fault}" in args.only]
    print(f"list-append at SERIALIZABLE through HAProxy, checked as {PROMISED}; "
          f"{args.runs} run(s) per scenario")
    print("| scenario | txns ok / fail / info | verdict | anomalies found | lost appends | s |")
    print("|---|---|---|---|---|---|")
    for mode, fault in scenarios:
        for index in range(args.runs):
            print(scenario(mode, fault, index), flush=True)


def scenario(mode: str, fault: str, index: int) -> str:
    directory = Path(tempfile.mkdtemp(prefix="shakedown-bench-isolation-ha-"))
    try:
        for name in (TOPOLOGIES[mode], "schema.sql"):
            shutil.copy(EXAMPLE / name, directory / name)
        began = time.monotonic()
        with Environment.from_file(directory / TOPOLOGIES[mode],
                                   name=f"bench-iso-ha-{mode}-{fault}-{index}",
                                   state_root=directory / "state") as env:
            outcome = run(env, fault)
        took = time.monotonic() - began
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    counts = outcome.isolation.counts
    return (f"| {mode} {fault} | {counts.get('ok', 0)} / {counts.get('fail', 0)} / "
            f"{counts.get('info', 0)} | {outcome.isolation.validity} | "
            f"{', '.join(outcome.anomalies) or 'none'} | {outcome.lost_appends} of "
            f"{outcome.lost.counts['acknowledged']} | {took:.0f} |")


if __name__ == "__main__":
    main()
