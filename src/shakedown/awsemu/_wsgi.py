"""WSGI plumbing of the AWS emulator: the types, request bodies read twice (the fault layer
and moto both read them), JSON answers and AWS's error responses in each protocol's shape."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from xml.sax.saxutils import escape

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
App = Callable[[Environ, StartResponse], Iterable[bytes]]


def signing_name(auth: str) -> str | None:
    # AWS4-HMAC-SHA256 Credential=KEY/DATE/REGION/SERVICE/aws4_request, ...
    marker = auth.find("Credential=")
    if marker < 0:
        return None
    scope = auth[marker + len("Credential="):].split(",", 1)[0].split("/")
    return scope[3].lower() if len(scope) >= 5 else None


def read_body(environ: Environ) -> bytes:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    body: bytes = environ["wsgi.input"].read(length) if length > 0 else b""
    environ["wsgi.input"] = io.BytesIO(body)  # moto reads it again
    return body


def json_response(start_response: StartResponse, status: int, data: Any) -> list[bytes]:
    body = json.dumps(data).encode()
    start_response(f"{status} {_REASONS.get(status, 'Error')}",
                   [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


_REASONS = {200: "OK", 201: "Created", 400: "Bad Request", 403: "Forbidden", 404: "Not Found",
            409: "Conflict", 429: "Too Many Requests", 500: "Internal Server Error",
            502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}


def error_response(environ: Environ, start_response: StartResponse, rule: Mapping[str, Any]
                   ) -> list[bytes]:
    """The error as AWS sends it for the request's protocol: JSON with ``__type`` for JSON
    protocols, ``<ErrorResponse>`` XML for the query protocol, ``<Error>`` XML for rest-xml."""
    code, status = str(rule["error"]), int(rule["status"])
    message = str(rule.get("message") or f"injected by shakedown: {code}")
    request_id = str(uuid.uuid4())
    fault = "Sender" if status < 500 else "Receiver"
    headers = [("x-amzn-RequestId", request_id)]
    content_type = environ.get("CONTENT_TYPE", "")
    if environ.get("HTTP_X_AMZ_TARGET") or rule.get("protocol") == "rest-json":
        headers.append(("x-amzn-ErrorType", code))
        body = json.dumps({"__type": str(rule.get("type_prefix") or "") + code,
                           "message": message}).encode()
        json_type = content_type if content_type.startswith("application/x-amz-json") \
            else "application/x-amz-json-1.0"
        headers.append(("Content-Type", json_type))
        if rule.get("query_compatible"):
            headers.append(("x-amzn-query-error", f"{code};{fault}"))
    elif rule.get("protocol") == "rest-xml" and not _is_query(environ):
        body = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                f"<Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message>"
                f"<RequestId>{request_id}</RequestId></Error>").encode()
        headers += [("Content-Type", "application/xml"), ("x-amz-request-id", request_id)]
    else:
        body = ("<?xml version=\"1.0\"?>\n<ErrorResponse><Error>"
                f"<Type>{fault}</Type><Code>{escape(code)}</Code>"
                f"<Message>{escape(message)}</Message></Error>"
                f"<RequestId>{request_id}</RequestId></ErrorResponse>").encode()
        headers.append(("Content-Type", "text/xml"))
    headers.append(("Content-Length", str(len(body))))
    start_response(f"{status} {_REASONS.get(status, 'Error')}", headers)
    return [body]


def _is_query(environ: Environ) -> bool:
    return "Action=" in environ.get("QUERY_STRING", "")


def header_key(header: str) -> str:
    """The WSGI environ key of an HTTP header."""
    return "HTTP_" + header.upper().replace("-", "_")


class ResourceError(Exception):
    """A declared resource (table, queue, bucket, function) could not be created."""
