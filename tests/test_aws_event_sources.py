"""SQS event source mappings in the ``aws`` kind, against the real emulator, boto3 and real
Lambda worker processes: batches delivered as Lambda delivers them (batch size, deletion on
success), a failed batch back on the queue after its visibility timeout and then in the
dead-letter queue after ``maxReceiveCount``, ``ReportBatchItemFailures``, mappings created,
disabled and deleted through the API, one declared in the topology, and bad input."""

from __future__ import annotations

import json
import shutil
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bounds import hang_bound
from shakedown.environment import Environment
from shakedown.errors import TopologyError
from shakedown.process import kill_tagged, tagged_processes
from shakedown.services import AwsService

HANDLER = """
import json, os


def consume(event, context):
    records = event["Records"]
    with open(os.path.join(os.environ["OUT_DIR"], context.aws_request_id), "w") as out:
        json.dump([{"body": r["body"], "count": r["attributes"]["ApproximateReceiveCount"],
                    "source": r["eventSource"], "arn": r["eventSourceARN"]}
                   for r in records], out)
    if any(r["body"] == "fail" for r in records):
        raise RuntimeError("this batch fails")
    failed = [{"itemIdentifier": r["messageId"]} for r in records if r["body"].startswith("bad")]
    return {"batchItemFailures": failed}
"""
TOPOLOGY = """
[services.aws]
kind = "aws"
services = ["lambda", "sqs"]
[services.aws.resources]
queues = [{{ name = "declared" }}]
[services.aws.functions.consume]
handler = "fns.consume"
code = "code"
env = {{ OUT_DIR = "{out}" }}
[services.aws.functions.declared-consumer]
handler = "fns.consume"
code = "code"
env = {{ OUT_DIR = "{out}" }}
sqs = [{{ queue = "declared", batch_size = 3 }}]
"""


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Environment]:
    root = Path("/dev/shm") / f"shakedown-test-{uuid.uuid4().hex[:8]}"
    root.mkdir(mode=0o755)
    directory = tmp_path_factory.mktemp("aws-esm")
    (directory / "code").mkdir()
    (directory / "code" / "fns.py").write_text(textwrap.dedent(HANDLER))
    (directory / "out").mkdir()
    (directory / "shakedown.toml").write_text(TOPOLOGY.format(out=directory / "out"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SHAKEDOWN_RUNTIME_DIR", str(root))
        environment = Environment.from_file(directory / "shakedown.toml").up()
    try:
        yield environment
    finally:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("SHAKEDOWN_RUNTIME_DIR", str(root))
            environment.down()
            leaked = tagged_processes(root=root)
            for env_id in set(leaked.values()):
                kill_tagged(env_id)
        shutil.rmtree(root, ignore_errors=True)
        assert not leaked, f"processes leaked: {leaked}"


@pytest.fixture
def aws(env: Environment) -> Iterator[AwsService]:
    service = env["aws"]
    assert isinstance(service, AwsService)
    yield service
    lam = service.client("lambda")
    for mapping in lam.list_event_source_mappings()["EventSourceMappings"]:
        if not mapping["EventSourceArn"].endswith(":declared"):
            lam.delete_event_source_mapping(UUID=mapping["UUID"])


@pytest.fixture
def out(env: Environment) -> Iterator[Path]:
    directory = Path(env["aws"].spec.functions["consume"].env["OUT_DIR"])  # type: ignore[attr-defined]
    for path in directory.iterdir():
        path.unlink()
    yield directory


def batches(out: Path) -> list[list[dict[str, str]]]:
    found = []
    for path in sorted(out.iterdir(), key=lambda p: p.stat().st_mtime_ns):
        try:
            found.append(json.loads(path.read_text()))
        except ValueError:
            continue  # being written
    return found


def wait_for(check: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + hang_bound(30)
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def queue(aws: AwsService, name: str, **attributes: str) -> tuple[str, str]:
    sqs = aws.client("sqs")
    url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    return url, arn["Attributes"]["QueueArn"]


def count(aws: AwsService, url: str) -> int:
    attributes = aws.client("sqs").get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages",
                                      "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + \
        int(attributes["ApproximateNumberOfMessagesNotVisible"])


def test_batches_are_delivered_and_deleted(aws: AwsService, out: Path) -> None:
    url, arn = queue(aws, f"work-{uuid.uuid4().hex[:6]}")
    sqs = aws.client("sqs")
    bodies = [f"m{n}" for n in range(7)]
    for body in bodies:
        sqs.send_message(QueueUrl=url, MessageBody=body)
    mapping = aws.client("lambda").create_event_source_mapping(
        EventSourceArn=arn, FunctionName="consume", BatchSize=2)
    assert mapping["BatchSize"] == 2
    wait_for(lambda: sorted(r["body"] for b in batches(out) for r in b) == bodies,
             "every message delivered once")
    assert all(1 <= len(b) <= 2 for b in batches(out))
    assert {(r["source"], r["arn"], r["count"]) for b in batches(out) for r in b} == \
        {("aws:sqs", arn, "1")}
    wait_for(lambda: count(aws, url) == 0, "the delivered messages deleted")
    # and a message sent while the mapping runs goes the same way
    sqs.send_message(QueueUrl=url, MessageBody="later")
    wait_for(lambda: any(r["body"] == "later" for b in batches(out) for r in b),
             "the later message delivered")


def test_a_failed_batch_comes_back_then_goes_to_the_dead_letter_queue(
        aws: AwsService, out: Path) -> None:
    suffix = uuid.uuid4().hex[:6]
    dlq_url, dlq_arn = queue(aws, f"dlq-{suffix}")
    url, arn = queue(aws, f"failing-{suffix}", VisibilityTimeout="1", RedrivePolicy=json.dumps(
        {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "2"}))
    aws.client("sqs").send_message(QueueUrl=url, MessageBody="fail")
    aws.client("lambda").create_event_source_mapping(EventSourceArn=arn, FunctionName="consume",
                                                     BatchSize=10)
    moved = wait_for(lambda: aws.client("sqs").receive_message(
        QueueUrl=dlq_url, WaitTimeSeconds=1).get("Messages"), "the message in the DLQ")
    assert [m["Body"] for m in moved] == ["fail"]
    # delivered once per receive (visibility timeout apart), twice in all: maxReceiveCount
    assert [r["count"] for b in batches(out) for r in b] == ["1", "2"]
    assert count(aws, url) == 0


def test_report_batch_item_failures_keeps_only_the_failed_messages(
        aws: AwsService, out: Path) -> None:
    url, arn = queue(aws, f"partial-{uuid.uuid4().hex[:6]}", VisibilityTimeout="1")
    sqs = aws.client("sqs")
    for body in ("good-1", "bad-1", "good-2"):
        sqs.send_message(QueueUrl=url, MessageBody=body)
    mapping = aws.client("lambda").create_event_source_mapping(
        EventSourceArn=arn, FunctionName="consume", BatchSize=10,
        FunctionResponseTypes=["ReportBatchItemFailures"])
    wait_for(lambda: sum(r["body"] == "bad-1" for b in batches(out) for r in b) >= 2,
             "the failed message delivered again")
    aws.client("lambda").delete_event_source_mapping(UUID=mapping["UUID"])
    delivered = [r["body"] for b in batches(out) for r in b]
    assert delivered.count("good-1") == delivered.count("good-2") == 1


def test_a_disabled_or_deleted_mapping_delivers_nothing(aws: AwsService, out: Path) -> None:
    url, arn = queue(aws, f"paused-{uuid.uuid4().hex[:6]}")
    lam = aws.client("lambda")
    mapping = lam.create_event_source_mapping(EventSourceArn=arn, FunctionName="consume",
                                              Enabled=False)
    aws.client("sqs").send_message(QueueUrl=url, MessageBody="waits")
    time.sleep(1.0)  # what a poller would need to pick it up, many times over
    assert batches(out) == [] and count(aws, url) == 1
    lam.update_event_source_mapping(UUID=mapping["UUID"], Enabled=True)
    wait_for(lambda: count(aws, url) == 0, "the message delivered once enabled")
    assert [r["body"] for b in batches(out) for r in b] == ["waits"]
    lam.delete_event_source_mapping(UUID=mapping["UUID"])
    wait_for(lambda: all(s["uuid"] != mapping["UUID"]
                         for s in aws.compute()["event_sources"]), "the poller stopped")
    aws.client("sqs").send_message(QueueUrl=url, MessageBody="stays")
    time.sleep(1.0)
    assert count(aws, url) == 1


def test_a_mapping_declared_in_the_topology(aws: AwsService, out: Path) -> None:
    sqs = aws.client("sqs")
    url = sqs.get_queue_url(QueueName="declared")["QueueUrl"]
    mappings = aws.client("lambda").list_event_source_mappings(
        FunctionName="declared-consumer")["EventSourceMappings"]
    assert [(m["EventSourceArn"].rsplit(":", 1)[1], m["BatchSize"]) for m in mappings] == \
        [("declared", 3)]
    for n in range(4):
        sqs.send_message(QueueUrl=url, MessageBody=f"d{n}")
    wait_for(lambda: sorted(r["body"] for b in batches(out) for r in b) ==
             ["d0", "d1", "d2", "d3"], "the declared queue's messages delivered")
    assert all(len(b) <= 3 for b in batches(out))
    events = [e for e in aws.compute_events() if e["type"] == "lambda.sqs_batch"
              and e["queue"] == "declared"]
    assert sum(e["messages"] for e in events) >= 4 and {e["outcome"] for e in events} == {"ok"}


def test_a_mapping_on_an_undeclared_queue_is_refused(tmp_path: Path) -> None:
    (tmp_path / "fns.py").write_text(textwrap.dedent(HANDLER))
    (tmp_path / "shakedown.toml").write_text(textwrap.dedent("""
        [services.aws]
        kind = "aws"
        services = ["lambda", "sqs"]
        [services.aws.functions.f]
        handler = "fns.consume"
        sqs = ["nowhere"]
        """))
    with pytest.raises(TopologyError) as caught:
        Environment.from_file(tmp_path / "shakedown.toml")
    assert "functions.f.sqs[0].queue = 'nowhere': not a declared queue" in str(caught.value)
