"""The ``aws`` kind against the real moto server and boto3: start, resources, reset, exports,
fault rules (errors as boto3 sees them, with and without retries; latency), bad input."""

from __future__ import annotations

import json
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from shakedown.environment import Environment
from shakedown.errors import FaultError, TopologyError
from shakedown.process import tagged_processes
from shakedown.services import AwsFaultable, AwsService, Killable
from shakedown.topology import load_topology

NO_RETRIES = Config(retries={"total_max_attempts": 1, "mode": "standard"})
RETRIES = Config(retries={"total_max_attempts": 4, "mode": "standard"})

TOPOLOGY = """
    [services.aws]
    kind = "aws"
    services = ["dynamodb", "sqs", "s3", "sns"]

    [[services.aws.resources.tables]]
    name = "jobs"
    hash_key = "id"

    [[services.aws.resources.tables]]
    name = "events"
    hash_key = "stream"
    range_key = "seq"
    range_key_type = "N"

    [services.aws.resources]
    queues = ["work", { name = "ordered.fifo", attributes = { VisibilityTimeout = 5 } }]
    buckets = ["uploads"]
    """


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Environment]:
    """One aws environment for the tests that only talk to it (the leak guard checks that it
    is gone at the end of the module)."""
    path = tmp_path_factory.mktemp("aws") / "shakedown.toml"
    path.write_text(textwrap.dedent(TOPOLOGY))
    with Environment.from_file(path) as env:
        yield env


@pytest.fixture
def aws(shared: Environment) -> Iterator[AwsService]:
    service = shared["aws"]
    assert isinstance(service, AwsService)
    yield service
    service.clear_rules()
    service.reset()


def test_starts_with_declared_resources_and_exports(aws: AwsService) -> None:
    assert aws.url == aws.endpoint == f"http://127.0.0.1:{aws.port}"
    assert aws.exports() == {
        "host": "127.0.0.1", "port": str(aws.port), "url": aws.url, "endpoint": aws.url,
        "region": "us-east-1", "access_key_id": "shakedown",
        "secret_access_key": "shakedown-not-a-secret"}
    assert aws.env_vars() == {
        "AWS_ENDPOINT_URL": aws.url, "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "shakedown", "AWS_SECRET_ACCESS_KEY": "shakedown-not-a-secret"}
    assert aws.status() == "running" and aws.pids
    dynamodb = aws.client("dynamodb")
    assert sorted(dynamodb.list_tables()["TableNames"]) == ["events", "jobs"]
    events = dynamodb.describe_table(TableName="events")["Table"]
    assert events["KeySchema"] == [{"AttributeName": "stream", "KeyType": "HASH"},
                                   {"AttributeName": "seq", "KeyType": "RANGE"}]
    assert {"AttributeName": "seq", "AttributeType": "N"} in events["AttributeDefinitions"]
    assert events["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    sqs = aws.client("sqs")
    urls = sqs.list_queues()["QueueUrls"]
    assert sorted(u.rsplit("/", 1)[1] for u in urls) == ["ordered.fifo", "work"]
    fifo = sqs.get_queue_url(QueueName="ordered.fifo")["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=fifo, AttributeNames=["All"])["Attributes"]
    assert attributes["FifoQueue"] == "true" and attributes["VisibilityTimeout"] == "5"
    s3 = aws.client("s3")
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["uploads"]
    s3.put_object(Bucket="uploads", Key="a/b.txt", Body=b"hello")
    assert s3.get_object(Bucket="uploads", Key="a/b.txt")["Body"].read() == b"hello"
    assert "ready in" in aws.log_tail()
    assert aws.version().startswith("moto 5")


def test_reset_forgets_data_and_recreates_declared_resources(aws: AwsService) -> None:
    dynamodb, sqs = aws.client("dynamodb"), aws.client("sqs")
    dynamodb.put_item(TableName="jobs", Item={"id": {"S": "1"}})
    dynamodb.create_table(TableName="extra", KeySchema=[{"AttributeName": "k",
                                                         "KeyType": "HASH"}],
                          AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
                          BillingMode="PAY_PER_REQUEST")
    queue = sqs.get_queue_url(QueueName="work")["QueueUrl"]
    sqs.send_message(QueueUrl=queue, MessageBody="left over")
    aws.reset()
    assert sorted(dynamodb.list_tables()["TableNames"]) == ["events", "jobs"]
    assert dynamodb.scan(TableName="jobs")["Items"] == []
    queue = sqs.get_queue_url(QueueName="work")["QueueUrl"]
    assert "Messages" not in sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=0)
    assert aws.client("s3").list_objects_v2(Bucket="uploads")["KeyCount"] == 0


def test_error_rule_is_the_aws_error_boto3_expects(aws: AwsService) -> None:
    assert isinstance(aws, AwsFaultable)
    rule = aws.add_error_rule("dynamodb", "PutItem", "ProvisionedThroughputExceededException")
    dynamodb = aws.client("dynamodb", config=NO_RETRIES)
    with pytest.raises(ClientError) as caught:
        dynamodb.put_item(TableName="jobs", Item={"id": {"S": "1"}})
    error = caught.value.response
    assert error["Error"]["Code"] == "ProvisionedThroughputExceededException"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert error["ResponseMetadata"]["HTTPHeaders"]["x-amzn-errortype"] == \
        "ProvisionedThroughputExceededException"
    assert isinstance(caught.value, dynamodb.exceptions.ProvisionedThroughputExceededException)
    # Only the chosen operation fails.
    assert dynamodb.get_item(TableName="jobs", Key={"id": {"S": "1"}}).get("Item") is None
    # The wire format: JSON body with a qualified __type, as DynamoDB sends it.
    raw = httpx.post(aws.url, headers={
        "X-Amz-Target": "DynamoDB_20120810.PutItem",
        "Content-Type": "application/x-amz-json-1.0",
        "Authorization": "AWS4-HMAC-SHA256 Credential=k/20240101/us-east-1/dynamodb/"
                         "aws4_request, SignedHeaders=host, Signature=0"},
        content=b"{}", trust_env=False)
    assert raw.status_code == 400
    assert raw.headers["content-type"] == "application/x-amz-json-1.0"
    assert raw.json()["__type"] == \
        "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException"
    [listed] = aws.rules()
    assert listed["id"] == rule and listed["hits"] == 2 and listed["status"] == 400


def test_error_rule_is_retried_by_boto3(aws: AwsService) -> None:
    aws.add_error_rule("dynamodb", "PutItem", "ProvisionedThroughputExceededException",
                       times=2)
    answer = aws.client("dynamodb", config=RETRIES).put_item(
        TableName="jobs", Item={"id": {"S": "retried"}})
    assert answer["ResponseMetadata"]["RetryAttempts"] == 2
    aws.add_error_rule("sqs", "SendMessage", "ThrottlingException", times=1)
    sqs = aws.client("sqs", config=RETRIES)
    queue = sqs.get_queue_url(QueueName="work")["QueueUrl"]
    assert sqs.send_message(QueueUrl=queue, MessageBody="x")["ResponseMetadata"][
        "RetryAttempts"] == 1
    assert [r["hits"] for r in aws.rules()] == [2, 1]
    # Retries give up after total_max_attempts: the error reaches the caller.
    aws.add_error_rule("dynamodb", "GetItem", "ThrottlingException")
    with pytest.raises(ClientError, match="ThrottlingException") as caught:
        aws.client("dynamodb", config=RETRIES).get_item(TableName="jobs",
                                                        Key={"id": {"S": "x"}})
    assert caught.value.response["ResponseMetadata"]["RetryAttempts"] == 3


def test_error_rule_on_sqs_json_and_sns_query_protocols(aws: AwsService) -> None:
    aws.add_error_rule("sqs", "ReceiveMessage", "RequestThrottled", status=403,
                       message="slow down please")
    sqs = aws.client("sqs", config=NO_RETRIES)
    queue = sqs.get_queue_url(QueueName="work")["QueueUrl"]
    with pytest.raises(ClientError) as caught:
        sqs.receive_message(QueueUrl=queue)
    assert caught.value.response["Error"]["Code"] == "RequestThrottled"
    assert caught.value.response["Error"]["Message"] == "slow down please"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    # SNS speaks the query protocol: the error is <ErrorResponse> XML.
    sns = aws.client("sns", config=NO_RETRIES)
    topic = sns.create_topic(Name="t")["TopicArn"]
    aws.add_error_rule("sns", "Publish", "Throttling")
    with pytest.raises(ClientError) as caught:
        sns.publish(TopicArn=topic, Message="m")
    assert caught.value.response["Error"]["Code"] == "Throttling"
    assert caught.value.response["Error"]["Type"] == "Sender"
    assert sns.list_topics()["Topics"] == [{"TopicArn": topic}]


def test_error_rule_on_s3_rest_xml(aws: AwsService) -> None:
    aws.add_error_rule("s3", "PutObject", "SlowDown")
    aws.add_error_rule("s3", "ListObjectsV2", "InternalError")
    s3 = aws.client("s3", config=NO_RETRIES)
    with pytest.raises(ClientError) as caught:
        s3.put_object(Bucket="uploads", Key="deep/key.txt", Body=b"x")
    assert caught.value.response["Error"]["Code"] == "SlowDown"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    with pytest.raises(ClientError, match="InternalError"):
        s3.list_objects_v2(Bucket="uploads")
    # Other operations on the same paths are untouched: ListObjects (v1), HeadBucket, GetObject.
    assert s3.list_objects(Bucket="uploads").get("Contents") is None
    s3.head_bucket(Bucket="uploads")
    with pytest.raises(ClientError, match="NoSuchKey"):
        s3.get_object(Bucket="uploads", Key="deep/key.txt")
    raw = httpx.put(f"{aws.url}/uploads/k", content=b"x", trust_env=False, headers={
        "Authorization": "AWS4-HMAC-SHA256 Credential=k/20240101/us-east-1/s3/aws4_request, "
                         "SignedHeaders=host, Signature=0"})
    assert raw.status_code == 503 and raw.headers["content-type"] == "application/xml"
    assert "<Error><Code>SlowDown</Code>" in raw.text


def test_error_rule_probability_and_wildcard(aws: AwsService) -> None:
    aws.add_error_rule("dynamodb", "*", "InternalServerError", probability=0.5)
    dynamodb = aws.client("dynamodb", config=NO_RETRIES)
    failures = 0
    for _ in range(80):
        try:
            dynamodb.list_tables()
        except ClientError as exc:
            assert exc.response["ResponseMetadata"]["HTTPStatusCode"] == 500
            failures += 1
    assert 20 <= failures <= 60, failures
    [rule] = aws.rules()
    assert rule["seen"] == 80 and rule["hits"] == failures


def test_latency_rule_delays_only_the_chosen_operation(aws: AwsService) -> None:
    dynamodb = aws.client("dynamodb")
    dynamodb.get_item(TableName="jobs", Key={"id": {"S": "warm"}})

    def took(call: Callable[[], Any]) -> float:
        began = time.monotonic()
        call()
        return time.monotonic() - began

    rule = aws.add_latency_rule("dynamodb", "GetItem", ms=300)
    slow = took(lambda: dynamodb.get_item(TableName="jobs", Key={"id": {"S": "1"}}))
    assert slow >= 0.3, slow
    # Other operations, and GetItem once the rule is gone, are not delayed: shorter than the
    # 300 ms the rule adds (best of 3; a loaded machine may slow one call).
    assert min(took(lambda: dynamodb.put_item(TableName="jobs", Item={"id": {"S": "1"}}))
               for _ in range(3)) < 0.3
    assert [r["hits"] for r in aws.rules()] == [1], "the rule delayed GetItem only"
    aws.remove_rule(rule)
    assert min(took(lambda: dynamodb.get_item(TableName="jobs", Key={"id": {"S": "1"}}))
               for _ in range(3)) < 0.3
    assert aws.rules() == []


def test_rule_bookkeeping_and_bad_rules(aws: AwsService) -> None:
    first = aws.add_error_rule("sqs", "SendMessage", "ThrottlingException")
    aws.add_latency_rule("s3", "GetObject", ms=10, probability=0.1)
    assert [r["id"] for r in aws.rules()][:1] == [first] and len(aws.rules()) == 2
    aws.remove_rule(first)
    with pytest.raises(FaultError, match="no fault rule"):
        aws.remove_rule(first)
    aws.clear_rules()
    assert aws.rules() == []
    with pytest.raises(FaultError, match="has no operation 'PutItems' \\(did you mean "
                                         "'PutItem'\\?\\)"):
        aws.add_error_rule("dynamodb", "PutItems", "ThrottlingException")
    with pytest.raises(FaultError, match="does not serve AWS service 'dynamo' \\(did you mean "
                                         "'dynamodb'\\?\\)"):
        aws.add_latency_rule("dynamo", "GetItem", ms=5)
    with pytest.raises(FaultError, match="does not serve AWS service 'kinesis'"):
        aws.add_latency_rule("kinesis", "PutRecord", ms=5)
    with pytest.raises(FaultError, match="probability"):
        aws.add_error_rule("dynamodb", "GetItem", "ThrottlingException", probability=1.5)
    with pytest.raises(FaultError, match="not an AWS error code"):
        aws.add_error_rule("dynamodb", "GetItem", "not a code!")
    with pytest.raises(FaultError, match="4xx or 5xx"):
        aws.add_error_rule("dynamodb", "GetItem", "ThrottlingException", status=200)
    with pytest.raises(FaultError, match="ms = -1"):
        aws.add_latency_rule("dynamodb", "GetItem", ms=-1)
    assert aws.rules() == []


def test_modeled_error_status_comes_from_the_service_model(aws: AwsService) -> None:
    aws.add_error_rule("s3", "GetObject", "AccessDenied")
    aws.add_error_rule("dynamodb", "Scan", "InternalServerError")
    statuses = {r["error"]: r["status"] for r in aws.rules()}
    assert statuses == {"AccessDenied": 403, "InternalServerError": 500}


def test_references_env_and_restart(write_topology: Callable[..., Path]) -> None:
    # A process gets the endpoint through references; the service restarts with its
    # resources; it is killable like any process service.
    script = ("import os, boto3, http.server\n"
              "tables = boto3.client('dynamodb').list_tables()['TableNames']\n"
              "body = (os.environ['AWS_ENDPOINT_URL'] + ' ' + ','.join(tables)).encode()\n"
              "class H(http.server.BaseHTTPRequestHandler):\n"
              "    def do_GET(self):\n"
              "        self.send_response(200); self.end_headers(); self.wfile.write(body)\n"
              "http.server.HTTPServer(('127.0.0.1', int(os.environ['PORT'])), H)"
              ".serve_forever()\n")
    path = write_topology(f"""
        [services.aws]
        kind = "aws"
        services = ["dynamodb"]
        region = "eu-west-3"
        resources = {{ tables = [{{ name = "things", hash_key = "k" }}] }}

        [services.app]
        kind = "process"
        command = ["{sys.executable}", "app.py"]
        ready = {{ http = "/" }}
        [services.app.env]
        PORT = "{{port}}"
        AWS_ENDPOINT_URL = "{{aws.endpoint}}"
        AWS_DEFAULT_REGION = "{{aws.region}}"
        AWS_ACCESS_KEY_ID = "{{aws.access_key_id}}"
        AWS_SECRET_ACCESS_KEY = "{{aws.secret_access_key}}"
        """, app__py=script)
    with Environment.from_file(path) as env:
        aws = env["aws"]
        assert isinstance(aws, AwsService) and isinstance(aws, Killable)
        assert httpx.get(env["app"].url, trust_env=False).text == f"{aws.url} things"
        assert env.topology.start_order() == ["aws", "app"]
        table = aws.client("dynamodb").describe_table(TableName="things")["Table"]
        assert ":eu-west-3:" in table["TableArn"]
        aws.client("dynamodb").put_item(TableName="things", Item={"k": {"S": "v"}})
        env.faults.kill("aws")  # an AWS outage, through the faults layer
        assert aws.status() == "stopped"
        with pytest.raises(FaultError, match="does not answer"):
            aws.rules()
        env.faults.heal()  # starts it again, with its declared resources
        assert aws.status() == "running"
        assert aws.client("dynamodb").scan(TableName="things")["Items"] == []
        pid = aws.pids[0]
        began = time.monotonic()
    # SIGTERM stops the server: before its stop_timeout (10 s), after which SIGKILL would.
    assert time.monotonic() - began < env.topology.services["aws"].stop_timeout
    assert not tagged_processes(env.env_id) and pid not in tagged_processes()


def test_bucket_outside_us_east_1(write_topology: Callable[..., Path]) -> None:
    path = write_topology("""
        [services.aws]
        kind = "aws"
        services = ["s3"]
        region = "ap-southeast-2"
        resources = { buckets = ["data.example"] }
        """)
    with Environment.from_file(path) as env:
        s3 = env["aws"].client("s3")  # type: ignore[attr-defined]
        location = s3.get_bucket_location(Bucket="data.example")["LocationConstraint"]
        assert location == "ap-southeast-2"


def _error_of(write_topology: Callable[..., Path], text: str) -> str:
    with pytest.raises(TopologyError) as caught:
        load_topology(write_topology(text))
    return caught.value.render()


@pytest.mark.parametrize(("text", "expected"), [
    ('services = ["dynamo", "sqs"]',
     "services.aws.services: unknown AWS service 'dynamo' (did you mean 'dynamodb'?)"),
    ('services = ["Dynamodb"]', "unknown AWS service 'Dynamodb' (did you mean 'dynamodb'?)"),
    ("services = []", "services.aws.services: list at least one AWS service"),
    ('services = ["s3", "s3"]', "'s3' listed twice"),
    ('services = ["s3"]\nregion = "mars-1"', "services.aws.region: 'mars-1' is not an AWS region"),
    ('services = ["s3"]\nresources = { tabels = [] }',
     "services.aws.resources.tabels: unknown key 'tabels' (did you mean 'tables'?)"),
    ('services = ["dynamodb"]\nresources = { tables = [{ name = "jobs" }] }',
     "services.aws.resources.tables.0.hash_key: missing required key"),
    ('services = ["dynamodb"]\nresources = { tables = [{ name = "j", hash_key = "id" }] }',
     "services.aws.resources.tables.0.name: 'j' is not a DynamoDB table name"),
    ('services = ["dynamodb"]\n'
     'resources = { tables = [{ name = "jobs", hash_key = "id", hash_key_type = "X" }] }',
     "services.aws.resources.tables.0.hash_key_type: Input should be 'S', 'N' or 'B'"),
    ('services = ["dynamodb"]\n'
     'resources = { tables = [{ name = "jobs", hash_key = "id", range_key = "id" }] }',
     "range_key and hash_key are both 'id'"),
    ('services = ["s3"]\nresources = { buckets = ["Uploads"] }',
     "services.aws.resources.buckets.0.name: 'Uploads' is not an S3 bucket name"),
    ('services = ["sqs"]\nresources = { queues = [{ name = "q", fifo = true }] }',
     "services.aws.resources.queues.0: queue 'q': fifo = true but the name does not end in "
     "'.fifo'"),
    ('services = ["sqs"]\nresources = { queues = ["a b"] }',
     "services.aws.resources.queues.0.name: 'a b' is not an SQS queue name"),
    ('services = ["sqs"]\nresources = { queues = ["q", "q"] }', "queues: 'q' declared twice"),
    ('services = ["sqs"]\nresources = { tables = [{ name = "jobs", hash_key = "id" }] }',
     "services.aws: resources.tables are dynamodb resources but services does not list "
     "'dynamodb': add it, e.g. services = [\"sqs\", \"dynamodb\"]"),
])
def test_bad_topology_is_a_clear_error(
    write_topology: Callable[..., Path], text: str, expected: str
) -> None:
    message = _error_of(write_topology, f'[services.aws]\nkind = "aws"\n{text}\n')
    assert expected in message, message


def test_references_to_aws_exports_are_checked(write_topology: Callable[..., Path]) -> None:
    message = _error_of(write_topology, """
        [services.aws]
        kind = "aws"
        services = ["sqs"]
        [services.app]
        kind = "process"
        command = ["true"]
        env = { REGION = "{aws.regoin}" }
        """)
    assert "a aws service has no attribute 'regoin' (did you mean 'region'?)" in message


def test_rule_wire_format_is_json(aws: AwsService) -> None:
    # The control endpoint speaks JSON and never applies rules to itself.
    aws.add_error_rule("dynamodb", "*", "InternalServerError")
    health = httpx.get(f"{aws.url}/_shakedown/health", trust_env=False)
    assert health.status_code == 200 and health.json()["services"] == ["dynamodb", "sqs",
                                                                        "s3", "sns"]
    assert json.loads(httpx.get(f"{aws.url}/_shakedown/rules", trust_env=False).text)[0][
        "operation"] == "*"
