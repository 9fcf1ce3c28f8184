"""The ``Invoke`` operation over HTTP, answered by the native runtime instead of moto: the
invocation types (RequestResponse, Event, DryRun), ``X-Amz-Log-Type: Tail``, and Lambda's own
error answers (``TooManyRequestsException``, ``InvalidRequestContentException``,
``InvalidRuntimeException``). Requests for functions moto does not know go on to moto, which
answers ``ResourceNotFoundException`` as AWS does."""

from __future__ import annotations

import base64
import json
import re
import sys
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qs, unquote

from ._lambda import LambdaRuntime, NotRunnable, Throttled
from ._settings import DEFAULT_ACCOUNT
from ._wsgi import Environ, StartResponse, read_body

INVOKE_PATH = re.compile(r"^/2015-03-31/functions/([^/]+)/invocations/?$")
_KEY = re.compile(r"Credential=([^/]+)/\d+/([^/]+)/")


def lambda_model(environ: Environ, name: str, qualifier: str | None, region: str) -> Any:
    """moto's ``LambdaFunction`` named in the request, or None (moto will say why)."""
    from moto.awslambda.models import lambda_backends

    account, region = account_and_region(environ, region)
    try:
        return lambda_backends[account][region].get_function(name, qualifier)
    except Exception:
        return None


def account_and_region(environ: Environ, default_region: str) -> tuple[str, str]:
    """The account moto files the request under (from the access key) and the region of its
    signature."""
    match = _KEY.search(environ.get("HTTP_AUTHORIZATION", ""))
    if not match:
        return DEFAULT_ACCOUNT, default_region
    try:
        from moto.iam.models import get_account_id_from

        return str(get_account_id_from(match.group(1))), match.group(2)
    except Exception:
        return DEFAULT_ACCOUNT, match.group(2)


def handle_invoke(runtime: LambdaRuntime, environ: Environ, start_response: StartResponse,
                  name: str) -> Iterable[bytes] | None:
    query = parse_qs(environ.get("QUERY_STRING", ""))
    qualifier = (query.get("Qualifier") or [None])[0]
    model = lambda_model(environ, unquote(name), qualifier, runtime.settings.region)
    if model is None:
        return None
    invocation_type = environ.get("HTTP_X_AMZ_INVOCATION_TYPE") or "RequestResponse"
    body = read_body(environ)
    if body.strip():
        try:
            json.loads(body)
        except ValueError as exc:
            return lambda_error(start_response, 400, "InvalidRequestContentException",
                                f"Could not parse request body into json: {exc}")
    try:
        function = runtime.function(model)
    except NotRunnable as exc:
        return lambda_error(start_response, 502, "InvalidRuntimeException", str(exc))
    if invocation_type == "DryRun":
        start_response("204 No Content", [("X-Amz-Executed-Version", function.version)])
        return [b""]
    if invocation_type == "Event":
        runtime.invoke_async(function, body)
        start_response("202 Accepted", [("Content-Length", "0")])
        return [b""]
    context = _client_context(environ.get("HTTP_X_AMZ_CLIENT_CONTEXT"))
    try:
        outcome = runtime.invoke(function, body, context)
    except Throttled as exc:
        return lambda_error(start_response, 429, "TooManyRequestsException", "Rate Exceeded.",
                            Reason=exc.reason)
    except Exception as exc:  # the emulator's own failure: say so as a service error
        print(f"shakedown: invoke {function.name} failed: {exc!r}", file=sys.stderr,
              flush=True)
        return lambda_error(start_response, 500, "ServiceException",
                            f"shakedown could not run the function: {exc}")
    headers = [("Content-Type", "application/json"),
               ("X-Amz-Executed-Version", function.version),
               ("x-amzn-RequestId", outcome.request_id),
               ("Content-Length", str(len(outcome.payload)))]
    if outcome.error is not None:
        headers.append(("X-Amz-Function-Error", "Unhandled"))
    if environ.get("HTTP_X_AMZ_LOG_TYPE") == "Tail":
        tail = outcome.log.encode()[-TAIL:]
        headers.append(("X-Amz-Log-Result", base64.b64encode(tail).decode()))
    start_response("200 OK", headers)
    return [outcome.payload]


TAIL = 4096


def _client_context(header: str | None) -> Any:
    if not header:
        return None
    try:
        return json.loads(base64.b64decode(header))
    except ValueError:
        return None


def lambda_error(start_response: StartResponse, status: int, code: str, message: str,
                 **fields: str) -> list[bytes]:
    """An error of the Lambda API as it answers one (rest-json: the code in a header)."""
    body = json.dumps({"Type": "User", "message": message, **fields}).encode()
    reasons = {400: "Bad Request", 429: "Too Many Requests", 500: "Internal Server Error",
               502: "Bad Gateway"}
    start_response(f"{status} {reasons.get(status, 'Error')}",
                   [("Content-Type", "application/json"), ("x-amzn-ErrorType", code),
                    ("Content-Length", str(len(body)))])
    return [body]
