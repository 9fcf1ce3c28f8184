"""Fault-proxy benchmark (issue #4), in one run: pgbench select-only with several clients,
direct vs through a shakedown link with no toxics (throughput ratio, added median latency from
pgbench's per-transaction log), then the bulk-transfer and round-trip figures of
``bench/proxy_bulk.py``.

The peer, measured in the same run: HAProxy (C, event-driven, ``option splice-auto``) in TCP
mode in front of the same server. It is the best a userspace TCP proxy does on this machine, so
its ratio to direct is the floor any proxy that relays in userspace pays here: the extra process
woken twice per round trip on cores that pgbench and the backends already keep busy.

    python bench/proxy.py [--seconds S] [--clients C] [--repeat N]

Targets: throughput >= 0.85 of direct, added median latency <= 150 us, bulk >= 500 MB/s.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import verdict
from shakedown import Environment
from shakedown.services import PostgresService
from shakedown.services.kinds.haproxy import HAProxyService

TOPOLOGY = """
[services.db]
kind = "postgres"
[services.db.settings]
max_connections = 50

[services.client]
kind = "process"
command = ["{python}", "-c", "import time; time.sleep(3600)"]
ready = { command = ["true"] }

[links.client-db]
from = "client"
to = "db"
"""


def pgbench(db: PostgresService, host: str, port: int, clients: int, seconds: int,
            log_dir: Path) -> tuple[float, float]:
    """(transactions per second, median latency in microseconds)."""
    for old in log_dir.glob("pgbench_log*"):
        old.unlink()
    command = [db.binaries.tool("pgbench"), "-h", host, "-p", str(port), "-U", "postgres",
               "-S", "-n", "-c", str(clients), "-j", str(min(clients, 2)), "-T", str(seconds),
               "-l", "--log-prefix", str(log_dir / "pgbench_log"), "postgres"]
    out = subprocess.run(command, capture_output=True, text=True, check=True,
                         env={"PGPASSWORD": db.password, "PATH": "/usr/bin:/bin"})
    tps = float(re.search(r"tps = ([\d.]+)", out.stdout).group(1))  # type: ignore[union-attr]
    latencies = [int(line.split()[2]) for path in log_dir.glob("pgbench_log*")
                 for line in path.read_text().splitlines() if line]
    return tps, statistics.median(latencies)


HAPROXY_CONFIG = """global
    maxconn 200
    nbthread 1
defaults
    mode tcp
    option splice-auto
    timeout connect 1s
    timeout client 1m
    timeout server 1m
listen pg
    bind 127.0.0.1:{listen}
    server db {host}:{port}
"""


@contextlib.contextmanager
def haproxy_peer(host: str, port: int, directory: Path) -> Iterator[int]:
    """HAProxy relaying a free port to host:port; yields the port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        listen = probe.getsockname()[1]
    config = directory / "haproxy.cfg"
    config.write_text(HAPROXY_CONFIG.format(listen=listen, host=host, port=port))
    proc = subprocess.Popen([HAProxyService.binary.find("haproxy"), "-db", "-f", str(config)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", listen)):
                break
            time.sleep(0.01)
        yield listen
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def summary(label: str, runs: list[tuple[float, float]]) -> None:
    tps = [r[0] for r in runs]
    lat = [r[1] for r in runs]
    print(f"  {label:<8} tps {min(tps):9.0f} / {statistics.median(tps):9.0f} / "
          f"{max(tps):9.0f}   median latency {statistics.median(lat):7.0f} us")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="shakedown-bench-proxy-"))
    (directory / "shakedown.toml").write_text(TOPOLOGY)
    log_dir = directory / "pgbench"
    log_dir.mkdir()
    print(f"pgbench -S, {args.clients} clients, {args.seconds} s per run, {args.repeat} runs "
          "each, alternating direct and proxied")
    with Environment.from_file(directory / "shakedown.toml") as env:
        db = env["db"]
        assert isinstance(db, PostgresService)
        subprocess.run([db.binaries.tool("pgbench"), "-i", "-q", "-s", "5", "-h", db.host,
                        "-p", str(db.port), "-U", "postgres", "postgres"], check=True,
                       capture_output=True, env={"PGPASSWORD": db.password})
        link = env.link("client-db")
        direct: list[tuple[float, float]] = []
        proxied: list[tuple[float, float]] = []
        peer: list[tuple[float, float]] = []
        with haproxy_peer(db.host, db.port, directory) as peer_port:
            for _ in range(args.repeat):
                direct.append(pgbench(db, db.host, db.port, args.clients, args.seconds,
                                      log_dir))
                proxied.append(pgbench(db, link.host, link.port, args.clients, args.seconds,
                                       log_dir))
                peer.append(pgbench(db, "127.0.0.1", peer_port, args.clients, args.seconds,
                                    log_dir))
    print("  tps min / median / max over the runs")
    summary("direct", direct)
    summary("proxied", proxied)
    summary("haproxy", peer)

    def tps(runs: list[tuple[float, float]]) -> float:
        return statistics.median(r[0] for r in runs)

    ratio = tps(proxied) / tps(direct)
    added = statistics.median(r[1] for r in proxied) - statistics.median(r[1] for r in direct)
    print(verdict("pgbench throughput, proxied / direct", ratio, 0.85, higher_is_better=True))
    print(f"{'  peer: HAProxy / direct (floor of a userspace relay here)':<58} "
          f"{tps(peer) / tps(direct):8.2f}")
    print(f"{'  shakedown / HAProxy':<58} {tps(proxied) / tps(peer):8.2f}")
    print(verdict("pgbench added median latency (us)", added, 150))
    print("\n-- bench/proxy_bulk.py --")
    subprocess.run([sys.executable, str(Path(__file__).parent / "proxy_bulk.py"),
                    "--repeat", str(args.repeat), "--bulk-mib", "512"], check=False)


if __name__ == "__main__":
    main()
