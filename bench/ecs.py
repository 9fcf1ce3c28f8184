"""ECS benchmark (issue #15): ``UpdateService`` 0 -> 1 until the task is RUNNING and healthy,
beside the floor measured in the same run, interleaved sample by sample: spawning the same
command by hand and polling its health check (the same HTTP GET, at the same 10 ms interval)
until it passes. Target: within 1.2x.

    python bench/ecs.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Figures, verdict

SERVER = '''
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
'''

TOPOLOGY = """
    [services.aws]
    kind = "aws"
    services = ["ecs"]
    [services.aws.images."web:1"]
    command = ["{python}", "server.py"]
    cwd = "."
    ready = { http = "/health", interval = "10ms" }
    stop_timeout = 5
    """


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as answer:
            return int(answer.status) == 200
    except OSError:
        return False


def by_hand(directory: Path) -> float:
    from shakedown.awsemu._ecs_tasks import free_port

    port = free_port("127.0.0.1")
    began = time.perf_counter()
    child = subprocess.Popen([sys.executable, "server.py"], cwd=directory,
                             env={**os.environ, "PORT": str(port)}, start_new_session=True)
    while not healthy(port):
        time.sleep(0.01)
    took = time.perf_counter() - began
    child.terminate()
    child.wait(10)
    return took


def scale_up(aws: object, ecs: object) -> float:
    began = time.perf_counter()
    ecs.update_service(cluster="default", service="web", desiredCount=1)  # type: ignore[attr-defined]
    while not aws.tasks("RUNNING", service="web"):  # type: ignore[attr-defined]
        time.sleep(0.005)
    took = time.perf_counter() - began
    ecs.update_service(cluster="default", service="web", desiredCount=0)  # type: ignore[attr-defined]
    while any(t["state"] != "STOPPED" for t in aws.tasks(service="web")):  # type: ignore[attr-defined]
        time.sleep(0.01)
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    from shakedown.environment import Environment

    directory = Path(tempfile.mkdtemp(prefix="shakedown-bench-ecs-"))
    os.environ["SHAKEDOWN_RUNTIME_DIR"] = tempfile.mkdtemp(prefix="shakedown-bench-root-",
                                                           dir="/dev/shm")
    (directory / "server.py").write_text(SERVER)
    (directory / "shakedown.toml").write_text(textwrap.dedent(TOPOLOGY))
    env = Environment.from_file(directory / "shakedown.toml").up()
    try:
        aws = env["aws"]
        ecs = aws.client("ecs")  # type: ignore[attr-defined]
        arn = ecs.register_task_definition(family="web", containerDefinitions=[{
            "name": "web", "image": "web:1", "memory": 128,
            "portMappings": [{"containerPort": 8080}]}])["taskDefinition"]["taskDefinitionArn"]
        ecs.create_service(cluster="default", serviceName="web", taskDefinition=arn,
                           desiredCount=0)
        by_hand(directory)  # warm the page cache for both
        mine, floor = Figures("UpdateService 0->1 to RUNNING+healthy", []), \
            Figures("spawn by hand until healthy (floor)", [])
        for _ in range(args.runs):
            floor.samples.append(by_hand(directory))
            mine.samples.append(scale_up(aws, ecs))
        print(floor.line())
        print(mine.line())
        print(verdict("UpdateService 0->1 / spawn by hand, median",
                      mine.median / floor.median, 1.2))
    finally:
        env.down()
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
