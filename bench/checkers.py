"""Isolation checker benchmark (issue #18): check time of list-append histories from 1k to 100k
transactions, printed as a table, for two kinds of history of the same shape:

- ``serializable``: each transaction takes effect atomically between its invocation and its
  completion (so the history is strict serializable: no cycle; the cost is parsing, inference
  and one strongly-connected-components pass);
- ``anomalous``: reads come from a snapshot taken at invocation, appends are applied at
  completion with no conflict check (snapshot isolation without first-committer-wins), so
  lost updates and G-single cycles abound and the cycle search and rendering do real work.

Shape (Elle's usual one): 10 worker processes, 10 active keys, 5 micro-operations per
transaction, half reads and half appends, a key retired after 32 appends (reads stay short),
5% of transactions fail (no effect), 1% end unknown (half of those take effect).

    python bench/checkers.py [--sizes 1000,3000,10000,30000,100000] [--model serializable]

Targets: 100k transactions checked in < 20 s; growth near linear (time per transaction at
100k at most 2x that at 10k).
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _common import timed, verdict
from shakedown.checkers import isolation
from shakedown.history import History, Op

PROCESSES, KEYS, LENGTH, READ_SHARE, MAX_WRITES = 10, 10, 5, 0.5, 32


class Simulator:
    """A store of lists and a generator of transactions over rolling keys."""

    def __init__(self, seed: int, snapshot: bool) -> None:
        self.random = random.Random(seed)
        self.snapshot = snapshot
        self.state: dict[int, list[int]] = {}
        self.active = list(range(KEYS))
        self.written = dict.fromkeys(self.active, 0)
        self.fresh = KEYS
        self.value = 0

    def transaction(self) -> list[list[Any]]:
        ops: list[list[Any]] = []
        for _ in range(LENGTH):
            slot = self.random.randrange(KEYS)
            key = self.active[slot]
            if self.random.random() < READ_SHARE:
                ops.append(["r", key, None])
                continue
            self.value += 1
            ops.append(["append", key, self.value])
            self.written[key] += 1
            if self.written[key] >= MAX_WRITES:
                self.active[slot] = self.fresh
                self.written[self.fresh] = 0
                self.fresh += 1
        return ops

    def view(self, ops: list[list[Any]]) -> dict[int, list[int]]:
        return {key: list(self.state.get(key, ())) for _, key, _ in ops}

    def apply(self, ops: list[list[Any]], seen: dict[int, list[int]]) -> list[list[Any]]:
        """Run the transaction: reads from ``seen`` (its snapshot) or the current state."""
        local = seen if self.snapshot else self.view(ops)
        done: list[list[Any]] = []
        for f, key, value in ops:
            if f == "r":
                done.append([f, key, list(local[key])])
            else:
                local[key].append(value)
                self.state.setdefault(key, []).append(value)
                done.append([f, key, value])
        return done


def build(size: int, *, snapshot: bool, seed: int = 1) -> History:
    """A history of ``size`` transactions from ``PROCESSES`` overlapping workers."""
    sim = Simulator(seed, snapshot)
    ops: list[Op] = []
    pending: dict[int, tuple[list[list[Any]], dict[int, list[int]]]] = {}
    started = 0
    while started < size or pending:
        process = sim.random.randrange(PROCESSES)
        if process not in pending:
            if started >= size:
                continue
            txn = sim.transaction()
            pending[process] = (txn, sim.view(txn) if snapshot else {})
            ops.append(Op(process, "invoke", "txn", _invocation(txn), index=len(ops)))
            started += 1
            continue
        txn, seen = pending.pop(process)
        roll = sim.random.random()
        if roll < 0.05:
            ops.append(Op(process, "fail", "txn", _invocation(txn), index=len(ops)))
        elif roll < 0.06:
            if roll < 0.055:
                sim.apply(txn, seen)
            ops.append(Op(process, "info", "txn", _invocation(txn), index=len(ops)))
        else:
            ops.append(Op(process, "ok", "txn", sim.apply(txn, seen), index=len(ops)))
    return History(ops=ops)


def _invocation(txn: list[list[Any]]) -> list[list[Any]]:
    return [[f, k, None if f == "r" else v] for f, k, v in txn]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,3000,10000,30000,100000")
    parser.add_argument("--model", default="serializable")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"shape: {PROCESSES} processes, {KEYS} active keys, {LENGTH} ops/txn, "
          f"{READ_SHARE:.0%} reads, key retired after {MAX_WRITES} appends; model {args.model}")
    print(f"{'txns':>8} | {'serializable s':>14} {'us/txn':>7} | {'anomalous s':>11} "
          f"{'us/txn':>7} | anomalies found (anomalous)")
    figures: dict[int, float] = {}
    for size in sizes:
        row = []
        found: list[str] = []
        for snapshot in (False, True):
            history = build(size, snapshot=snapshot)
            result: list[Any] = []
            seconds = timed(lambda h=history, r=result: r.append(isolation(h, model=args.model)))
            expected = "invalid" if snapshot else "valid"
            if result[0].validity != expected:
                raise SystemExit(f"{size} txns, snapshot={snapshot}: expected {expected}, got "
                                 f"{result[0]}")
            if snapshot:
                found = result[0].details["anomalies"]
            else:
                figures[size] = seconds
            row.append(seconds)
        print(f"{size:>8} | {row[0]:>14.2f} {row[0] / size * 1e6:>7.1f} | {row[1]:>11.2f} "
              f"{row[1] / size * 1e6:>7.1f} | {', '.join(found)}", flush=True)
    largest = max(sizes)
    print(verdict(f"{largest} serializable txns checked (s)", figures[largest], 20.0))
    if 10_000 in figures and largest > 10_000:
        growth = (figures[largest] / largest) / (figures[10_000] / 10_000)
        print(verdict(f"time per txn at {largest} / at 10000", growth, 2.0))


if __name__ == "__main__":
    main()
