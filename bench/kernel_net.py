"""Measures the kernel mechanism proposed for issue 19 (docs/kernel-faults.md) by hand, before
shakedown uses it: two processes in cgroup2 groups of their own talk over loopback; nftables
rules that match the sender's cgroup (output hook, sets a packet mark) and the receiver's
socket cgroup (input hook) cut an open connection, drop a fraction of packets, and cost nothing
on the healthy path. Needs root, nftables and a cgroup2 mount; prints what it saw.

    .venv/bin/python bench/kernel_net.py
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from multiprocessing import Process, Queue
from pathlib import Path

TABLE = "inet shakedown-bench"
MARK = "0x5d01"


def cgroup2_root() -> Path:
    for line in Path("/proc/mounts").read_text().splitlines():
        parts = line.split()
        if parts[2] == "cgroup2":
            return Path(parts[1])
    sys.exit("kernel_net: no cgroup2 mount (checked /proc/mounts)")


def nft(*commands: str) -> float:
    """Run one nft batch; return the seconds it took."""
    started = time.perf_counter()
    subprocess.run(["nft", "-f", "-"], input="\n".join(commands) + "\n", text=True,
                   check=True)
    return time.perf_counter() - started


def join(group: Path) -> None:
    (group / "cgroup.procs").write_text(str(os.getpid()))


def echo_server(group: Path, port: int) -> None:
    join(group)
    with socket.create_server(("127.0.0.1", port)) as server:
        conn, _ = server.accept()
        with conn:
            while data := conn.recv(100):
                conn.sendall(data)


def round_trips(group: Path, port: int, n: int, timeout: float, interval: float,
                out: Queue[list[float]]) -> None:
    """Echo n times, ``interval`` apart; put each round trip's seconds (or -1 for a timeout)
    in ``out``."""
    join(group)
    conn = socket.create_connection(("127.0.0.1", port))
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    conn.settimeout(timeout)
    times: list[float] = []
    for _ in range(n):
        started = time.perf_counter()
        try:
            conn.sendall(b"x" * 10)
            conn.recv(100)
            times.append(time.perf_counter() - started)
        except TimeoutError:
            times.append(-1.0)
        time.sleep(interval)
    out.put(times)
    conn.close()


def session(groups: dict[str, Path], port: int, n: int, timeout: float, interval: float = 0.0,
            during: list[tuple[float, list[str]]] | None = None) -> list[float]:
    """One server in b, one client in a; ``during`` = (seconds after start, nft batch)."""
    server = Process(target=echo_server, args=(groups["b"], port))
    server.start()
    time.sleep(0.3)
    out: Queue[list[float]] = Queue()
    client = Process(target=round_trips, args=(groups["a"], port, n, timeout, interval, out))
    client.start()
    started = time.monotonic()
    for at, batch in during or []:
        time.sleep(max(0.0, at - (time.monotonic() - started)))
        nft(*batch)
    times = out.get()
    client.join()
    server.join(timeout=5)
    return times


def rule_pair(root: Path, groups: dict[str, Path], sender: str, receiver: str) -> list[str]:
    def path(name: str) -> str:
        return f'"{groups[name].relative_to(root.parent)}"'
    level = len(groups[sender].relative_to(root).parts)
    return [f"add rule {TABLE} out socket cgroupv2 level {level} {path(sender)} "
            f"meta mark set {MARK}",
            f"add rule {TABLE} in meta mark {MARK} socket cgroupv2 level {level} "
            f"{path(receiver)} drop"]


def retransmitted() -> int:
    """The machine's TCP RetransSegs counter (/proc/net/snmp)."""
    lines = [line.split() for line in Path("/proc/net/snmp").read_text().splitlines()
             if line.startswith("Tcp:")]
    return int(lines[1][lines[0].index("RetransSegs")])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--round-trips", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    if shutil.which("nft") is None:
        sys.exit("kernel_net: nft not found (apt-get install nftables)")
    root = cgroup2_root()
    base = root / "shakedown-bench"
    groups = {name: base / name for name in ("a", "b", "other")}
    for group in groups.values():
        group.mkdir(parents=True, exist_ok=True)
    chains = [f"add table {TABLE}",
              f"add chain {TABLE} out {{ type filter hook output priority 0; }}",
              f"add chain {TABLE} in {{ type filter hook input priority 0; }}"]
    try:
        ratios = []
        for index in range(args.repeat):  # alternate, so load changes hit both sides alike
            direct = session(groups, 47101 + 2 * index, args.round_trips, 5.0)
            nft(*chains, *rule_pair(root, groups, "other", "a"))
            with_rules = session(groups, 47102 + 2 * index, args.round_trips, 5.0)
            nft(f"delete table {TABLE}")
            ratios.append(sum(direct) / sum(with_rules))
            print(f"  healthy path run {index + 1}: {sum(direct) / len(direct) * 1e6:.1f} us per "
                  f"round trip without rules, {sum(with_rules) / len(with_rules) * 1e6:.1f} us "
                  "with a non-matching partition present")
        print(f"healthy path: median ratio (without / with rules) {statistics.median(ratios):.2f}"
              f" over {args.repeat} alternating runs")

        loss = [*chains, f"add rule {TABLE} out socket cgroupv2 level "
                f"{len(groups['a'].relative_to(root).parts)} "
                f'"{groups["a"].relative_to(root.parent)}" numgen random mod 100 < 20 drop']
        nft(*loss)
        before = retransmitted()
        session(groups, 47150, 300, 5.0)
        nft(f"delete table {TABLE}")
        print(f"loss 20% on the client's packets: {retransmitted() - before} segments "
              "retransmitted for 300 echoes (TcpRetransSegs, machine-wide)")

        cut = [*chains, *rule_pair(root, groups, "b", "a")]
        times = session(groups, 47103, 30, 0.3, 0.1,
                        during=[(1.0, cut), (2.5, [f"delete table {TABLE}"])])
        timeouts = sum(1 for t in times if t < 0)
        after = [t for t in times[len(times) - times[::-1].index(-1.0):]] if timeouts else []
        print(f"open connection, b -> a cut for 1.5 s: {timeouts} of {len(times)} echoes timed "
              f"out (0.3 s each), {len(after)} answered on the same connection after the heal")

        apply_s = nft(*chains, *rule_pair(root, groups, "b", "a"))
        heal_s = nft(f"delete table {TABLE}")
        print(f"apply a one-way cut (table + 2 rules, one nft batch): {apply_s * 1e3:.1f} ms, "
              f"heal (delete table): {heal_s * 1e3:.1f} ms")
    finally:
        subprocess.run(["nft", "delete", "table", *TABLE.split()], capture_output=True)
        for group in groups.values():
            group.rmdir()
        base.rmdir()


if __name__ == "__main__":
    main()
