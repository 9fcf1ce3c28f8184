"""Benchmark of the ``citus`` kind: how long a coordinator + 2 workers take to be a ready
Citus cluster, beside the floor measured in the same run.

    .venv/bin/python bench/citus.py [--runs 5]

Measured, alternating so that both see the same machine load:
- floor: by hand, what any tool must at least do — three copies of the cached initdb template
  made and started in parallel (citus preloaded, no TLS between nodes), ``CREATE EXTENSION
  citus`` on each in parallel, ``citus_set_coordinator_host`` and ``citus_add_node`` for both
  workers on the coordinator (nodes registered at their own ports: no links, no password
  change, no health check);
- shakedown: ``Environment.up()`` of ``kind = "citus"`` until the cluster is ready
  (``db.ready``: the service's start to ``citus_check_cluster_node_health()`` all true), and
  the whole ``up()`` (the fault proxy for the inter-node links included).

Target (issue 16): shakedown's ready time within 1.5x of the floor. Exit status 1 when missed.

    .venv/bin/python bench/citus.py --ha [--runs 3]

measures Patroni's Citus mode instead (``kind = "postgres-ha"``, ``members = 2``, ``citus =
{ workers = 2 }``: three groups of two members), alternating with its floor in the same run:
the same three Patroni clusters without Citus (three plain 2-member ``postgres-ha`` services
of one environment, started in parallel as the groups are; the floor is the slowest one's
``ready``). Printed: the groups' part of ``db.ready`` (every group with a leader and a
streaming replica) and the whole ``db.ready`` (Patroni creating Citus in each group and the
coordinator registering every group's leader included). Target: within 1.5x of the floor."""

from __future__ import annotations

import argparse
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).parent))
from _common import Figures, verdict
from shakedown.environment import Environment
from shakedown.process import PortAllocator, copy_tree, runtime_root, service_user
from shakedown.services.kinds.postgres import ensure_template, find_binaries

TARGET_RATIO = 1.5
TOPOLOGY = """
[services.db]
kind = "citus"
workers = 2
"""
HA_TOPOLOGY = """
[services.kv]
kind = "etcd"

[services.db]
kind = "postgres-ha"
etcd = "kv"
members = 2
citus = { workers = 2 }
"""
HA_FLOOR_TOPOLOGY = """
[services.kv]
kind = "etcd"
""" + "".join(f"""
[services.db{group}]
kind = "postgres-ha"
etcd = "kv"
members = 2
""" for group in range(3))


def floor_once() -> float:
    binaries = find_binaries(None)
    run_as = service_user()
    template = ensure_template(binaries, (), run_as)
    allocator = PortAllocator(runtime_root(), "bench-citus-floor")
    ports = [allocator.allocate() for _ in range(3)]
    root = Path(tempfile.mkdtemp(dir="/dev/shm", prefix="bench-citus-"))
    root.chmod(0o755)
    servers: list[subprocess.Popen[bytes]] = []

    def node(index: int) -> psycopg.Connection[object]:
        data = root / f"n{index}"
        copy_tree(template.data_dir, data, run_as)
        data.chmod(0o700)
        with (data / "postgresql.conf").open("a") as conf:
            conf.write(f"port = {ports[index]}\nlisten_addresses = '127.0.0.1'\n"
                       "unix_socket_directories = ''\nfsync = off\nfull_page_writes = off\n"
                       "shared_buffers = 16MB\ndynamic_shared_memory_type = mmap\n"
                       "shared_preload_libraries = 'citus'\n"
                       "citus.node_conninfo = 'sslmode=disable'\n")
        servers.append(subprocess.Popen(
            [binaries.tool("postgres"), "-D", str(data)], stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True,
            env={"PGPASSFILE": str(root / "pgpass"), "LANG": "C.UTF-8"},
            user=run_as.uid if run_as else None, group=run_as.gid if run_as else None))
        deadline = time.monotonic() + 30
        while True:
            try:
                conn = psycopg.connect(host="127.0.0.1", port=ports[index], user="postgres",
                                       password=template.bootstrap_password, autocommit=True)
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.001)
        conn.execute("CREATE EXTENSION citus")
        return conn

    pgpass = root / "pgpass"  # the nodes authenticate to each other with the password
    pgpass.write_text(f"*:*:*:postgres:{template.bootstrap_password}\n")
    pgpass.chmod(0o600)
    if run_as:
        run_as.chown(pgpass)
    began = time.perf_counter()
    try:
        with ThreadPoolExecutor(3) as pool:
            conns = list(pool.map(node, range(3)))
        coordinator = conns[0]
        coordinator.execute("SELECT citus_set_coordinator_host('127.0.0.1', %s)", (ports[0],))
        for port in ports[1:]:
            coordinator.execute("SELECT citus_add_node('127.0.0.1', %s)", (port,))
        seconds = time.perf_counter() - began
        active = coordinator.execute("SELECT count(*) FROM citus_get_active_worker_nodes()"
                                     ).fetchone()
        assert active == (2,), active
        for conn in conns:
            conn.close()
    finally:
        for server in servers:
            server.send_signal(signal.SIGINT)
        for server in servers:
            server.wait(30)
        shutil.rmtree(root, ignore_errors=True)
        for port in ports:
            allocator.release(port)
    return seconds


def shakedown_once(path: Path) -> tuple[float, float]:
    env = Environment.from_file(path)
    began = time.perf_counter()
    env.up()
    up = time.perf_counter() - began
    ready = env.measurements()["db.ready"]
    env.down()
    return ready, up


def ha_once(path: Path) -> tuple[float, float]:
    """Patroni's Citus mode: (the groups' part of db.ready, the whole db.ready)."""
    env = Environment.from_file(path)
    try:
        env.up()
        db = env["db"]
        groups = getattr(db, "groups_ready_seconds", None)
        assert groups is not None, f"{db.kind} is not in Patroni's Citus mode"
        return groups, env.measurements()["db.ready"]
    finally:
        env.down()


def ha_floor_once(path: Path) -> float:
    """Three plain 2-member Patroni clusters in parallel: the slowest one's ready time."""
    env = Environment.from_file(path)
    try:
        env.up()
        return max(env.measurements()[f"db{group}.ready"] for group in range(3))
    finally:
        env.down()


def main_ha(runs: int) -> int:
    directory = Path(tempfile.mkdtemp(prefix="bench-citus-ha-"))
    path, floor_path = directory / "shakedown.toml", directory / "floor.toml"
    path.write_text(textwrap.dedent(HA_TOPOLOGY))
    floor_path.write_text(textwrap.dedent(HA_FLOOR_TOPOLOGY))
    ha_once(path)  # warm: the template, Patroni's interpreter files in the page cache
    floors, groups, readies = [], [], []
    for _ in range(runs):
        floors.append(ha_floor_once(floor_path))
        grouped, ready = ha_once(path)
        groups.append(grouped)
        readies.append(ready)
    shutil.rmtree(directory, ignore_errors=True)
    for figures in (Figures("floor: 3 plain 2-member Patroni clusters", floors),
                    Figures("citus HA: every group ready", groups),
                    Figures("citus HA: db.ready (registered, healthy)", readies)):
        print(figures.line())
    ratio = statistics.median(readies) / statistics.median(floors)
    print(verdict("citus HA ready / floor (medians)", ratio, TARGET_RATIO))
    return 0 if ratio <= TARGET_RATIO else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--ha", action="store_true",
                        help="Patroni's Citus mode against three plain Patroni clusters")
    args = parser.parse_args()
    if args.ha:
        return main_ha(args.runs)
    directory = Path(tempfile.mkdtemp(prefix="bench-citus-"))
    path = directory / "shakedown.toml"
    path.write_text(textwrap.dedent(TOPOLOGY))
    shakedown_once(path)  # warm: the template with citus is built once per machine
    floor_once()
    floors, readies, ups = [], [], []
    for _ in range(args.runs):
        floors.append(floor_once())
        ready, up = shakedown_once(path)
        readies.append(ready)
        ups.append(up)
    shutil.rmtree(directory, ignore_errors=True)
    for figures in (Figures("floor (3 copies + CREATE EXTENSION + add)", floors),
                    Figures("shakedown citus: db.ready", readies),
                    Figures("shakedown citus: whole up()", ups)):
        print(figures.line())
    ratio = statistics.median(readies) / statistics.median(floors)
    print(verdict("citus ready / floor (medians)", ratio, TARGET_RATIO))
    print(f"{'whole up() / floor (medians)':<58} "
          f"{statistics.median(ups) / statistics.median(floors):8.2f}")
    return 0 if ratio <= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
