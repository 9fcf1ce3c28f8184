"""API Gateway HTTP APIs in front of the native Lambda runtime: each declared API listens on a
port of its own and sends each request matching a route (``"POST /jobs"``,
``"GET /jobs/{id}"``, ``"ANY /files/{path+}"``, ``"$default"``) to its function as a proxy
integration with payload format 2.0; the function's answer becomes the HTTP response as API
Gateway maps it. An API with ``api_key`` requires the ``x-api-key`` header, as an authorizer
whose identity source is that header answers: 401 without it, 403 with a wrong one."""

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

from ._http import HttpServer
from ._lambda import Function, LambdaRuntime, NotRunnable, Throttled
from ._wsgi import Environ, StartResponse, read_body

_TEXT_TYPES = re.compile(r"^(text/|application/(json|xml|javascript|x-www-form-urlencoded)"
                         r"|.*\+(json|xml))", re.IGNORECASE)
_REASONS = {200: "OK", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
            413: "Request Entity Too Large", 500: "Internal Server Error",
            503: "Service Unavailable"}
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
                 resolve: Callable[[str], Function | None], account: str) -> None:
        self.name = name
        self.api_id = hashlib.sha256(name.encode()).hexdigest()[:10]
        self.api_key: str | None = spec.get("api_key")
        self.routes = sorted((Route(k, v) for k, v in spec["routes"].items()),
                             key=lambda r: (r.rank, r.method == "ANY"))
        self.runtime = runtime
        self.resolve = resolve
        self.account = account

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if self.api_key is not None:
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
            return _message(start_response, 404, "Not Found")
        body = read_body(environ)
        if len(body) > MAX_BODY:
            return _message(start_response, 413, "Request Entity Too Large")
        function = self.resolve(route.function)
        if function is None:
            return _message(start_response, 500, "Internal Server Error")
        event = self.event(environ, route, params, body)
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

    def event(self, environ: Environ, route: Route, params: dict[str, str], body: bytes
              ) -> dict[str, Any]:
        """The proxy integration's event, payload format 2.0."""
        headers: dict[str, str] = {}
        for key, value in environ.items():
            if key.startswith("HTTP_"):
                name = key[5:].replace("_", "-").lower()
            elif key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
                name = key.replace("_", "-").lower()
            else:
                continue
            headers[name] = f"{headers[name]},{value}" if name in headers else str(value)
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
