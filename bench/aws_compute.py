"""AWS compute benchmark (issue #14): the ``aws`` kind's native Lambda and EC2 beside peers
measured in the same run, interleaved sample by sample so that both see the same load.

    python bench/aws.py --compute [--runs N]      (or python bench/aws_compute.py)

- warm invoke: ``Invoke`` of a warm function (raw HTTP with keep-alive, as an SDK sends it),
  against the peer: the same handler called by a local HTTP server (stdlib, in its own
  process) over the same kind of connection. Target: within 2x.
- cold start: ``Invoke`` of a function with no worker (its worker killed before each sample)
  against the peer: spawning ``python -P`` that imports the handler's module and says so on a
  pipe. The handler imports boto3, as most do. Target: within 1.5x.
- EC2: ``RunInstances`` (raw HTTP) until the instance's command connects back, against the
  peer: spawning the same command by hand until it connects back. Target: within 1.2x.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import repeat, verdict
from shakedown.environment import Environment
from shakedown.services import AwsService

AMI = "ami-0123456789abcdef0"
AUTH = ("AWS4-HMAC-SHA256 Credential=shakedown/20240101/us-east-1/{}/aws4_request, "
        "SignedHeaders=host, Signature=0")
HANDLER = """
import json
import boto3  # what most handlers import: part of a cold start


def handler(event, context):
    return {"ok": True, "n": event.get("n")}
"""
PEER_SERVER = """
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
sys.path.insert(0, sys.argv[1])
from fn import handler


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    wbufsize = -1  # headers and body in one write (flushed after each request)

    def do_POST(self):
        event = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
        body = json.dumps(handler(event, None)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"""
PEER_COLD = "import sys; sys.path.insert(0, sys.argv[1]); import fn; print('ready', flush=True)"
CONNECT_BACK = ("import os, socket; socket.create_connection(('127.0.0.1', "
                "int(os.environ['BENCH_PORT']))).sendall(b'x')")


def topology(directory: Path, listen_port: int) -> Path:
    (directory / "code").mkdir()
    (directory / "code" / "fn.py").write_text(textwrap.dedent(HANDLER))
    path = directory / "shakedown.toml"
    path.write_text(textwrap.dedent(f"""
        [services.aws]
        kind = "aws"
        services = ["lambda", "ec2"]
        [services.aws.functions.warm]
        handler = "fn.handler"
        code = "code"
        [services.aws.functions.cold]
        handler = "fn.handler"
        code = "code"
        [services.aws.amis."{AMI}"]
        command = ["{sys.executable}", "-P", "-c", "{CONNECT_BACK}"]
        env = {{ BENCH_PORT = "{listen_port}" }}
        """))
    return path


class Connection:
    """One keep-alive HTTP connection; ``post`` returns the seconds a round trip took."""

    def __init__(self, port: int) -> None:
        self.http = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[float, bytes]:
        began = time.perf_counter()
        self.http.request("POST", path, body=body, headers=headers)
        response = self.http.getresponse()
        data = response.read()
        seconds = time.perf_counter() - began
        if response.status >= 300:
            raise SystemExit(f"POST {path} -> {response.status}: {data[:300]!r}")
        return seconds, data


def invoke_headers() -> dict[str, str]:
    return {"Authorization": AUTH.format("lambda"), "Content-Type": "application/json"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--warm-calls", type=int, default=200)
    args = parser.parse_args()
    run(args.runs, args.warm_calls)


def run(runs: int, warm_calls: int) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    directory = Path(tempfile.mkdtemp(prefix="shakedown-bench-compute-"))
    # A runtime root of its own: the reaper of another run on this machine never meets it.
    os.environ["SHAKEDOWN_RUNTIME_DIR"] = tempfile.mkdtemp(prefix="shakedown-bench-root-",
                                                           dir="/dev/shm")
    env = Environment.from_file(topology(directory, listener.getsockname()[1])).up()
    peer = subprocess.Popen([sys.executable, "-P", "-c", PEER_SERVER, str(directory / "code")],
                            stdout=subprocess.PIPE)
    try:
        aws = env["aws"]
        assert isinstance(aws, AwsService)
        assert peer.stdout is not None
        peer_port = int(peer.stdout.readline())
        print(f"aws compute, {runs} runs, interleaved ({os.cpu_count()} cores)")
        warm(aws, peer_port, warm_calls)
        cold(aws, directory / "code", runs)
        ec2(aws, listener, runs)
    except BaseException:
        print(f"the emulator's log ({env['aws'].status()}):\n{env['aws'].log_tail(30)}")
        raise
    finally:
        peer.terminate()
        peer.wait(10)
        env.down()
        listener.close()


def warm(aws: AwsService, peer_port: int, calls: int) -> None:
    ours, theirs = Connection(aws.port), Connection(peer_port)
    path = "/2015-03-31/functions/warm/invocations"
    for _ in range(20):  # warm both: worker started, connections open, code paths run
        ours.post(path, b'{"n": 0}', invoke_headers())
        theirs.post("/", b'{"n": 0}', {"Content-Type": "application/json"})
    samples: dict[str, list[float]] = {"ours": [], "peer": []}
    for n in range(calls):
        body = json.dumps({"n": n}).encode()
        seconds, data = ours.post(path, body, invoke_headers())
        assert json.loads(data) == {"ok": True, "n": n}, data
        samples["ours"].append(seconds)
        seconds, data = theirs.post("/", body, {"Content-Type": "application/json"})
        samples["peer"].append(seconds)
    mine = repeat("warm Invoke (raw HTTP, keep-alive)", calls, iter(samples["ours"]).__next__)
    peer = repeat("peer: handler behind a local HTTP server", calls,
                  iter(samples["peer"]).__next__)
    client = aws.client("lambda")
    boto = []
    for n in range(50):
        began = time.perf_counter()
        client.invoke(FunctionName="warm", Payload=json.dumps({"n": n}))["Payload"].read()
        boto.append(time.perf_counter() - began)
    repeat("warm Invoke through boto3 (for reference)", len(boto), iter(boto).__next__)
    print(verdict("warm invoke / local HTTP hop, median", mine.median / peer.median, 2.0))


def cold(aws: AwsService, code: Path, runs: int) -> None:
    http = Connection(aws.port)
    path = "/2015-03-31/functions/cold/invocations"
    ours: list[float] = []
    theirs: list[float] = []
    for _ in range(runs + 1):
        if aws.workers("cold"):
            aws.kill("lambda:cold")
        seconds, _ = http.post(path, b"{}", invoke_headers())
        ours.append(seconds)
        began = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-P", "-c", PEER_COLD, str(code)],
                                stdout=subprocess.PIPE)
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        theirs.append(time.perf_counter() - began)
        proc.wait(10)
    ours, theirs = ours[1:], theirs[1:]  # the first of each warms the page cache
    mine = repeat("cold Invoke (worker spawned, handler imported)", runs, iter(ours).__next__)
    peer = repeat("peer: spawn python + import the handler", runs, iter(theirs).__next__)
    print(verdict("cold start / spawn + import by hand, median", mine.median / peer.median,
                  1.5))


def ec2(aws: AwsService, listener: socket.socket, runs: int) -> None:
    http = Connection(aws.port)
    form = f"Action=RunInstances&Version=2016-11-15&ImageId={AMI}&MinCount=1&MaxCount=1"
    headers = {"Authorization": AUTH.format("ec2"),
               "Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
    command = aws.spec.amis[AMI].command
    env = {**os.environ, "BENCH_PORT": str(listener.getsockname()[1])}
    ours: list[float] = []
    theirs: list[float] = []

    def connected(began: float) -> float:
        conn, _ = listener.accept()
        conn.recv(1)
        conn.close()
        return time.perf_counter() - began

    for _ in range(runs + 1):
        began = time.perf_counter()
        http.post("/", form.encode(), headers)
        ours.append(connected(began))
        began = time.perf_counter()
        proc = subprocess.Popen(list(command), env=env, start_new_session=True)
        theirs.append(connected(began))
        proc.wait(10)
    ours, theirs = ours[1:], theirs[1:]
    mine = repeat("RunInstances -> the instance's command connects", runs, iter(ours).__next__)
    peer = repeat("peer: spawn the command -> it connects", runs, iter(theirs).__next__)
    print(verdict("RunInstances -> ready / spawn by hand, median", mine.median / peer.median,
                  1.2))
    deadline = time.monotonic() + 30
    while aws.instances("running") and time.monotonic() < deadline:
        time.sleep(0.05)


if __name__ == "__main__":
    main()
