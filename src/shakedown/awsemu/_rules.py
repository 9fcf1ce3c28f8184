"""Fault rules of the AWS emulator: ``RuleData``, the one typed schema of a rule as the ``aws``
kind sends it and the server stores it, and ``Rule``, a stored rule that counts what it matched.
Imported by the emulator process and by the kind, so it imports nothing else of shakedown."""

from __future__ import annotations

import random
import threading
from typing import Any, Literal, NotRequired, TypedDict

RuleAction = Literal["error", "latency"]


class RuleData(TypedDict):
    """One rule: which requests it matches and what it does to them."""

    id: NotRequired[str]
    action: RuleAction
    service: str  # boto3's name of the AWS service (dynamodb, sqs, s3, ec2, lambda...)
    operation: str  # the operation's API name, or "*"
    probability: float  # share of the matching requests it acts on, in (0, 1]
    times: int | None  # stop after that many, None for no limit
    signing_name: str  # the service's name in SigV4 credentials scopes
    target_prefix: str  # JSON protocols: the X-Amz-Target prefix ("" for others)
    protocol: str  # botocore's protocol name: json, query, rest-json, rest-xml, ec2
    query_compatible: bool
    # error rules
    error: NotRequired[str]
    status: NotRequired[int]
    message: NotRequired[str | None]
    type_prefix: NotRequired[str]
    # latency rules
    ms: NotRequired[float]


class Rule:
    """One rule as sent by the ``aws`` service: what it matches and what it does."""

    def __init__(self, data: RuleData) -> None:
        self.data = data
        self.id: str = data.get("id", "")
        self.action: RuleAction = data["action"]
        self.service: str = data["service"]
        self.signing_name: str = data.get("signing_name") or self.service
        self.target_prefix: str = data.get("target_prefix") or ""
        self.operation: str = data.get("operation") or "*"
        self.probability: float = float(data.get("probability", 1.0))
        self.times: int | None = data.get("times")
        self.hits = 0
        self.seen = 0
        self._lock = threading.Lock()

    def matches(self, service: str | None, prefix: str | None, operation: str | None) -> bool:
        if prefix is not None and self.target_prefix:
            same_service = prefix == self.target_prefix
        else:
            same_service = service == self.signing_name
        return same_service and self.operation in ("*", operation)

    def fire(self) -> bool:
        """Count a matching request; True when the rule applies to it."""
        with self._lock:
            self.seen += 1
            if self.times is not None and self.hits >= self.times:
                return False
            if self.probability < 1.0 and random.random() >= self.probability:
                return False
            self.hits += 1
            return True

    def to_dict(self) -> dict[str, Any]:
        return {**self.data, "hits": self.hits, "seen": self.seen}
