"""API Gateway in front of the native Lambda runtime: each declared API listens on a port of
its own and sends each request matching a route (``"POST /jobs"``, ``"GET /jobs/{id}"``,
``"ANY /files/{path+}"``, ``"$default"``) to its function as a proxy integration: payload
format 2.0 for an HTTP API, 1.0 for a REST API (``_apigw_rest``); the function's answer
becomes the HTTP response as API Gateway maps it. An HTTP API with ``api_key`` requires the
``x-api-key`` header, as an authorizer whose identity source is that header answers: 401
without it, 403 with a wrong one; a REST API answers 403 for both, as API keys do there. An
``authorizer`` function is called first (``_apigw_auth``)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import socket
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl, unquote

from ._apigw_auth import Verdict, simple_authorizer, token_authorizer
from ._apigw_rest import (
    BAD_GATEWAY,
    FORBIDDEN,
    MISSING_TOKEN,
    STAGE,
    TIMED_OUT,
    event_v1,
    response_v1,
)
from ._http import HttpServer
from ._lambda import Function, LambdaRuntime, NotRunnable, Outcome, Throttled
from ._wsgi import Environ, StartResponse, header_key, read_body

_TEXT_TYPES = re.compile(r"^(text/|application/(json|xml|javascript|x-www-form-urlencoded)"
                         r"|.*\+(json|xml))", re.IGNORECASE)
_REASONS = {200: "OK", 201: "Created", 204: "No Content", 400: "Bad Request",
            401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
            413: "Request Entity Too Large", 500: "Internal Server Error", 502: "Bad Gateway",
            503: "Service Unavailable", 504: "Gateway Timeout"}
MAX_BODY = 10 * 1024 * 1024  # API Gateway's payload limit


class Route:
    """``METHOD /path`` with ``{name}`` and a final ``{name+}`` parameter, or ``$default``."""

    def __init__(self, key: str, function: str) -> None:
        self.key = key
        self.function = function
        self.names: list[str] = []
        self.pattern: re.Pattern[str] | None = None
        if key == "$default":
            self.method, self.rank = "ANY", (2, 0)
            return
        self.method, _, path = key.partition(" ")
        parts: list[str] = []
        greedy = False
        for segment in path.strip("/").split("/") if path.strip("/") else []:
            param = re.fullmatch(r"\{([A-Za-z0-9_.-]+)(\+?)\}", segment)
            if param is None:
                parts.append(re.escape(segment))
                continue
            self.names.append(param.group(1))
            greedy = greedy or bool(param.group(2))
            parts.append("(.+)" if param.group(2) else "([^/]+)")
        self.pattern = re.compile("^/" + "/".join(parts) + "/?$")
        literal = sum(1 for p in parts if not p.startswith("("))
        self.rank = (1 if greedy else 0, -literal)

    def match(self, method: str, path: str) -> dict[str, str] | None:
        if self.method not in ("ANY", method):
            return None
        if self.pattern is None:
            return {}
        found = self.pattern.match(path)
        if found is None:
            return None
        return {name: unquote(value) for name, value in zip(self.names, found.groups(),
                                                             strict=True)}


class HttpApi:
    """One HTTP API: a WSGI application in front of the runtime."""

    def __init__(self, name: str, spec: dict[str, Any], runtime: LambdaRuntime,
                 resolve: Callable[[str], Function | None], account: str,
                 region: str = "us-east-1") -> None:
        self.name = name
        self.api_id = hashlib.sha256(name.encode()).hexdigest()[:10]
        self.api_key: str | None = spec.get("api_key")
        self.rest = spec.get("type") == "rest"
        self.authorizer: str | None = spec.get("authorizer")
        self.identity_source = str(spec.get("identity_source") or "authorization")
        self.region = region
        self.routes = sorted((Route(k, v) for k, v in spec["routes"].items()),
                             key=lambda r: (r.rank, r.method == "ANY"))
        self.runtime = runtime
        self.resolve = resolve
        self.account = account

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if self.api_key is not None and not self.rest:  # an HTTP API checks the key first
            given = environ.get("HTTP_X_API_KEY")
            if not given:
                return _message(start_response, 401, "Unauthorized")
            if given != self.api_key:
                return _message(start_response, 403, "Forbidden")
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "/") or "/"
        for route in self.routes:
            params = route.match(method, path)
            if params is not None:
                break
        else:
            if self.rest:
                return _json(start_response, *MISSING_TOKEN)
            return _message(start_response, 404, "Not Found")
        if self.rest and self.api_key is not None \
                and environ.get("HTTP_X_API_KEY") != self.api_key:
            return _json(start_response, *FORBIDDEN)  # a REST API: missing or wrong, 403
        body = read_body(environ)
        if len(body) > MAX_BODY:
            return _message(start_response, 413, "Request Entity Too Large")
        function = self.resolve(route.function)
        if function is None:
            return _message(start_response, 500, "Internal Server Error")
        verdict = self.authorize(environ, route, params, method, path)
        if not verdict.allowed:
            return _json(start_response, verdict.status, verdict.body)
        if self.rest:
            return self.call_rest(environ, start_response, function, route, params, body,
                                  verdict.context)
        event = self.event(environ, route, params, body)
        if verdict.context is not None:
            event["requestContext"]["authorizer"] = verdict.context
        try:
            outcome = self.runtime.invoke(function, json.dumps(event).encode(),
                                          invocation_type="RequestResponse")
        except (Throttled, NotRunnable):
            return _message(start_response, 500, "Internal Server Error")
        if outcome.error is not None:
            if outcome.error == "Sandbox.Timedout":
                return _message(start_response, 503, "Service Unavailable")
            return _message(start_response, 500, "Internal Server Error")
        return self.response(start_response, outcome.payload)

    # -- authorizers and REST APIs -------------------------------------------------------
    def _invoke_named(self, name: str) -> Callable[[dict[str, Any]], Outcome | None]:
        def invoke(event: dict[str, Any]) -> Outcome | None:
            function = self.resolve(name)
            if function is None:
                return None
            try:
                return self.runtime.invoke(function, json.dumps(event).encode(),
                                           invocation_type="RequestResponse")
            except (Throttled, NotRunnable):
                return None
        return invoke

    def authorize(self, environ: Environ, route: Route, params: dict[str, str], method: str,
                  path: str) -> Verdict:
        if self.authorizer is None:
            return Verdict()
        identity = environ.get(header_key(self.identity_source))
        invoke = self._invoke_named(self.authorizer)
        if self.rest:
            arn = (f"arn:aws:execute-api:{self.region}:{self.account}:{self.api_id}/{STAGE}/"
                   f"{method}{path}")
            return token_authorizer(invoke, identity, arn)
        event = self.event(environ, route, params, b"")
        event.pop("body", None)
        event["routeArn"] = (f"arn:aws:execute-api:{self.region}:{self.account}:"
                             f"{self.api_id}/$default/{method}{path}")
        return simple_authorizer(invoke, identity, event)

    def call_rest(self, environ: Environ, start_response: StartResponse, function: Function,
                  route: Route, params: dict[str, str], body: bytes,
                  authorizer: dict[str, Any] | None) -> list[bytes]:
        """A REST API's proxy integration: payload format 1.0 both ways."""
        # WSGI joins a repeated header with commas; split it back would also split a date
        headers = {name: [value] for name, value in _headers(environ).items()}
        query: dict[str, list[str]] = {}
        for key, value in parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True):
            query.setdefault(key, []).append(value)
        resource = "/" + route.key.partition(" ")[2].lstrip("/")
        request = {"method": environ.get("REQUEST_METHOD", "GET"),
                   "path": environ.get("PATH_INFO", "/") or "/", "headers": headers,
                   "query": query, "protocol": environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
                   "source_ip": environ.get("REMOTE_ADDR", "127.0.0.1"),
                   "host": (headers.get("host") or [f"{self.api_id}.execute-api.localhost"])[0]}
        binary = bool(body) and not _TEXT_TYPES.match((headers.get("content-type") or [""])[0])
        event = event_v1(request, resource, params, body, binary,
                         {"account": self.account, "api": self.api_id}, authorizer)
        try:
            outcome = self.runtime.invoke(function, json.dumps(event).encode(),
                                          invocation_type="RequestResponse")
        except (Throttled, NotRunnable):
            return _json(start_response, *BAD_GATEWAY)
        if outcome.error is not None:
            return _json(start_response, *(TIMED_OUT if outcome.error == "Sandbox.Timedout"
                                           else BAD_GATEWAY))
        status, pairs, data = response_v1(outcome.payload)
        pairs = [(k, v) for k, v in pairs if k.lower() != "content-length"]
        pairs += [("Content-Length", str(len(data))),
                  ("x-amzn-RequestId", str(uuid.uuid4()))]
        start_response(f"{status} {_REASONS.get(status, 'Status')}", pairs)
        return [data]

    def event(self, environ: Environ, route: Route, params: dict[str, str], body: bytes
              ) -> dict[str, Any]:
        """The proxy integration's event, payload format 2.0."""
        headers = _headers(environ)
        cookies = [c.strip() for c in headers.pop("cookie", "").split(";") if c.strip()]
        raw_query = environ.get("QUERY_STRING", "")
        query: dict[str, str] = {}
        for key, value in parse_qsl(raw_query, keep_blank_values=True):
            query[key] = f"{query[key]},{value}" if key in query else value
        now = time.time()
        host = headers.get("host", f"{self.api_id}.execute-api.localhost")
        event: dict[str, Any] = {
            "version": "2.0", "routeKey": route.key, "rawPath": environ.get("PATH_INFO", "/"),
            "rawQueryString": raw_query, "headers": headers,
            "requestContext": {
                "accountId": self.account, "apiId": self.api_id, "domainName": host,
                "domainPrefix": host.split(".")[0],
                "http": {"method": environ.get("REQUEST_METHOD", "GET"),
                         "path": environ.get("PATH_INFO", "/"),
                         "protocol": environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
                         "sourceIp": environ.get("REMOTE_ADDR", "127.0.0.1"),
                         "userAgent": headers.get("user-agent", "")},
                "requestId": uuid.uuid4().hex[:16] + "=", "routeKey": route.key,
                "stage": "$default",
                "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
                "timeEpoch": int(now * 1000)},
            "isBase64Encoded": False,
        }
        if cookies:
            event["cookies"] = cookies
        if query:
            event["queryStringParameters"] = query
        if params:
            event["pathParameters"] = params
        if body:
            if _TEXT_TYPES.match(headers.get("content-type", "")):
                event["body"] = body.decode("utf-8", "replace")
            else:
                event["body"] = base64.b64encode(body).decode()
                event["isBase64Encoded"] = True
        return event

    def response(self, start_response: StartResponse, payload: bytes) -> list[bytes]:
        """The function's answer as API Gateway maps a format 2.0 response: a JSON object
        with ``statusCode`` gives status, headers, cookies and body; anything else is the
        body of a 200 JSON answer."""
        try:
            result = json.loads(payload)
        except ValueError:
            return _message(start_response, 500, "Internal Server Error")
        if not isinstance(result, dict) or "statusCode" not in result:
            return _answer(start_response, 200, {"content-type": "application/json"}, [],
                           payload)
        try:
            status = int(result["statusCode"])
        except (TypeError, ValueError):
            return _message(start_response, 500, "Internal Server Error")
        headers = {str(k).lower(): str(v) for k, v in (result.get("headers") or {}).items()}
        headers.setdefault("content-type", "application/json")
        body = result.get("body")
        if body is None:
            data = b""
        elif result.get("isBase64Encoded"):
            data = base64.b64decode(str(body))
        else:
            data = (body if isinstance(body, str) else json.dumps(body)).encode()
        return _answer(start_response, status, headers,
                       [str(c) for c in result.get("cookies") or []], data)


class ApiServers:
    """The declared APIs, each served on its port by a thread of the emulator."""

    def __init__(self) -> None:
        self._servers: list[Any] = []

    def start(self, host: str, port: int, app: HttpApi) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        listener.listen(128)
        server = HttpServer(listener, app, f"api-{app.name}")
        self._servers.append(server)
        server.start()

    def shutdown(self) -> None:
        for server in self._servers:
            server.shutdown()
        self._servers.clear()


def _headers(environ: Environ) -> dict[str, str]:
    """The request's headers, lowercase names, repeated ones joined with commas."""
    headers: dict[str, str] = {}
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            name = key[5:].replace("_", "-").lower()
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
            name = key.replace("_", "-").lower()
        else:
            continue
        headers[name] = f"{headers[name]},{value}" if name in headers else str(value)
    return headers


def _json(start_response: StartResponse, status: int, body: Any) -> list[bytes]:
    return _answer(start_response, status, {"content-type": "application/json"}, [],
                   json.dumps(body).encode())


def _message(start_response: StartResponse, status: int, message: str) -> list[bytes]:
    return _answer(start_response, status, {"content-type": "application/json"}, [],
                   json.dumps({"message": message}).encode())


def _answer(start_response: StartResponse, status: int, headers: dict[str, str],
            cookies: list[str], body: bytes) -> list[bytes]:
    pairs = [(k, v) for k, v in headers.items() if k != "content-length"]
    pairs += [("set-cookie", c) for c in cookies]
    pairs += [("content-length", str(len(body))),
              ("apigw-requestid", uuid.uuid4().hex[:16] + "=")]
    start_response(f"{status} {_REASONS.get(status, 'Status')}", pairs)
    return [body]
