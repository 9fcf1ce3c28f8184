"""Compute in the ``aws`` kind, against the real emulator, boto3 and real worker processes:
Lambda functions declared in the topology and created through ``CreateFunction`` (context,
errors, timeouts, warm and cold workers, reserved concurrency, Event and DryRun, logs), EC2
instances of mapped AMIs (metadata service, user data, self-termination, TerminateInstances,
exit), faults on their processes, the no-orphans check, history, and bad input."""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import textwrap
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from shakedown.checkers import no_orphans
from shakedown.environment import Environment
from shakedown.errors import TopologyError
from shakedown.history import History
from shakedown.process import kill_tagged, pid_alive, tagged_processes
from shakedown.services import AwsService

NO_RETRIES = Config(retries={"total_max_attempts": 1, "mode": "standard"}, read_timeout=30)
AMI = "ami-0123456789abcdef0"
HANG = 30.0  # seconds: a generous bound on anything that should happen at once

TOPOLOGY = f"""
    [services.aws]
    kind = "aws"
    services = ["lambda", "ec2", "dynamodb", "iam"]
    [[services.aws.resources.tables]]
    name = "marks"
    hash_key = "id"

    [services.aws.functions.echo]
    handler = "fns.echo"
    code = "code"
    timeout = 2
    memory = 256
    env = {{ GREETING = "hi" }}

    [services.aws.functions.sleepy]
    handler = "fns.sleepy"
    code = "code"
    timeout = 1

    [services.aws.functions.single]
    handler = "fns.sleepy"
    code = "code"
    timeout = 5
    reserved_concurrency = 1

    [services.aws.functions.marker]
    handler = "fns.mark"
    code = "code"

    [services.aws.functions.broken-import]
    handler = "broken.handler"
    code = "code"

    [services.aws.amis."{AMI}"]
    command = ["{{python}}", "instance.py"]
    cwd = "code"
    stop_timeout = 5
    """

FUNCTIONS = '''
import json, os, time
import boto3

COLD = time.time()


def echo(event, context):
    if event.get("fail"):
        raise ValueError("asked to fail: " + str(event["fail"]))
    print("echo", json.dumps(event))
    return {"event": event, "request_id": context.aws_request_id,
            "function_name": context.function_name, "arn": context.invoked_function_arn,
            "memory": context.memory_limit_in_mb, "log_group": context.log_group_name,
            "log_stream": context.log_stream_name,
            "remaining": context.get_remaining_time_in_millis(),
            "greeting": os.environ.get("GREETING"), "pid": os.getpid(), "cold": COLD}


def sleepy(event, context):
    time.sleep(event.get("seconds", 0))
    return {"pid": os.getpid()}


def mark(event, context):
    boto3.client("dynamodb").put_item(TableName="marks", Item={"id": {"S": event["id"]}})
    return "marked"
'''

BROKEN = '''
raise RuntimeError("cannot configure: no DATABASE_URL")
'''

INSTANCE = '''
import json, os, signal, sys, time, urllib.request

import boto3

ENDPOINT = os.environ["AWS_EC2_METADATA_SERVICE_ENDPOINT"]


def imds(path, token, method="GET", headers=None):
    request = urllib.request.Request(ENDPOINT + path, method=method, headers=headers or {})
    if token:
        request.add_header("X-aws-ec2-metadata-token", token)
    with urllib.request.urlopen(request, timeout=10) as answer:
        return answer.read().decode()


token = imds("latest/api/token", None, "PUT", {"X-aws-ec2-metadata-token-ttl-seconds": "60"})
instance_id = imds("latest/meta-data/instance-id", token)
region = imds("latest/meta-data/placement/region", token)
job = json.loads(imds("latest/user-data", token))
role = imds("latest/meta-data/iam/security-credentials/", token)
print(json.dumps({"instance_id": instance_id, "region": region, "job": job, "role": role,
                  "has_key": "AWS_ACCESS_KEY_ID" in os.environ}), flush=True)
ec2 = boto3.client("ec2", region_name=region)  # credentials: from the metadata service
mode = job["mode"]
if mode == "self-terminate":
    state = ec2.describe_instances(InstanceIds=[instance_id])
    print("state", state["Reservations"][0]["Instances"][0]["State"]["Name"], flush=True)
    ec2.terminate_instances(InstanceIds=[instance_id])
    time.sleep(60)
elif mode == "serve":
    signal.signal(signal.SIGTERM, lambda *_: (print("got SIGTERM", flush=True), sys.exit(0)))
    while True:
        time.sleep(0.05)
elif mode == "exit":
    sys.exit(3)
'''


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Environment]:
    root = Path("/dev/shm") / f"shakedown-test-{uuid.uuid4().hex[:8]}"
    root.mkdir(mode=0o755)
    directory = tmp_path_factory.mktemp("aws-compute")
    (directory / "code").mkdir()
    (directory / "code" / "fns.py").write_text(FUNCTIONS)
    (directory / "code" / "broken.py").write_text(BROKEN)
    (directory / "code" / "instance.py").write_text(INSTANCE)
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
    service.clear_rules()
    service.reset()
    result = no_orphans(None, compute=service)
    assert result, str(result)
    declared = set(service.spec.functions)
    assert {w["function"] for w in service.workers()} <= declared  # the others are gone


def invoke(aws: AwsService, name: str, event: Any = None, **kwargs: Any) -> dict[str, Any]:
    client = aws.client("lambda", config=NO_RETRIES)
    answer: dict[str, Any] = client.invoke(FunctionName=name,
                                           Payload=json.dumps(event or {}), **kwargs)
    answer["body"] = json.loads(answer["Payload"].read() or b"null")
    return answer


def wait_for(check: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + HANG
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what}: not after {HANG}s"
        time.sleep(0.02)


# -- Lambda --------------------------------------------------------------------------------
def test_declared_function_runs_in_a_native_worker_with_a_lambda_context(
    aws: AwsService,
) -> None:
    first = invoke(aws, "echo", {"n": 1}, LogType="Tail")
    assert first["StatusCode"] == 200 and "FunctionError" not in first
    body = first["body"]
    request_id = first["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    assert body["event"] == {"n": 1} and body["request_id"] == request_id
    assert body["function_name"] == "echo"
    assert body["arn"] == "arn:aws:lambda:us-east-1:123456789012:function:echo"
    assert body["memory"] == "256" and body["log_group"] == "/aws/lambda/echo"
    assert "[$LATEST]" in body["log_stream"] and body["greeting"] == "hi"
    assert 0 < body["remaining"] <= 2000
    assert body["pid"] not in aws.pids and pid_alive(body["pid"])
    tail = base64.b64decode(first["LogResult"]).decode()
    assert tail.startswith(f"START RequestId: {request_id} Version: $LATEST\n")
    assert 'echo {"n": 1}' in tail and f"END RequestId: {request_id}" in tail
    assert f"REPORT RequestId: {request_id}\tDuration: " in tail and "Init Duration" in tail
    # Warm: the same worker, no new import.
    second = invoke(aws, "echo", {"n": 2})["body"]
    assert second["pid"] == body["pid"] and second["cold"] == body["cold"]
    assert "lambda:echo" in aws.roles() and aws.roles()[0] == "moto"
    [worker] = aws.workers("echo")
    assert worker["pid"] == body["pid"] and worker["invocations"] == 2
    log = aws.log_paths()["lambda/echo"].read_text()
    assert log.count("START RequestId:") >= 2 and log.count("REPORT RequestId:") >= 2
    assert log.index(f"START RequestId: {request_id}") < log.index('echo {"n": 1}') \
        < log.index(f"END RequestId: {request_id}")


def test_handler_error_is_lambdas_unhandled_error_shape(aws: AwsService) -> None:
    answer = invoke(aws, "echo", {"fail": "please"})
    assert answer["StatusCode"] == 200 and answer["FunctionError"] == "Unhandled"
    error = answer["body"]
    assert error["errorType"] == "ValueError"
    assert error["errorMessage"] == "asked to fail: please"
    assert any("fns.py" in frame and "in echo" in frame for frame in error["stackTrace"])
    assert "[ERROR] ValueError: asked to fail: please" in aws.log_paths()["lambda/echo"] \
        .read_text()
    assert invoke(aws, "echo", {"n": 3})["body"]["event"] == {"n": 3}  # the worker lives on


def test_timeout_kills_the_worker_and_the_next_call_starts_cold(aws: AwsService) -> None:
    pid = invoke(aws, "sleepy")["body"]["pid"]
    answer = invoke(aws, "sleepy", {"seconds": 10})
    assert answer["FunctionError"] == "Unhandled"
    assert answer["body"]["errorType"] == "Sandbox.Timedout"
    assert answer["body"]["errorMessage"].endswith("Task timed out after 1.00 seconds")
    wait_for(lambda: not pid_alive(pid), "the timed-out worker stopped")
    log = aws.log_paths()["lambda/sleepy"].read_text()
    assert "Task timed out after 1.00 seconds" in log and "Status: timeout" in log
    assert invoke(aws, "sleepy")["body"]["pid"] != pid


def test_concurrent_invocations_cold_start_new_workers(aws: AwsService) -> None:
    results: list[dict[str, Any]] = []
    threads = [threading.Thread(target=lambda: results.append(
        invoke(aws, "sleepy", {"seconds": 0.5})["body"])) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(HANG)
    assert len({r["pid"] for r in results}) == 2, results
    assert len(aws.workers("sleepy")) == 2


def test_reserved_concurrency_throttles_with_too_many_requests(aws: AwsService) -> None:
    busy = threading.Thread(target=invoke, args=(aws, "single", {"seconds": 1.5}))
    busy.start()
    wait_for(lambda: any(w["busy"] for w in aws.workers("single")), "first invocation runs")
    with pytest.raises(ClientError) as caught:
        invoke(aws, "single")
    error = caught.value.response
    assert error["Error"]["Code"] == "TooManyRequestsException"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert error["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
    busy.join(HANG)
    assert invoke(aws, "single")["StatusCode"] == 200


def test_event_invocation_runs_later_and_dry_run_runs_nothing(aws: AwsService) -> None:
    lam = aws.client("lambda", config=NO_RETRIES)
    dry = lam.invoke(FunctionName="marker", InvocationType="DryRun",
                     Payload=json.dumps({"id": "dry"}))
    assert dry["StatusCode"] == 204
    event = lam.invoke(FunctionName="marker", InvocationType="Event",
                       Payload=json.dumps({"id": "async"}))
    assert event["StatusCode"] == 202
    dynamodb = aws.client("dynamodb")
    wait_for(lambda: dynamodb.get_item(TableName="marks", Key={"id": {"S": "async"}})
             .get("Item"), "the event's handler wrote its item")
    assert dynamodb.get_item(TableName="marks", Key={"id": {"S": "dry"}}).get("Item") is None

    def invocations() -> list[str]:
        return [e["invocation_type"] for e in aws.compute_events()
                if e["type"] == "lambda.invoke" and e["function"] == "marker"]

    # the invocation is recorded when it ends, a moment after its handler wrote the item
    wait_for(invocations, "the event invocation recorded")
    assert invocations() == ["Event"]


def test_function_created_at_run_time_from_a_zip(aws: AwsService) -> None:
    iam, lam = aws.client("iam"), aws.client("lambda", config=NO_RETRIES)
    role = iam.create_role(RoleName="runtime-fn", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    lam.create_function(FunctionName="made", Runtime="python3.12", Role=role,
                        Handler="main.handler", Code={"ZipFile": _zip(
                            "def handler(event, context):\n    return event['x'] * 2\n")},
                        Timeout=5)
    assert invoke(aws, "made", {"x": 21})["body"] == 42
    lam.update_function_code(FunctionName="made", ZipFile=_zip(
        "def handler(event, context):\n    return event['x'] * 3\n"))
    assert invoke(aws, "made", {"x": 21})["body"] == 63  # new code, new worker
    assert len(aws.workers("made")) == 2  # the old code's worker is idle until a reset


def test_reset_keeps_declared_functions_warm(aws: AwsService) -> None:
    pid = invoke(aws, "echo")["body"]["pid"]
    aws.reset()  # moto forgets the function; the declared one is created again, identical
    assert invoke(aws, "echo")["body"]["pid"] == pid


def test_kill_and_pause_a_worker_mid_invocation(aws: AwsService) -> None:
    results: list[dict[str, Any]] = []
    call = threading.Thread(target=lambda: results.append(
        invoke(aws, "single", {"seconds": 3})))
    call.start()
    wait_for(lambda: any(w["busy"] and w["invocations"] for w in aws.workers("single")),
             "the invocation runs")
    aws.kill("lambda:single")
    call.join(HANG)
    [answer] = results
    assert answer["FunctionError"] == "Unhandled"
    assert answer["body"]["errorType"] == "Runtime.ExitError"
    assert "Runtime exited with error: signal: killed" in answer["body"]["errorMessage"]
    # A paused worker overruns the timeout: the runtime kills it.
    invoke(aws, "sleepy")
    aws.pause("lambda:sleepy")
    assert invoke(aws, "sleepy")["body"]["errorType"] == "Sandbox.Timedout"


def test_invoke_throttled_by_an_error_rule(aws: AwsService) -> None:
    aws.add_error_rule("lambda", "Invoke", "TooManyRequestsException", times=1)
    with pytest.raises(ClientError) as caught:
        invoke(aws, "echo")
    assert caught.value.response["Error"]["Code"] == "TooManyRequestsException"
    assert invoke(aws, "echo")["StatusCode"] == 200


def test_bad_functions_get_aws_errors(aws: AwsService) -> None:
    broken = invoke(aws, "broken-import")
    assert broken["FunctionError"] == "Unhandled"
    assert broken["body"]["errorType"] == "RuntimeError"
    assert broken["body"]["errorMessage"] == "cannot configure: no DATABASE_URL"
    assert "Status: error\tError Type: RuntimeError" in \
        aws.log_paths()["lambda/broken-import"].read_text()
    iam, lam = aws.client("iam"), aws.client("lambda", config=NO_RETRIES)
    role = iam.create_role(RoleName="bad-fns", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    lam.create_function(FunctionName="no-module", Runtime="python3.12", Role=role,
                        Handler="nowhere.handler", Code={"ZipFile": _zip("x = 1\n")})
    missing = invoke(aws, "no-module")["body"]
    assert missing["errorType"] == "Runtime.ImportModuleError"
    assert missing["errorMessage"] == \
        "Unable to import module 'nowhere': No module named 'nowhere'"
    lam.create_function(FunctionName="node", Runtime="nodejs20.x", Role=role,
                        Handler="index.handler", Code={"ZipFile": _zip("x = 1\n")})
    with pytest.raises(ClientError) as caught:
        invoke(aws, "node")
    assert caught.value.response["Error"]["Code"] == "InvalidRuntimeException"
    assert "python3.x" in caught.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as caught:
        invoke(aws, "never-created")
    assert caught.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert not aws.workers("no-module") and not aws.workers("broken-import")


# -- EC2 -----------------------------------------------------------------------------------
def test_instance_reads_its_metadata_and_terminates_itself(aws: AwsService) -> None:
    ec2 = aws.client("ec2")
    launched = ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=1, InstanceType="t3.micro",
                                 UserData=json.dumps({"mode": "self-terminate"}))
    [instance] = launched["Instances"]
    instance_id = instance["InstanceId"]
    assert instance["State"]["Name"] == "pending"
    wait_for(lambda: _state(ec2, instance_id) == "terminated", "the instance ended itself")
    log = aws.log_paths()[f"ec2/{instance_id}"].read_text()
    report = json.loads(log.splitlines()[0])
    assert report == {"instance_id": instance_id, "region": "us-east-1",
                      "job": {"mode": "self-terminate"}, "role": "shakedown-instance",
                      "has_key": False}
    assert "state running" in log
    [seen] = aws.instances()
    assert seen["state"] == "terminated" and not seen["alive"]
    assert seen["instance_type"] == "t3.micro"
    states = [e["state"] for e in aws.compute_events() if e.get("instance_id") == instance_id]
    assert states == ["running", "shutting-down", "terminated"]
    assert no_orphans(None, compute=aws)


def test_terminate_instances_stops_the_process_and_exit_terminates(aws: AwsService) -> None:
    ec2 = aws.client("ec2")
    serving = _launch(ec2, "serve")
    exiting = _launch(ec2, "exit")
    wait_for(lambda: _state(ec2, exiting) == "terminated", "the exiting instance ended")
    reason = ec2.describe_instances(InstanceIds=[exiting])["Reservations"][0]["Instances"][0]
    assert reason["StateReason"]["Code"] == "Client.InstanceInitiatedShutdown"
    wait_for(lambda: "role" in aws.log_paths()[f"ec2/{serving}"].read_text(), "serving")
    assert _state(ec2, serving) == "running"
    result = no_orphans(None, compute=aws)
    assert not result and serving in str(result)
    pid = next(i["pid"] for i in aws.instances() if i["instance_id"] == serving)
    answer = ec2.terminate_instances(InstanceIds=[serving])["TerminatingInstances"][0]
    assert answer["CurrentState"]["Name"] == "shutting-down"
    wait_for(lambda: _state(ec2, serving) == "terminated", "terminated")
    assert not pid_alive(pid)
    assert "got SIGTERM" in aws.log_paths()[f"ec2/{serving}"].read_text()
    assert no_orphans(None, compute=aws)


def test_killing_an_instance_process_terminates_the_instance(aws: AwsService) -> None:
    ec2 = aws.client("ec2")
    instance_id = _launch(ec2, "serve")
    aws.kill(instance_id)
    wait_for(lambda: _state(ec2, instance_id) == "terminated", "terminated after the kill")


def test_unmapped_ami_is_invalid_ami_id(aws: AwsService) -> None:
    with pytest.raises(ClientError) as caught:
        aws.client("ec2").run_instances(ImageId="ami-00000000", MinCount=1, MaxCount=1)
    assert caught.value.response["Error"]["Code"] == "InvalidAMIID.NotFound"
    assert not aws.instances()


def test_compute_events_go_into_the_history(aws: AwsService, tmp_path: Path) -> None:
    history = History(tmp_path / "history.jsonl")
    invoke(aws, "echo")
    _launch(aws.client("ec2"), "exit")
    wait_for(lambda: any(e.get("state") == "terminated" and e["time"] > history.wall_origin
                         for e in aws.compute_events()), "the instance ended")
    count = aws.record_compute(history, since=history.wall_origin)
    ops = history.ops()
    assert count == len(ops) >= 3
    assert {op.f for op in ops} == {"lambda.invoke", "ec2.instance"}
    assert all(op.process == "nemesis" and op.value["target"] == "aws" for op in ops)
    assert [op.time for op in ops] == sorted(op.time for op in ops)


def test_the_environment_history_gets_compute_events_by_itself(
        shared: Environment, aws: AwsService) -> None:
    """No record_compute call: the emulator writes each invocation and instance state change
    to the environment's history file, at the event's time, for the report's timeline."""
    began = time.time() - shared.history.wall_origin
    answer = invoke(aws, "echo", {"n": 1})
    instance_id = _launch(aws.client("ec2"), "exit")

    def recorded() -> list[Any]:
        ops = [op for op in History.load(shared.paths.history_file).ops()
               if op.process == "nemesis" and op.time >= began]
        ended = any(op.f == "ec2.instance" and op.value.get("instance_id") == instance_id
                    and op.value.get("state") == "terminated" for op in ops)
        return ops if ended else []

    ops = wait_for(recorded, "the instance's termination in the history file")
    invocations = [op for op in ops if op.f == "lambda.invoke"
                   and op.value["request_id"] == answer["ResponseMetadata"]["HTTPHeaders"]
                   ["x-amzn-requestid"]]
    assert len(invocations) == 1 and invocations[0].type == "info"
    assert invocations[0].value["target"] == "aws" and invocations[0].value["outcome"] == "ok"
    states = [op.value["state"] for op in ops if op.f == "ec2.instance"
              and op.value.get("instance_id") == instance_id]
    assert states == ["running", "terminated"]


def _launch(ec2: Any, mode: str) -> str:
    answer = ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=1,
                               UserData=json.dumps({"mode": mode}))
    return str(answer["Instances"][0]["InstanceId"])


def _state(ec2: Any, instance_id: str) -> str:
    answer = ec2.describe_instances(InstanceIds=[instance_id])
    return str(answer["Reservations"][0]["Instances"][0]["State"]["Name"])


def _zip(source: str, name: str = "main.py") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(name, source)
    return buffer.getvalue()


# -- bad topologies --------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "expected"), [
    ('services = ["lambda"]\n[services.aws.functions.f]\nhandler = "app.handler"\n'
     'runtime = "nodejs20.x"', "runtime 'nodejs20.x': shakedown runs Lambda functions natively"),
    ('services = ["lambda"]\n[services.aws.functions.f]\nhandler = "handler"',
     "handler 'handler': give module.function"),
    ('services = ["dynamodb"]\n[services.aws.functions.f]\nhandler = "app.handler"',
     "functions run on lambda but services does not list 'lambda'"),
    ('services = ["ec2"]\n[services.aws.amis.ami-1]\ncommand = ["true"]',
     "'ami-1' is not an AMI id"),
    ('services = ["lambda"]\n[services.aws.apis.web]\nroutes = { "FETCH /x" = "f" }',
     "route 'FETCH /x': give \"METHOD /path\""),
    ('services = ["lambda"]\n[services.aws.apis.web]\nroutes = { "GET /x" = "f" }',
     "apis.web.routes['GET /x'] = 'f': no such function"),
])
def test_bad_compute_topology_is_a_clear_error(
    write_topology: Callable[..., Path], text: str, expected: str
) -> None:
    path = write_topology(f'[services.aws]\nkind = "aws"\n{text}\n')
    with pytest.raises(TopologyError) as caught:
        Environment.from_file(path)
    assert expected in str(caught.value), str(caught.value)


@pytest.mark.parametrize(("text", "expected", "fix"), [
    ('[services.aws.functions.f]\nhandler = "missing.handler"',
     "services.aws.functions.f.handler = 'missing.handler': no module 'missing'",
     "handler = \"module.function\""),
    ('[services.aws.functions.f]\nhandler = "app.handler"\ncode = "nowhere"',
     "services.aws.functions.f.code:", "the directory that holds"),
    ('[services.aws.amis."ami-12345678"]\ncommand = ["no-such-worker-binary"]',
     "services.aws.amis.'ami-12345678'.command: 'no-such-worker-binary' not found",
     "install it"),
])
def test_missing_code_or_command_fails_up_and_leaves_nothing_running(
    write_topology: Callable[..., Path], text: str, expected: str, fix: str
) -> None:
    path = write_topology(f'[services.aws]\nkind = "aws"\nservices = ["lambda", "ec2"]\n{text}\n',
                          app__py="def handler(event, context):\n    return 1\n")
    env = Environment.from_file(path)
    with pytest.raises(TopologyError) as caught:
        env.up()
    assert expected in caught.value.what and any(fix in f for f in caught.value.fix), \
        str(caught.value)
    assert not tagged_processes(env.env_id)
    assert os.environ.get("SHAKEDOWN_RUNTIME_DIR")
