"""Lambda authorizers in front of an API's routes, answered as API Gateway answers them: no
identity (the ``identity_source`` header) is 401 without calling the function; a REST API's
TOKEN authorizer returns an IAM policy (an explicit Deny or no matching Allow is 403, the
error ``Unauthorized`` is 401); an HTTP API's authorizer returns a simple response
(``isAuthorized``; false is 403). A failing authorizer is a 500. What the authorizer returns
as ``context`` reaches the integration's event (``requestContext.authorizer``)."""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._lambda import Outcome

Invoke = Callable[[dict[str, Any]], Outcome | None]  # None: the function could not be run


@dataclass
class Verdict:
    """Allowed (with the context for the event) or the answer to send instead."""

    status: int = 200
    body: dict[str, Any] | None = None
    context: dict[str, Any] | None = None

    @property
    def allowed(self) -> bool:
        return self.status == 200


UNAUTHORIZED = Verdict(401, {"message": "Unauthorized"})


def token_authorizer(invoke: Invoke, token: str | None, method_arn: str) -> Verdict:
    """A REST API's TOKEN authorizer."""
    if not token:
        return UNAUTHORIZED
    outcome = invoke({"type": "TOKEN", "authorizationToken": token, "methodArn": method_arn})
    if outcome is None:
        return Verdict(500, {"message": None})
    if outcome.error is not None:
        message = _error_message(outcome.payload)
        return UNAUTHORIZED if message == "Unauthorized" else Verdict(500, {"message": None})
    try:
        answer = json.loads(outcome.payload)
        statements = answer["policyDocument"]["Statement"]
    except (ValueError, KeyError, TypeError):
        return Verdict(500, {"message": None})  # AuthorizerConfigurationException
    effects = [str(s.get("Effect")) for s in statements
               if isinstance(s, dict) and _covers(s.get("Resource"), method_arn)
               and _covers(s.get("Action"), "execute-api:Invoke")]
    if "Deny" in effects:
        return Verdict(403, {"Message": "User is not authorized to access this resource "
                                        "with an explicit deny"})
    if "Allow" not in effects:
        return Verdict(403, {"Message": "User is not authorized to access this resource"})
    context = {k: v for k, v in (answer.get("context") or {}).items()}
    return Verdict(context={"principalId": answer.get("principalId"), **context})


def simple_authorizer(invoke: Invoke, identity: str | None, event: dict[str, Any]) -> Verdict:
    """An HTTP API's Lambda authorizer with simple responses (payload format 2.0)."""
    if not identity:
        return UNAUTHORIZED
    outcome = invoke({**event, "type": "REQUEST", "identitySource": [identity]})
    if outcome is None or outcome.error is not None:
        return Verdict(500, {"message": "Internal Server Error"})
    try:
        answer = json.loads(outcome.payload)
    except ValueError:
        return Verdict(500, {"message": "Internal Server Error"})
    if not isinstance(answer, dict) or answer.get("isAuthorized") is not True:
        return Verdict(403, {"message": "Forbidden"})
    return Verdict(context={"lambda": dict(answer.get("context") or {})})


def _covers(patterns: Any, value: str) -> bool:
    """Whether an IAM Resource/Action (one or a list, ``*`` and ``?`` wildcards) covers
    ``value``."""
    listed = patterns if isinstance(patterns, list) else [patterns]
    return any(isinstance(p, str) and fnmatch.fnmatchcase(value, p) for p in listed)


def _error_message(payload: bytes) -> str:
    try:
        return str(json.loads(payload).get("errorMessage", ""))
    except (ValueError, AttributeError):
        return ""
