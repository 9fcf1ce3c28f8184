"""What a REST API (API Gateway v1) does differently from an HTTP API: the proxy integration's
event in payload format 1.0 (``resource``, ``httpMethod``, single- and multi-value headers and
query strings, ``requestContext.identity``), the mapping of the function's answer (a JSON
object with ``statusCode``, else ``502 Internal server error``), and its error answers."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Mapping
from typing import Any

STAGE = "local"  # the stage the local URL serves (no stage prefix in the path)
MISSING_TOKEN = (403, {"message": "Missing Authentication Token"})  # REST's "no such route"
FORBIDDEN = (403, {"message": "Forbidden"})
BAD_GATEWAY = (502, {"message": "Internal server error"})
TIMED_OUT = (504, {"message": "Endpoint request timed out"})


def event_v1(request: Mapping[str, Any], resource: str, params: dict[str, str],
             body: bytes, binary: bool, ids: Mapping[str, str],
             authorizer: dict[str, Any] | None) -> dict[str, Any]:
    """The proxy integration's event, payload format 1.0. ``request`` holds method, path,
    headers (name -> values, lowercase names as sent), query (name -> values), source IP."""
    headers: dict[str, list[str]] = request["headers"]
    query: dict[str, list[str]] = request["query"]
    now = time.time()
    context: dict[str, Any] = {
        "accountId": ids["account"], "apiId": ids["api"], "resourceId": ids["api"][:6],
        "resourcePath": resource, "httpMethod": request["method"],
        "path": f"/{STAGE}{request['path']}", "stage": STAGE,
        "requestId": str(uuid.uuid4()), "protocol": request["protocol"],
        "domainName": request["host"], "requestTimeEpoch": int(now * 1000),
        "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
        "identity": {"sourceIp": request["source_ip"],
                     "userAgent": (headers.get("user-agent") or [""])[-1],
                     "apiKey": headers["x-api-key"][-1] if "x-api-key" in headers else None}}
    if authorizer is not None:
        context["authorizer"] = authorizer
    event: dict[str, Any] = {
        "resource": resource, "path": request["path"], "httpMethod": request["method"],
        "headers": {k: v[-1] for k, v in headers.items()} or None,
        "multiValueHeaders": headers or None,
        "queryStringParameters": {k: v[-1] for k, v in query.items()} or None,
        "multiValueQueryStringParameters": query or None,
        "pathParameters": params or None, "stageVariables": None,
        "requestContext": context, "body": None, "isBase64Encoded": False}
    if body:
        event["isBase64Encoded"] = binary
        event["body"] = base64.b64encode(body).decode() if binary else \
            body.decode("utf-8", "replace")
    return event


def response_v1(payload: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
    """(status, headers, body) of a function's answer as a REST proxy integration maps it;
    anything but an object with an integer ``statusCode`` is a 502, as API Gateway answers."""
    try:
        result = json.loads(payload)
        status = int(result["statusCode"])
    except (ValueError, TypeError, KeyError):
        return _error(BAD_GATEWAY)
    headers = [(str(k), str(v)) for k, v in (result.get("headers") or {}).items()]
    single = {name.lower() for name, _ in headers}
    for name, values in (result.get("multiValueHeaders") or {}).items():
        if str(name).lower() not in single:
            headers += [(str(name), str(v)) for v in values or []]
    body = result.get("body")
    if body is None:
        data = b""
    elif result.get("isBase64Encoded"):
        data = base64.b64decode(str(body))
    else:
        data = (body if isinstance(body, str) else json.dumps(body)).encode()
    if not any(name.lower() == "content-type" for name, _ in headers):
        headers.append(("Content-Type", "application/json"))
    return status, headers, data


def _error(answer: tuple[int, dict[str, Any]]) -> tuple[int, list[tuple[str, str]], bytes]:
    return answer[0], [("Content-Type", "application/json"),
                       ("x-amzn-ErrorType", "InternalServerErrorException")], \
        json.dumps(answer[1]).encode()
