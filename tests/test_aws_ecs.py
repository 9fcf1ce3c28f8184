"""ECS in the ``aws`` kind, against the real emulator, boto3, real task processes and a real
HAProxy router: services scaled 0 -> 2 -> 0, a killed task replaced (stoppedReason, exit
code, service events), health gating of RUNNING, StopTask's timeout ending in SIGKILL, a
volume that outlives a scale to zero, a router that follows the tasks, an unmapped image
(ECS's failure), the capacity limit, no orphaned task, the history's task events."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import textwrap
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from tests.bounds import hang_bound

from shakedown.checkers import no_orphans
from shakedown.environment import Environment
from shakedown.process import kill_tagged, tagged_processes
from shakedown.services import AwsService

HANG = hang_bound(40.0)

TOPOLOGY = """
    [services.aws]
    kind = "aws"
    services = ["ecs", "cloudwatch", "ses"]
    ecs = { max_tasks = 4 }
    [services.aws.volumes.workspace]

    [services.aws.images."web:1"]
    command = ["{python}", "web.py"]
    cwd = "code"
    env = { DATA = "{mount:/data}", ME = "{task_id}" }
    ready = { http = "/health", check_interval = "0.2s", retries = 2 }
    stop_timeout = 5

    [services.aws.images."stubborn"]
    command = ["{python}", "web.py", "--ignore-term"]
    cwd = "code"

    [services.lb]
    kind = "router"
    [[services.lb.routes]]
    prefix = "/app"
    strip_prefix = true
    health = "/health"
    tasks = { from = "aws", cluster = "default", service = "web", container_port = 8080 }
    """

WEB = '''
import json, os, signal, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

if "--ignore-term" in sys.argv:
    signal.signal(signal.SIGTERM, lambda *_: print("ignoring SIGTERM", flush=True))
else:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
data = Path(os.environ.get("DATA") or ".")
gate = os.environ.get("HEALTH_GATE")


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        url = urlparse(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        status, body = 200, {"task": os.environ.get("ME"), "pid": os.getpid()}
        if url.path == "/health":
            if gate and not Path(gate).exists():
                status = 503
        elif url.path == "/write":
            (data / query["name"]).write_text(query["text"])
        elif url.path == "/read":
            path = data / query["name"]
            body["text"] = path.read_text() if path.exists() else None
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
'''


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Environment]:
    root = Path("/dev/shm") / f"shakedown-test-{uuid.uuid4().hex[:8]}"
    root.mkdir(mode=0o755)
    directory = tmp_path_factory.mktemp("aws-ecs")
    (directory / "code").mkdir()
    (directory / "code" / "web.py").write_text(WEB)
    (directory / "shakedown.toml").write_text(textwrap.dedent(TOPOLOGY))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SHAKEDOWN_RUNTIME_DIR", str(root))
        env = Environment.from_file(directory / "shakedown.toml").up()
    try:
        yield env
    finally:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("SHAKEDOWN_RUNTIME_DIR", str(root))
            env.down()
            leaked = tagged_processes(root=root)
            for env_id in set(leaked.values()):
                kill_tagged(env_id)
        shutil.rmtree(root, ignore_errors=True)
        assert not leaked, f"processes leaked: {leaked}"


@pytest.fixture
def aws(shared: Environment) -> Iterator[AwsService]:
    service = shared["aws"]
    assert isinstance(service, AwsService)
    yield service
    ecs = service.client("ecs")
    for arn in ecs.list_services(cluster="default")["serviceArns"]:
        ecs.delete_service(cluster="default", service=arn, force=True)
    for arn in ecs.list_tasks(cluster="default")["taskArns"]:
        ecs.stop_task(cluster="default", task=arn)
    wait_for(lambda: all(t["state"] == "STOPPED" for t in service.tasks()), "all stopped")
    result = no_orphans(None, compute=service)
    assert result, str(result)
    service.reset()


def wait_for(check: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + HANG
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what}: not after {HANG}s"
        time.sleep(0.02)


def register(aws: AwsService, image: str = "web:1", family: str = "web",
             **container: Any) -> str:
    definition = {"name": "app", "image": image, "memory": 128,
                  "portMappings": [{"containerPort": 8080}],
                  "mountPoints": [{"sourceVolume": "workspace", "containerPath": "/data"}],
                  **container}
    answer = aws.client("ecs").register_task_definition(
        family=family, containerDefinitions=[definition],
        volumes=[{"name": "workspace"}])
    return str(answer["taskDefinition"]["taskDefinitionArn"])


def get(port: int, path: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as answer:
        data: dict[str, Any] = json.loads(answer.read())
        return data


def described(aws: AwsService, arns: list[str]) -> list[dict[str, Any]]:
    tasks: list[dict[str, Any]] = aws.client("ecs").describe_tasks(
        cluster="default", tasks=arns)["tasks"]
    return tasks


def running_of(aws: AwsService, service: str, count: int,
               excluding: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Once the service's tasks are ``count`` running ones, none of them in ``excluding``."""
    ecs = aws.client("ecs")

    def check() -> list[dict[str, Any]] | None:
        arns = ecs.list_tasks(cluster="default", serviceName=service)["taskArns"]
        tasks = described(aws, arns) if arns else []
        running = [t for t in tasks if t["lastStatus"] == "RUNNING"
                   and t["taskArn"] not in excluding]
        return running if len(running) == count == len(tasks) else None

    return list(wait_for(check, f"{count} running tasks of {service}"))


def events(aws: AwsService, service: str) -> list[str]:
    answer = aws.client("ecs").describe_services(cluster="default", services=[service])
    return [e["message"] for e in answer["services"][0]["events"]]


def test_service_scales_from_zero_to_two_and_back_to_zero(aws: AwsService) -> None:
    ecs = aws.client("ecs")
    definition = register(aws)
    ecs.create_service(cluster="default", serviceName="web", taskDefinition=definition,
                       desiredCount=0)
    assert ecs.list_tasks(cluster="default", serviceName="web")["taskArns"] == []
    ecs.update_service(cluster="default", service="web", desiredCount=2)
    tasks = running_of(aws, "web", 2)
    ports = set()
    for task in tasks:
        [container] = task["containers"]
        [binding] = container["networkBindings"]
        assert binding["containerPort"] == 8080 and binding["bindIP"] == "127.0.0.1"
        assert task["healthStatus"] == "HEALTHY" and task["group"] == "service:web"
        assert get(binding["hostPort"], "/health")["task"] == task["taskArn"].split("/")[-1]
        ports.add(binding["hostPort"])
    assert len(ports) == 2
    service = ecs.describe_services(cluster="default", services=["web"])["services"][0]
    assert service["runningCount"] == 2 and service["pendingCount"] == 0
    assert any(m.startswith("(service web) has started 2 tasks") for m in events(aws, "web"))
    wait_for(lambda: "(service web) has reached a steady state." in events(aws, "web"),
             "steady state")
    ecs.update_service(cluster="default", service="web", desiredCount=0)
    arns = [t["taskArn"] for t in tasks]
    stopped = wait_for(lambda: [t for t in described(aws, arns) if t["lastStatus"] ==
                                "STOPPED"] if all(t["lastStatus"] == "STOPPED" for t in
                                                  described(aws, arns)) else None, "stopped")
    for task in stopped:
        assert task["stopCode"] == "ServiceSchedulerInitiated"
        assert task["stoppedReason"].startswith("Scaling activity initiated by (deployment ")
        assert task["containers"][0]["exitCode"] == 0  # it exits on SIGTERM
    assert any(m.startswith("(service web) has stopped 2 running tasks")
               for m in events(aws, "web"))
    assert ecs.list_tasks(cluster="default", serviceName="web")["taskArns"] == []
    assert len(ecs.list_tasks(cluster="default", desiredStatus="STOPPED")["taskArns"]) == 2
    states = [e["state"] for e in aws.compute_events() if e["type"] == "ecs.task"]
    assert {"PROVISIONING", "PENDING", "RUNNING", "STOPPING", "STOPPED"} <= set(states)


def test_a_killed_task_is_replaced_with_its_exit_code_and_reason(aws: AwsService) -> None:
    ecs = aws.client("ecs")
    ecs.create_service(cluster="default", serviceName="web", taskDefinition=register(aws),
                       desiredCount=1)
    [first] = running_of(aws, "web", 1)
    [task] = aws.tasks("RUNNING", service="web")
    assert f"task:{task['task_id']}" in aws.roles()
    os.killpg(task["containers"][0]["pgid"], signal.SIGKILL)
    [second] = running_of(aws, "web", 1, excluding=(first["taskArn"],))
    [dead] = described(aws, [first["taskArn"]])
    assert dead["lastStatus"] == "STOPPED" and dead["stopCode"] == "EssentialContainerExited"
    assert dead["stoppedReason"] == "Essential container in task exited"
    assert dead["containers"][0]["exitCode"] == 137
    replaced = second["taskArn"].split("/")[-1]
    assert f"(service web) has started 1 tasks: (task {replaced})." in events(aws, "web")


def test_running_waits_for_the_health_check(aws: AwsService, tmp_path: Path) -> None:
    ecs = aws.client("ecs")
    gate = tmp_path / "healthy"
    definition = register(aws, environment=[{"name": "HEALTH_GATE", "value": str(gate)}])
    [task] = ecs.run_task(cluster="default", taskDefinition=definition)["tasks"]
    assert task["lastStatus"] == "PROVISIONING"

    def pending() -> dict[str, Any] | None:
        [now] = described(aws, [task["taskArn"]])
        bindings = now["containers"][0].get("networkBindings") or []
        return now if now["lastStatus"] == "PENDING" and bindings else None

    now = wait_for(pending, "PENDING")
    port = now["containers"][0]["networkBindings"][0]["hostPort"]
    wait_for(lambda: _answers(port), "the process answers")
    time.sleep(0.3)  # answering, but not healthy: still PENDING
    [now] = described(aws, [task["taskArn"]])
    assert now["lastStatus"] == "PENDING" and now["healthStatus"] == "UNKNOWN"
    gate.write_text("ok")
    wait_for(lambda: described(aws, [task["taskArn"]])[0]["lastStatus"] == "RUNNING",
             "RUNNING once healthy")
    assert described(aws, [task["taskArn"]])[0]["healthStatus"] == "HEALTHY"
    gate.unlink()  # unhealthy while running: retries = 2, checked every 0.2 s
    wait_for(lambda: described(aws, [task["taskArn"]])[0]["lastStatus"] == "STOPPED",
             "stopped as unhealthy")
    assert described(aws, [task["taskArn"]])[0]["stoppedReason"] == \
        "Task failed container health checks"


def _answers(port: int) -> bool:
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).close()
    except OSError:
        return False
    return True


def test_stop_task_kills_after_the_stop_timeout(aws: AwsService) -> None:
    ecs = aws.client("ecs")
    definition = register(aws, image="stubborn", family="stubborn", stopTimeout=1)
    [task] = ecs.run_task(cluster="default", taskDefinition=definition)["tasks"]
    wait_for(lambda: described(aws, [task["taskArn"]])[0]["lastStatus"] == "RUNNING",
             "RUNNING")
    began = time.monotonic()
    stopping = ecs.stop_task(cluster="default", task=task["taskArn"], reason="enough")["task"]
    assert stopping["desiredStatus"] == "STOPPED" and stopping["lastStatus"] == "STOPPING"
    wait_for(lambda: described(aws, [task["taskArn"]])[0]["lastStatus"] == "STOPPED",
             "STOPPED")
    assert time.monotonic() - began >= 1.0
    [done] = described(aws, [task["taskArn"]])
    assert done["stopCode"] == "UserInitiated" and done["stoppedReason"] == "enough"
    assert done["containers"][0]["exitCode"] == 137
    log = Path(aws.tasks()[0]["containers"][0]["log"]).read_text()
    assert "ignoring SIGTERM" in log


def test_volume_outlives_a_scale_to_zero(aws: AwsService) -> None:
    ecs = aws.client("ecs")
    ecs.create_service(cluster="default", serviceName="web", taskDefinition=register(aws),
                       desiredCount=1)
    [task] = running_of(aws, "web", 1)
    port = task["containers"][0]["networkBindings"][0]["hostPort"]
    get(port, "/write?name=notes.txt&text=kept")
    ecs.update_service(cluster="default", service="web", desiredCount=0)
    wait_for(lambda: not aws.tasks("RUNNING"), "scaled to zero")
    ecs.update_service(cluster="default", service="web", desiredCount=1)
    [again] = running_of(aws, "web", 1)
    assert again["taskArn"] != task["taskArn"]
    port = again["containers"][0]["networkBindings"][0]["hostPort"]
    assert get(port, "/read?name=notes.txt")["text"] == "kept"
    assert (aws.volumes()["workspace"].path / "notes.txt").read_text() == "kept"


def test_router_follows_the_tasks_of_the_service(aws: AwsService,
                                                 shared: Environment) -> None:
    ecs = aws.client("ecs")
    router = shared["lb"]
    ecs.create_service(cluster="default", serviceName="web", taskDefinition=register(aws),
                       desiredCount=0)
    url = f"http://{router.host}:{router.port}/app/health"
    wait_for(lambda: _status(url) == 503, "503 without a task")
    ecs.update_service(cluster="default", service="web", desiredCount=2)
    tasks = {t["taskArn"].split("/")[-1] for t in running_of(aws, "web", 2)}
    seen: set[str] = set()
    deadline = time.monotonic() + HANG
    while seen != tasks and time.monotonic() < deadline:
        # one request a round: two would alternate between the two servers in step
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=5) as answer:
            seen.add(json.loads(answer.read())["task"])
        time.sleep(0.02)
    assert seen == tasks
    ecs.update_service(cluster="default", service="web", desiredCount=0)
    wait_for(lambda: _status(url) == 503, "503 again once scaled to zero")


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


def test_unmapped_image_is_ecs_failure(aws: AwsService) -> None:
    ecs = aws.client("ecs")
    definition = register(aws, image="nginx:latest", family="nginx")
    answer = ecs.run_task(cluster="default", taskDefinition=definition)
    assert answer["tasks"] == []
    [failure] = answer["failures"]
    assert failure["reason"] == "CannotPullContainerError"
    assert "services.aws.images.\"nginx:latest\"" in failure["detail"]
    ecs.create_service(cluster="default", serviceName="nginx", taskDefinition=definition,
                       desiredCount=1)
    wait_for(lambda: any("CannotPullContainerError" in m for m in events(aws, "nginx")),
             "the service's event")
    assert aws.tasks(service="nginx") == []


def test_capacity_limit_is_a_clear_error(aws: AwsService) -> None:
    ecs = aws.client("ecs")
    definition = register(aws)
    with pytest.raises(ClientError) as raised:
        ecs.create_service(cluster="default", serviceName="web", taskDefinition=definition,
                           desiredCount=5)
    error = raised.value.response["Error"]
    assert error["Code"] == "InvalidParameterException"
    assert "ecs.max_tasks" in error["Message"] and "4 tasks" in error["Message"]
    ecs.create_service(cluster="default", serviceName="web", taskDefinition=definition,
                       desiredCount=3)
    running_of(aws, "web", 3)
    answer = ecs.run_task(cluster="default", taskDefinition=definition, count=2)
    assert len(answer["tasks"]) == 1 and len(answer["failures"]) == 1
    assert answer["failures"][0]["reason"].startswith("Capacity is unavailable")
    with pytest.raises(ClientError):
        ecs.update_service(cluster="default", service="web", desiredCount=9)


def test_orphaned_task_is_found_and_history_records_tasks(aws: AwsService,
                                                          shared: Environment) -> None:
    ecs = aws.client("ecs")
    [task] = ecs.run_task(cluster="default", taskDefinition=register(aws))["tasks"]
    wait_for(lambda: described(aws, [task["taskArn"]])[0]["lastStatus"] == "RUNNING",
             "RUNNING")
    result = no_orphans(None, compute=aws)
    assert not result and "ECS task" in str(result)
    ecs.stop_task(cluster="default", task=task["taskArn"])
    wait_for(lambda: described(aws, [task["taskArn"]])[0]["lastStatus"] == "STOPPED",
             "STOPPED")
    assert no_orphans(None, compute=aws)
    from shakedown.history import History

    history = History(origin=time.time() - 600)
    assert aws.record_compute(history) > 0
    task_id = task["taskArn"].split("/")[-1]
    ops = [op for op in history.ops() if op.f == "ecs.task" and op.value["task_id"] == task_id]
    assert [op.value["state"] for op in ops][-1] == "STOPPED"


def test_put_metric_data_is_readable_and_in_the_history(aws: AwsService) -> None:
    from shakedown.history import History

    cloudwatch = aws.client("cloudwatch")
    cloudwatch.put_metric_data(Namespace="Preview", MetricData=[
        {"MetricName": "ColdStart", "Value": 1.5, "Unit": "Seconds",
         "Dimensions": [{"Name": "Service", "Value": "edit"}]},
        {"MetricName": "Sessions", "Values": [1, 2], "Unit": "Count"}])
    cloudwatch.put_metric_data(Namespace="Other", MetricData=[{"MetricName": "X", "Value": 0}])
    [cold] = aws.metrics("Preview", "ColdStart")
    assert cold["values"] == [1.5] and cold["unit"] == "Seconds"
    assert cold["dimensions"] == {"Service": "edit"}
    assert [m["name"] for m in aws.metrics("Preview")] == ["ColdStart", "Sessions"]
    assert len(aws.metrics()) == 3
    history = History(origin=time.time() - 600)
    aws.record_compute(history)
    put = [op.value for op in history.ops() if op.f == "cloudwatch.metric"]
    assert {"name": "Sessions", "values": [1.0, 2.0]}.items() <= put[-2].items()


def test_outbound_mail_is_captured(aws: AwsService) -> None:
    ses = aws.client("ses")
    ses.verify_email_identity(EmailAddress="preview@example.com")
    ses.send_email(Source="preview@example.com", Destination={"ToAddresses": ["u@example.com"]},
                   Message={"Subject": {"Data": "Your preview"},
                            "Body": {"Text": {"Data": "http://preview/session/1"}}})
    ses.send_raw_email(Source="preview@example.com", Destinations=["v@example.com"],
                       RawMessage={"Data": b"Subject: raw\r\n\r\nhello raw"})
    plain, raw = aws.sent_emails()
    assert plain["source"] == "preview@example.com" and plain["subject"] == "Your preview"
    assert plain["destinations"]["ToAddresses"] == ["u@example.com"]
    assert "http://preview/session/1" in str(plain["body"])
    assert "hello raw" in raw["raw"]


@pytest.mark.parametrize(("text", "expected"), [
    ('services = ["s3"]\n[services.aws.images."web:1"]\ncommand = ["true"]',
     "images run on ecs but services does not list 'ecs'"),
    ('services = ["ecs"]\n[services.aws.images."web:1"]\ncommand = ["x", "{prot}"]',
     "unknown template {prot}"),
    ('services = ["ecs"]\n[services.aws.images."web:1"]\ncommand = ["true"]\n'
     'ready = { http = "/h", tcp = true }', "give exactly one readiness check"),
    ('services = ["ecs"]\n[services.aws.images."bad image"]\ncommand = ["true"]',
     "'bad image' is not a container image reference"),
    ('services = ["ecs"]\n[services.aws.volumes."a/b"]\n', "volume name 'a/b'"),
])
def test_bad_ecs_topology_is_a_clear_error(
    write_topology: Callable[..., Path], text: str, expected: str
) -> None:
    from shakedown.errors import TopologyError

    path = write_topology(f'[services.aws]\nkind = "aws"\n{text}\n')
    with pytest.raises(TopologyError) as caught:
        Environment.from_file(path)
    assert expected in str(caught.value), str(caught.value)


def test_missing_image_command_fails_up_and_leaves_nothing_running(
    write_topology: Callable[..., Path]
) -> None:
    from shakedown.errors import TopologyError

    path = write_topology('[services.aws]\nkind = "aws"\nservices = ["ecs"]\n'
                          '[services.aws.images."web:1"]\ncommand = ["no-such-task-binary"]\n')
    env = Environment.from_file(path)
    with pytest.raises(TopologyError) as caught:
        env.up()
    assert "services.aws.images.'web:1'.command: 'no-such-task-binary' not found" in \
        caught.value.what and any("install it" in f for f in caught.value.fix)
    assert not tagged_processes(env.env_id)
