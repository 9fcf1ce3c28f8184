"""Mail into the ``aws`` kind as SES receives it, against the real emulator and boto3: the
system's own receipt rule set (made with SES's API) decides what happens; an S3 action stores
the MIME text, an SNS action publishes SES's "Received" notification, which reaches an SQS
subscription; recipients match by address and domain; a disabled rule is skipped, a stop
action ends the set, no active set or no matching rule does nothing; bad input and a rule
whose bucket is missing are clear errors; every delivery is in the history."""

from __future__ import annotations

import email
import email.policy
import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shakedown.environment import Environment
from shakedown.errors import ShakedownError
from shakedown.services import AwsService

TOPOLOGY = """
    [services.aws]
    kind = "aws"
    services = ["ses", "s3", "sns", "sqs"]
    resources = { buckets = ["inbound"], queues = ["emails"] }
    """


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Environment]:
    directory = tmp_path_factory.mktemp("mail")
    (directory / "shakedown.toml").write_text(textwrap.dedent(TOPOLOGY))
    with Environment.from_file(directory / "shakedown.toml") as environment:
        yield environment


@pytest.fixture
def aws(env: Environment) -> Iterator[AwsService]:
    service = env["aws"]
    assert isinstance(service, AwsService)
    yield service
    service.reset()  # a fresh emulator state (rule sets, topics) for the next test


def rule_set(aws: AwsService, *rules: dict[str, Any], active: bool = True) -> None:
    ses = aws.client("ses")
    ses.create_receipt_rule_set(RuleSetName="inbound")
    for rule in reversed(rules):  # each new rule goes first
        ses.create_receipt_rule(RuleSetName="inbound", Rule=rule)
    if active:
        ses.set_active_receipt_rule_set(RuleSetName="inbound")


def topic_to_queue(aws: AwsService) -> tuple[str, str]:
    sns, sqs = aws.client("sns"), aws.client("sqs")
    topic = sns.create_topic(Name="mail")["TopicArn"]
    queue = sqs.get_queue_url(QueueName="emails")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])
    sns.subscribe(TopicArn=topic, Protocol="sqs",
                  Endpoint=arn["Attributes"]["QueueArn"])
    return topic, queue


def received(aws: AwsService, queue: str) -> list[dict[str, Any]]:
    answer = aws.client("sqs").receive_message(QueueUrl=queue, MaxNumberOfMessages=10,
                                               WaitTimeSeconds=1)
    return [json.loads(json.loads(m["Body"])["Message"]) for m in answer.get("Messages", [])]


def test_s3_and_sns_actions_deliver_the_message(aws: AwsService) -> None:
    topic, queue = topic_to_queue(aws)
    rule_set(aws, {"Name": "store", "Enabled": True, "Recipients": ["inbox@example.com"],
                   "Actions": [{"S3Action": {"BucketName": "inbound",
                                             "ObjectKeyPrefix": "mail/"}},
                               {"SNSAction": {"TopicArn": topic, "Encoding": "UTF-8"}}]})
    result = aws.receive_email("alice@example.org", "inbox@example.com", "Make it blue",
                               "Please make the header blue.")
    assert [a["type"] for a in result["actions"]] == ["S3", "SNS"]
    key = result["actions"][0]["objectKey"]
    assert key == f"mail/{result['messageId']}"
    stored = aws.client("s3").get_object(Bucket="inbound", Key=key)["Body"].read().decode()
    parsed = email.message_from_string(stored, policy=email.policy.default)
    assert parsed["Subject"] == "Make it blue" and parsed["From"] == "alice@example.org"
    assert "Please make the header blue." in parsed.get_content()  # type: ignore[attr-defined]
    [notification] = received(aws, queue)
    assert notification["notificationType"] == "Received"
    assert notification["mail"]["messageId"] == result["messageId"]
    assert notification["mail"]["source"] == "alice@example.org"
    assert notification["mail"]["commonHeaders"]["subject"] == "Make it blue"
    assert notification["receipt"]["recipients"] == ["inbox@example.com"]
    assert notification["receipt"]["action"] == {"type": "SNS", "topicArn": topic,
                                                 "encoding": "UTF-8"}
    assert "Please make the header blue." in notification["content"]


def test_recipients_match_by_address_and_domain_and_rules_run_in_order(
        aws: AwsService) -> None:
    topic, queue = topic_to_queue(aws)
    sns = {"SNSAction": {"TopicArn": topic}}
    rule_set(aws,
             {"Name": "off", "Enabled": False, "Recipients": [], "Actions": [sns]},
             {"Name": "domain", "Enabled": True, "Recipients": ["example.com"],
              "Actions": [sns, {"StopAction": {"Scope": "RuleSet"}}]},
             {"Name": "after-stop", "Enabled": True, "Recipients": [], "Actions": [sns]},
             {"Name": "sub", "Enabled": True, "Recipients": [".corp.test"], "Actions": [sns]})
    first = aws.receive_email("a@x.org", ["anyone@example.com"], "one", "1")
    assert [(a["rule"], a["type"]) for a in first["actions"]] == [("domain", "SNS"),
                                                                   ("domain", "Stop")]
    second = aws.receive_email("a@x.org", "ops@eu.corp.test", "two", "2")
    assert [a["rule"] for a in second["actions"]] == ["after-stop", "sub"]
    assert len(received(aws, queue)) == 3


def test_no_active_rule_set_or_no_match_does_nothing(aws: AwsService) -> None:
    assert aws.receive_email("a@x.org", "in@example.com", "s", "b")["ruleSet"] is None
    rule_set(aws, {"Name": "only", "Enabled": True, "Recipients": ["in@example.com"],
                   "Actions": [{"S3Action": {"BucketName": "inbound"}}]})
    missed = aws.receive_email("a@x.org", "other@example.com", "s", "b")
    assert missed["ruleSet"] == "inbound" and missed["actions"] == []
    assert aws.client("s3").list_objects_v2(Bucket="inbound").get("KeyCount") == 0


def test_raw_mime_with_envelope_recipients(aws: AwsService) -> None:
    rule_set(aws, {"Name": "s", "Enabled": True, "Recipients": ["bcc@example.com"],
                   "Actions": [{"S3Action": {"BucketName": "inbound"}}]})
    raw = "From: b@x.org\r\nTo: list@example.com\r\nSubject: raw\r\n\r\nraw body\r\n"
    result = aws.receive_email(raw=raw, recipients=["bcc@example.com"])
    assert result["recipients"] == ["bcc@example.com"] and len(result["actions"]) == 1
    body = aws.client("s3").get_object(Bucket="inbound", Key=result["messageId"])["Body"]
    assert "raw body" in body.read().decode()


def test_a_rule_whose_bucket_is_missing_and_bad_input_are_errors(aws: AwsService) -> None:
    rule_set(aws, {"Name": "s", "Enabled": True, "Recipients": [],
                   "Actions": [{"S3Action": {"BucketName": "inbound"}}]})
    aws.client("s3").delete_bucket(Bucket="inbound")
    with pytest.raises(ShakedownError, match="the email was not received"):
        aws.receive_email("a@x.org", "in@example.com", "s", "b")
    with pytest.raises(ShakedownError, match="missing source"):
        aws.receive_email(to="in@example.com")
    with pytest.raises(ShakedownError, match="no recipient"):
        aws.receive_email(raw="Subject: none\r\n\r\nx\r\n")


def test_deliveries_are_in_the_history(env: Environment, aws: AwsService) -> None:
    result = aws.receive_email("a@x.org", "in@example.com", "s", "b")
    path = env.history.path if env.history is not None else None
    text = Path(path).read_text() if path else ""
    events = [json.loads(line) for line in text.splitlines() if "ses.receive" in line]
    assert any(e["value"]["message_id"] == result["messageId"] for e in events), text[-2000:]
