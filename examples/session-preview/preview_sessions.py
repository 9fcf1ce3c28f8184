"""The session record of the email-to-preview system: one DynamoDB item per session, written by
the dispatcher (each mail becomes the session's next revision) and by the edit container (it
marks the revision it serves ``live``, and the session ``expired`` or ``stopped``). This module
owns the item's schema, the session id rules and the session <-> ECS service naming, so the two
programs cannot drift apart.

Every write is conditional on the revision its writer read: the dispatcher's ``PutItem`` on the
revision before it, the container's status updates on the revision it serves. A mail that
arrives while a container expires its session therefore wins, and is never lost."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

STARTING, LIVE, EXPIRED, STOPPED = "starting", "live", "expired", "stopped"
SERVICE_PREFIX = "session-"
# A session id becomes an ECS service name and a path segment the router matches: keep it to
# what all three accept (and lower case, as mail local parts are case-insensitive in practice).
SESSION_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
# A path in a session's workspace: relative, segments that do not start with "." (so neither
# ".." nor ".git"), nothing a shell or URL would read twice.
WORKSPACE_PATH = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]*(/[A-Za-z0-9_-][A-Za-z0-9._-]*)*$")
THROTTLING = frozenset({"ProvisionedThroughputExceededException", "ThrottlingException",
                        "RequestLimitExceeded"})

_TO_ITEM, _FROM_ITEM = TypeSerializer(), TypeDeserializer()


def service_name(session_id: str) -> str:
    """The ECS service that runs the session's edit container."""
    return SERVICE_PREFIX + session_id


def session_of(service: str) -> str:
    """The session id of an ECS service name (or ARN) made by ``service_name``."""
    name = service.rsplit("/", 1)[-1]
    if not name.startswith(SERVICE_PREFIX):
        raise ValueError(f"ECS service {name!r} is not a session's ({SERVICE_PREFIX}ID)")
    return name[len(SERVICE_PREFIX):]


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


@dataclass(frozen=True)
class Instruction:
    """What one mail asks for: write ``text`` to ``path`` and commit it as ``subject``."""

    path: str
    text: str
    subject: str


@dataclass(frozen=True)
class Session:
    """One revision of a session, as stored."""

    id: str
    revision: int
    status: str
    instruction: Instruction
    message_id: str
    sender: str
    updated_at: float

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "revision": self.revision, "status": self.status,
                "path": self.instruction.path, "subject": self.instruction.subject,
                "message_id": self.message_id, "sender": self.sender,
                "updated_at": self.updated_at, "preview": f"/session/{self.id}/"}


class SessionTable:
    """The sessions table, through a low-level DynamoDB client (retries are the caller's)."""

    def __init__(self, client: Any, name: str) -> None:
        self.client = client
        self.name = name

    def get(self, session_id: str) -> Session | None:
        answer = self.client.get_item(TableName=self.name, Key=_key(session_id),
                                      ConsistentRead=True)
        return _session(answer["Item"]) if "Item" in answer else None

    def put_revision(self, session: Session, previous: int | None) -> None:
        """Write ``session`` over revision ``previous`` (None: the session is new). Raises
        ClientError: ConditionalCheckFailedException when another write came first, a
        throttling code when DynamoDB refuses the write."""
        if previous is None:
            condition: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(id)"}
        else:
            condition = {"ConditionExpression": "revision = :previous",
                         "ExpressionAttributeValues": {":previous": {"N": str(previous)}}}
        self.client.put_item(TableName=self.name, Item=_item(session), **condition)

    def set_status(self, session_id: str, revision: int, status: str) -> bool:
        """Set the status of ``revision`` if it is still the latest; False when the session
        moved on (a newer mail was recorded)."""
        values: dict[str, Any] = {":revision": {"N": str(revision)}, ":status": {"S": status},
                                  ":now": {"N": repr(time.time())}}
        try:
            self.client.update_item(
                TableName=self.name, Key=_key(session_id),
                UpdateExpression="SET #status = :status, updated_at = :now",
                ConditionExpression="revision = :revision",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues=values)
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise
        return True


def _key(session_id: str) -> dict[str, Any]:
    return {"id": {"S": session_id}}


def _item(session: Session) -> dict[str, Any]:
    plain = {"id": session.id, "revision": session.revision, "status": session.status,
             "path": session.instruction.path, "text": session.instruction.text,
             "subject": session.instruction.subject, "message_id": session.message_id,
             "sender": session.sender}
    item = {key: _TO_ITEM.serialize(value) for key, value in plain.items()}
    # the serializer takes Decimal, not float: a time is written as DynamoDB's number text
    item["updated_at"] = {"N": repr(session.updated_at)}
    return item


def _session(item: dict[str, Any]) -> Session:
    plain = {key: _FROM_ITEM.deserialize(value) for key, value in item.items()}
    return Session(id=str(plain["id"]), revision=int(plain["revision"]),
                   status=str(plain["status"]),
                   instruction=Instruction(str(plain["path"]), str(plain["text"]),
                                           str(plain["subject"])),
                   message_id=str(plain["message_id"]), sender=str(plain["sender"]),
                   updated_at=float(plain["updated_at"]))
