"""The email-to-preview system's infrastructure as code, applied with AWS's own APIs: what the
topology's declared resources (the ``mail`` queue, the ``sessions`` table, the ``preview-mail``
bucket) do not cover. It owns:

- the SNS topic ``inbound-mail``, subscribed by the mail queue;
- SES's receipt rule set ``preview``, active, whose one rule takes every mail to the preview
  domain, archives its MIME text in the bucket (``mail/MESSAGE-ID``) and publishes SES's
  notification to the topic; and the verified address the dispatcher replies from;
- the ECS task definition ``edit``: the edit container (image ``edit:latest``), its preview and
  hot-reload ports, and the ``workspace`` volume at ``/workspace``.

``provision`` is idempotent, as an apply should be: what exists is left as it is."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

DOMAIN = "preview.example.com"
REPLY_FROM = f"preview@{DOMAIN}"
TOPIC = "inbound-mail"
QUEUE = "mail"
BUCKET = "preview-mail"
RULE_SET = "preview"
FAMILY = "edit"
IMAGE = "edit:latest"
PREVIEW_PORT, RELOAD_PORT = 8080, 8081


def provision(client: Callable[[str], Any]) -> None:
    """Apply it all; ``client(name)`` makes a boto3 client of the target account."""
    topic = mail_topic(client("sns"), client("sqs"))
    receipt_rules(client("ses"), topic)
    edit_task_definition(client("ecs"))


def mail_topic(sns: Any, sqs: Any) -> str:
    topic = str(sns.create_topic(Name=TOPIC)["TopicArn"])  # SNS answers the same ARN again
    queue_url = sqs.get_queue_url(QueueName=QUEUE)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    subscriptions = sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    if not any(s["Endpoint"] == queue_arn for s in subscriptions):
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    return topic


def receipt_rules(ses: Any, topic: str) -> None:
    ses.verify_email_identity(EmailAddress=REPLY_FROM)
    active = ses.describe_active_receipt_rule_set().get("Metadata") or {}
    if active.get("Name") == RULE_SET:
        return
    try:
        ses.create_receipt_rule_set(RuleSetName=RULE_SET)
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "AlreadyExists":
            raise
    ses.create_receipt_rule(RuleSetName=RULE_SET, Rule={
        "Name": "sessions", "Enabled": True, "ScanEnabled": False, "Recipients": [DOMAIN],
        "Actions": [{"S3Action": {"BucketName": BUCKET, "ObjectKeyPrefix": "mail/"}},
                    {"SNSAction": {"TopicArn": topic, "Encoding": "UTF-8"}}]})
    ses.set_active_receipt_rule_set(RuleSetName=RULE_SET)


def edit_task_definition(ecs: Any) -> str:
    known = ecs.list_task_definitions(familyPrefix=FAMILY, status="ACTIVE")
    if known["taskDefinitionArns"]:
        return str(known["taskDefinitionArns"][-1])
    container = {
        "name": "edit", "image": IMAGE, "essential": True, "memory": 256,
        "portMappings": [{"containerPort": PREVIEW_PORT}, {"containerPort": RELOAD_PORT}],
        "mountPoints": [{"sourceVolume": "workspace", "containerPath": "/workspace"}],
        "stopTimeout": 5,  # it exits at once on SIGTERM; this only bounds a hang
    }
    answer = ecs.register_task_definition(family=FAMILY, containerDefinitions=[container],
                                          volumes=[{"name": "workspace"}])
    return str(answer["taskDefinition"]["taskDefinitionArn"])
