"""AWS emulator benchmark (issue #6): how fast the ``aws`` kind is ready, beside the floor
measured in the same run on the same machine.

    python bench/aws.py [--runs N]
    python bench/aws.py --compute [--runs N]     (Lambda and EC2: bench/aws_compute.py)

Measured, interleaved run by run so that both see the same machine load:
- floor: spawn ``moto_server -p PORT`` and poll ``GET /moto-api/`` every millisecond until it
  answers 200 (moto's own server, nothing created, no backend of an AWS service built);
- shakedown, minimal: ``aws.ready`` of an environment with ``services = ["dynamodb"]`` and no
  resources (spawn to the health answer; the dynamodb backend is built before answering);
- shakedown, typical: ``aws.ready`` with dynamodb + sqs, one table and one queue created before
  it is ready; also ``Environment.up()`` as a whole;
- first call: a DynamoDB ListTables sent right after ready (raw HTTP, no boto3 client cost),
  to show that the start did not just push work onto the first request;
- CPU time of the server process at ready (floor and shakedown): less disturbed than wall
  time when other work shares the machine.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from _common import repeat, timed, verdict
from shakedown.environment import Environment

TARGET_RATIO = 1.29
"""aws.ready <= 1.29x the floor measured in the same run (the issue's 350 ms target over the
272 ms floor measured when it was set: the ratio is what carries over to another machine)."""
MINIMAL = """
    [services.aws]
    kind = "aws"
    services = ["dynamodb"]
    """
TYPICAL = """
    [services.aws]
    kind = "aws"
    services = ["dynamodb", "sqs"]
    [services.aws.resources]
    tables = [{ name = "jobs", hash_key = "id" }]
    queues = ["jobs"]
    """
LIST_TABLES = {"X-Amz-Target": "DynamoDB_20120810.ListTables",
               "Content-Type": "application/x-amz-json-1.0",
               "Authorization": "AWS4-HMAC-SHA256 Credential=k/20240101/us-east-1/dynamodb/"
                                "aws4_request, SignedHeaders=host, Signature=0"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


CPU: dict[str, list[float]] = {"floor": [], "minimal": [], "typical": []}


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far: a figure that other load on the
    machine disturbs much less than wall-clock time."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def floor_once() -> float:
    moto_server = shutil.which("moto_server", path=str(Path(sys.executable).parent))
    if moto_server is None:
        raise SystemExit("moto_server not found next to this Python: pip install "
                         "'shakedown[aws]'")
    port = free_port()
    client = httpx.Client(timeout=1.0, trust_env=False)
    began = time.perf_counter()
    proc = subprocess.Popen([moto_server, "-p", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        while True:
            try:
                if client.get(f"http://127.0.0.1:{port}/moto-api/").status_code == 200:
                    seconds = time.perf_counter() - began
                    CPU["floor"].append(cpu_seconds(proc.pid))
                    return seconds
            except httpx.HTTPError:
                pass
            if proc.poll() is not None:
                raise SystemExit(f"moto_server exited with {proc.returncode}")
            time.sleep(0.001)
    finally:
        proc.terminate()
        proc.wait(10)
        client.close()


def topology(text: str) -> Path:
    directory = Path(tempfile.mkdtemp(prefix="shakedown-bench-aws-"))
    (directory / "shakedown.toml").write_text(textwrap.dedent(text))
    return directory / "shakedown.toml"


class Run:
    """One environment brought up and down; keeps what it measured."""

    def __init__(self, path: Path) -> None:
        env = Environment.from_file(path)
        self.up = timed(env.up)
        self.cpu = cpu_seconds(env["aws"].pids[0])
        self.ready = env.measurements()["aws.ready"]
        self.first_call = timed(lambda: httpx.post(env["aws"].url, headers=LIST_TABLES,
                                                   content=b"{}", trust_env=False))
        env.down()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--compute", action="store_true",
                        help="measure Lambda and EC2 instead (bench/aws_compute.py)")
    args = parser.parse_args()
    if args.compute:
        from aws_compute import run

        run(args.runs, 200)
        return
    minimal, typical = topology(MINIMAL), topology(TYPICAL)
    Run(typical)  # warm the page cache once (imports), for floor and shakedown alike
    floor_once()
    floors: list[float] = []
    minimal_runs: list[Run] = []
    typical_runs: list[Run] = []
    for _ in range(args.runs):
        floors.append(floor_once())
        minimal_runs.append(Run(minimal))
        typical_runs.append(Run(typical))
    CPU["minimal"] = [r.cpu for r in minimal_runs]
    CPU["typical"] = [r.cpu for r in typical_runs]
    CPU["floor"] = CPU["floor"][-args.runs:]
    print(f"aws kind start, {args.runs} runs each, interleaved "
          f"(moto {importlib.metadata.version('moto')}, {os.cpu_count()} cores)")
    figures = [
        repeat("floor: moto_server spawn -> GET 200", len(floors), iter(floors).__next__),
        repeat("aws.ready, dynamodb, no resources", len(minimal_runs),
               iter([r.ready for r in minimal_runs]).__next__),
        repeat("aws.ready, dynamodb+sqs, table+queue", len(typical_runs),
               iter([r.ready for r in typical_runs]).__next__),
        repeat("Environment.up(), dynamodb+sqs, table+queue", len(typical_runs),
               iter([r.up for r in typical_runs]).__next__),
        repeat("first ListTables after ready (raw HTTP)", len(typical_runs),
               iter([r.first_call for r in typical_runs]).__next__),
    ]
    floor, minimal_ready, typical_ready = (f.median for f in figures[:3])
    cpu = [repeat(f"server CPU time to ready: {name}", args.runs, iter(CPU[name]).__next__)
           for name in ("floor", "minimal", "typical")]
    print()
    print(verdict("aws.ready minimal / floor of this run (x)", minimal_ready / floor,
                  TARGET_RATIO))
    print(verdict("aws.ready typical / floor of this run (x)", typical_ready / floor,
                  TARGET_RATIO))
    print(f"{'CPU time ratio to the floor: minimal / typical':<58} "
          f"{cpu[1].median / cpu[0].median:8.2f} / {cpu[2].median / cpu[0].median:.2f}")


if __name__ == "__main__":
    main()
