"""Inbound mail, delivered as SES would (``POST /_shakedown/mail/receive``): the message (a raw
MIME text, or source/to/subject/body from which one is made) goes through the *active receipt
rule set* the system created with SES's own API (``CreateReceiptRuleSet``, ``CreateReceiptRule``,
``SetActiveReceiptRuleSet``: moto keeps them but acts on none). Each enabled rule whose
recipients match (an address, a domain, a ``.domain`` for its subdomains, none for all) runs
its actions in order: ``S3Action`` stores the MIME text at ``ObjectKeyPrefix + messageId``
(then notifies its ``TopicArn``, if any), ``SNSAction`` publishes SES's notification JSON with
the content, ``StopAction`` ends the rule set. Other actions are listed as skipped, never run
silently. What was done is returned and written as an ``ses.receive`` compute event."""

from __future__ import annotations

import email
import email.policy
import email.utils
import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

from ._events import Events
from ._settings import DEFAULT_ACCOUNT


class MailError(ValueError):
    """The message cannot be received as asked (HTTP 400 with the reason)."""


@dataclass
class Delivery:
    """What receiving one message did."""

    message_id: str
    recipients: list[str]
    rule_set: str | None
    actions: list[dict[str, Any]] = field(default_factory=list)
    began: float = field(default_factory=time.monotonic)

    def to_dict(self) -> dict[str, Any]:
        return {"messageId": self.message_id, "recipients": self.recipients,
                "ruleSet": self.rule_set, "actions": self.actions}


def receive(region: str, request: dict[str, Any], events: Events) -> Delivery:
    """Deliver ``request`` (``raw`` MIME text, or ``source``, ``to``, ``subject``, ``body``)."""
    message = _message(request)
    recipients = _recipients(request, message)
    delivery = Delivery(f"{uuid.uuid4().hex}{uuid.uuid4().hex[:8]}", recipients, None)
    rule_set = _active_rule_set(region)
    if rule_set is not None:
        delivery.rule_set = rule_set.name
        _run_rules(region, rule_set.rules, message, delivery)
    events.emit("ses.receive", message_id=delivery.message_id, recipients=recipients,
                rule_set=delivery.rule_set, actions=[a["type"] for a in delivery.actions])
    return delivery


# -- the message ------------------------------------------------------------------------------
def _message(request: dict[str, Any]) -> EmailMessage:
    raw = request.get("raw")
    if raw is not None:
        if not isinstance(raw, str) or not raw.strip():
            raise MailError("raw must be the message's MIME text")
        parsed = email.message_from_string(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed
    missing = [key for key in ("source", "to") if not request.get(key)]
    if missing:
        raise MailError(f"missing {', '.join(missing)}: give raw, or source and to")
    message = EmailMessage()
    message["From"] = str(request["source"])
    message["To"] = ", ".join(_as_list(request["to"]))
    message["Subject"] = str(request.get("subject", ""))
    message["Date"] = email.utils.format_datetime(datetime.now(UTC))
    message["Message-ID"] = email.utils.make_msgid()
    message.set_content(str(request.get("body", "")))
    return message


def _recipients(request: dict[str, Any], message: EmailMessage) -> list[str]:
    given = request.get("recipients") or request.get("to") or message.get_all("To", [])
    found = [address for _, address in email.utils.getaddresses(_as_list(given)) if address]
    if not found:
        raise MailError("the message has no recipient (To, or recipients)")
    return found


def _as_list(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list | tuple) else [str(value)]


# -- the rules --------------------------------------------------------------------------------
def _active_rule_set(region: str) -> Any:
    from moto.ses.models import ses_backends

    return ses_backends[DEFAULT_ACCOUNT][region].describe_active_receipt_rule_set()


def _matches(rule: dict[str, Any], recipient: str) -> bool:
    wanted = [str(r).lower() for r in _members(rule.get("Recipients"))]
    if not wanted:
        return True
    address = recipient.lower()
    domain = address.rpartition("@")[2]
    return any(address == w or domain == w or (w.startswith(".") and domain.endswith(w))
               for w in wanted)


def _members(value: Any) -> list[Any]:
    """A list as moto keeps it (a list, or a query-protocol ``{"member": [...]}``)."""
    if isinstance(value, dict):
        value = value.get("member", list(value.values()))
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _run_rules(region: str, rules: list[dict[str, Any]], message: EmailMessage,
               delivery: Delivery) -> None:
    for rule in rules:
        if str(rule.get("Enabled", "true")).lower() == "false":
            continue
        matched = [r for r in delivery.recipients if _matches(rule, r)]
        if not matched:
            continue
        for action in _members(rule.get("Actions")):
            (kind, params), = action.items()
            done = _act(region, kind, params, rule, matched, message, delivery)
            delivery.actions.append({"rule": rule.get("Name"), **done})
            if kind == "StopAction":
                return


def _act(region: str, kind: str, params: dict[str, Any], rule: dict[str, Any],
         recipients: list[str], message: EmailMessage, delivery: Delivery) -> dict[str, Any]:
    content = message.as_string()
    if kind == "S3Action":
        key = f"{params.get('ObjectKeyPrefix', '')}{delivery.message_id}"
        _put_object(params["BucketName"], key, content.encode())
        action = {"type": "S3", "bucketName": params["BucketName"], "objectKey": key}
        if params.get("TopicArn"):
            action["topicArn"] = params["TopicArn"]
            _publish(region, params["TopicArn"],
                     _notification(message, rule, recipients, delivery, action, None))
        return action
    if kind == "SNSAction":
        action = {"type": "SNS", "topicArn": params["TopicArn"],
                  "encoding": params.get("Encoding", "UTF-8")}
        _publish(region, params["TopicArn"],
                 _notification(message, rule, recipients, delivery, action, content))
        return action
    if kind == "StopAction":
        return {"type": "Stop", "scope": params.get("Scope", "RuleSet")}
    return {"type": kind.removesuffix("Action"), "skipped": "not emulated by shakedown"}


def _put_object(bucket: str, key: str, data: bytes) -> None:
    from moto.s3.models import s3_backends

    s3_backends[DEFAULT_ACCOUNT]["aws"].put_object(bucket, key, data)


def _publish(region: str, topic_arn: str, notification: dict[str, Any]) -> None:
    from moto.sns.models import sns_backends

    sns_backends[DEFAULT_ACCOUNT][region].publish(
        json.dumps(notification), arn=topic_arn, subject="Amazon SES Email Receipt Notification")


def _notification(message: EmailMessage, rule: dict[str, Any], recipients: list[str],
                  delivery: Delivery, action: dict[str, Any], content: str | None
                  ) -> dict[str, Any]:
    """SES's "Received" notification: the mail's headers, the receipt, the content (SNS)."""
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    headers = [{"name": name, "value": str(value)} for name, value in message.items()]
    common = {"from": _header_list(message, "From"), "to": _header_list(message, "To"),
              "subject": str(message.get("Subject", "")),
              "messageId": str(message.get("Message-ID", "")),
              "date": str(message.get("Date", ""))}
    source = email.utils.parseaddr(str(message.get("From", "")))[1]
    notification: dict[str, Any] = {
        "notificationType": "Received",
        "mail": {"timestamp": now, "source": source, "messageId": delivery.message_id,
                 "destination": recipients, "headersTruncated": False, "headers": headers,
                 "commonHeaders": common},
        "receipt": {"timestamp": now, "processingTimeMillis":
                    int((time.monotonic() - delivery.began) * 1000),
                    "recipients": recipients, "spamVerdict": {"status": "PASS"},
                    "virusVerdict": {"status": "PASS"}, "spfVerdict": {"status": "PASS"},
                    "dkimVerdict": {"status": "PASS"}, "dmarcVerdict": {"status": "PASS"},
                    "action": action},
    }
    if content is not None:
        notification["content"] = content
    return notification


def _header_list(message: EmailMessage, name: str) -> list[str]:
    return [str(v) for v in message.get_all(name, [])]
