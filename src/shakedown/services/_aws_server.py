"""The process behind the ``aws`` kind: moto's WSGI application in a threaded HTTP server,
wrapped in a fault middleware, with the declared resources created before it answers.

Run as a script (``python -P _aws_server.py --port P --config JSON``), not as
``python -m shakedown.services._aws_server``: running it by path keeps shakedown's own package
(pydantic, psycopg, ...) out of the import, which is most of what a fast start is about. It
imports nothing from shakedown for the same reason.

The listening socket is bound before moto is imported, so a readiness probe that connects early
waits in the accept queue and is answered the moment the application is built (no polling
granularity added to the start time).

Control endpoints (never subject to fault rules), under ``/_shakedown/``:
``GET health``, ``GET rules``, ``POST rules`` (one rule as JSON, answers ``{"id": ...}``),
``DELETE rules/ID``, ``DELETE rules``, ``POST resources`` (create the declared resources again,
after ``POST /moto-api/reset``).
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import os
import random
import re
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
App = Callable[[Environ, StartResponse], Iterable[bytes]]

CONTROL = "/_shakedown/"
FAKE_DATE = "20240101"


# -- fault rules ---------------------------------------------------------------------------
class Rule:
    """One rule as sent by the ``aws`` service: what it matches and what it does."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.id: str = data["id"]
        self.action: str = data["action"]  # "error" or "latency"
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


class RestOperations:
    """Tells a REST (rest-xml / rest-json) operation from the method and path, with the
    request URIs of botocore's service model (loaded on first use, per service)."""

    def __init__(self) -> None:
        self._compiled: dict[str, list[tuple[str, str, re.Pattern[str], dict[str, str | None],
                                             tuple[str, ...], int]]] = {}
        self._lock = threading.Lock()

    def _compile(self, service: str) -> list[Any]:
        with self._lock:
            if service not in self._compiled:
                import botocore.session

                model = botocore.session.get_session().get_service_model(service)
                ops = []
                for name in model.operation_names:
                    op = model.operation_model(name)
                    method = op.http.get("method", "POST")
                    uri = op.http.get("requestUri", "/")
                    path, _, query = uri.partition("?")
                    pattern = "^" + re.sub(
                        r"\\\{([^}]+?)(\\\+)?\\\}",
                        lambda m: ".+" if m.group(2) else "[^/]+",
                        re.escape(path.rstrip("/") or "/"),
                    ) + "/?$"
                    required: dict[str, str | None] = {}
                    for part in filter(None, query.split("&")):
                        key, eq, value = part.partition("=")
                        required[key] = value if eq else None
                    headers: tuple[str, ...] = ()
                    if op.input_shape is not None:
                        headers = tuple(
                            str(op.input_shape.members[m].serialization.get("name", m)).lower()
                            for m in op.input_shape.required_members
                            if op.input_shape.members[m].serialization.get("location")
                            == "header")
                    literal = len(re.sub(r"\{[^}]+\}", "", path))
                    ops.append((name, method, re.compile(pattern), required, headers, literal))
                self._compiled[service] = ops
            return self._compiled[service]

    def operation(self, service: str, environ: Environ) -> str | None:
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "/").rstrip("/") or "/"
        query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        best: tuple[tuple[int, int, int], str] | None = None
        for name, op_method, pattern, required, headers, literal in self._compile(service):
            if op_method != method or not pattern.match(path):
                continue
            if any(k not in query or (v is not None and v not in query[k])
                   for k, v in required.items()):
                continue
            if any(_header_key(h) not in environ for h in headers):
                continue
            score = (len(required), len(headers), literal)
            if best is None or score > best[0]:
                best = (score, name)
        return best[1] if best else None


def _header_key(header: str) -> str:
    return "HTTP_" + header.upper().replace("-", "_")


class FaultMiddleware:
    """Applies latency and error rules to matching AWS requests, serves the control endpoints,
    and passes everything else to moto."""

    def __init__(self, app: App, config: dict[str, Any], resources: Callable[[], list[str]]
                 ) -> None:
        self.app = app
        self.config = config
        self.create_resources = resources
        self.rules: dict[str, Rule] = {}
        self.rest = RestOperations()
        self._lock = threading.Lock()

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith(CONTROL):
            return self.control(environ, start_response, path[len(CONTROL):])
        with self._lock:
            rules = list(self.rules.values())
        if rules:
            service, prefix, operation = self.identify(environ, rules)
            for rule in rules:
                if rule.action == "latency" and rule.matches(service, prefix, operation) \
                        and rule.fire():
                    time.sleep(float(rule.data["ms"]) / 1000)
            for rule in rules:
                if rule.action == "error" and rule.matches(service, prefix, operation) \
                        and rule.fire():
                    print(f"fault: {rule.id} {rule.service}.{operation} -> "
                          f"{rule.data['error']} ({rule.data['status']})", flush=True)
                    return error_response(environ, start_response, rule.data)
        return self.app(environ, start_response)

    def identify(self, environ: Environ, rules: list[Rule]
                 ) -> tuple[str | None, str | None, str | None]:
        """(signing name, JSON target prefix, operation) of an AWS request, as far as known."""
        service = _signing_name(environ.get("HTTP_AUTHORIZATION", ""))
        target = environ.get("HTTP_X_AMZ_TARGET")
        if target:
            prefix, _, operation = target.rpartition(".")
            return service, prefix, operation
        query = parse_qs(environ.get("QUERY_STRING", ""))
        if "Action" in query:
            return service, None, query["Action"][0]
        if environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
            body = _read_body(environ)
            action = parse_qs(body.decode("utf-8", "replace")).get("Action")
            if action:
                return service, None, action[0]
        rest = next((r.service for r in rules if r.signing_name == service
                     and r.data.get("protocol", "").startswith("rest")), None)
        if rest is None:
            return service, None, None
        try:
            return service, None, self.rest.operation(rest, environ)
        except Exception as exc:  # a model that cannot be read: the rule cannot match
            print(f"shakedown: cannot tell the {rest} operation: {exc}", file=sys.stderr)
            return service, None, None

    # -- control endpoints --------------------------------------------------------------
    def control(self, environ: Environ, start_response: StartResponse, path: str
                ) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        if path == "health" and method == "GET":
            return _json(start_response, 200, {"ready": True, "region": self.config["region"],
                                               "services": self.config["services"],
                                               "pid": os.getpid()})
        if path == "rules" and method == "GET":
            with self._lock:
                return _json(start_response, 200, [r.to_dict() for r in self.rules.values()])
        if path == "rules" and method == "POST":
            data = json.loads(_read_body(environ) or b"{}")
            data.setdefault("id", uuid.uuid4().hex[:8])
            rule = Rule(data)
            with self._lock:
                self.rules[rule.id] = rule
            print(f"rule added: {json.dumps(data, sort_keys=True)}", flush=True)
            return _json(start_response, 201, {"id": rule.id})
        if path == "rules" and method == "DELETE":
            with self._lock:
                count = len(self.rules)
                self.rules.clear()
            print(f"rules cleared ({count})", flush=True)
            return _json(start_response, 200, {"removed": count})
        if path.startswith("rules/") and method == "DELETE":
            with self._lock:
                removed = self.rules.pop(path[len("rules/"):], None)
            if removed is None:
                return _json(start_response, 404, {"error": "no such rule"})
            print(f"rule removed: {removed.id}", flush=True)
            return _json(start_response, 200, removed.to_dict())
        if path == "resources" and method == "POST":
            try:
                return _json(start_response, 200, {"created": self.create_resources()})
            except ResourceError as exc:
                return _json(start_response, 500, {"error": str(exc)})
        return _json(start_response, 404, {"error": f"no control endpoint {method} {path}"})


def _signing_name(auth: str) -> str | None:
    # AWS4-HMAC-SHA256 Credential=KEY/DATE/REGION/SERVICE/aws4_request, ...
    marker = auth.find("Credential=")
    if marker < 0:
        return None
    scope = auth[marker + len("Credential="):].split(",", 1)[0].split("/")
    return scope[3].lower() if len(scope) >= 5 else None


def _read_body(environ: Environ) -> bytes:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    body: bytes = environ["wsgi.input"].read(length) if length > 0 else b""
    environ["wsgi.input"] = io.BytesIO(body)  # moto reads it again
    return body


def _json(start_response: StartResponse, status: int, data: Any) -> list[bytes]:
    body = json.dumps(data).encode()
    start_response(f"{status} {_REASONS.get(status, 'Error')}",
                   [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


_REASONS = {200: "OK", 201: "Created", 400: "Bad Request", 403: "Forbidden", 404: "Not Found",
            409: "Conflict", 429: "Too Many Requests", 500: "Internal Server Error",
            502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}


def error_response(environ: Environ, start_response: StartResponse, rule: dict[str, Any]
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


# -- resources -----------------------------------------------------------------------------
class ResourceError(Exception):
    pass


class Resources:
    """Creates the declared tables, queues and buckets by calling moto's application in
    process, with the same requests an SDK would send."""

    def __init__(self, app: App, config: dict[str, Any]) -> None:
        self.app = app
        self.region: str = config["region"]
        self.key: str = config["access_key_id"]
        self.port: int = config["port"]
        self.declared: dict[str, list[dict[str, Any]]] = config.get("resources") or {}

    def _call(self, service: str, method: str, path: str, body: bytes,
              headers: dict[str, str]) -> tuple[int, bytes]:
        environ: Environ = {
            "REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": "",
            "SERVER_NAME": "127.0.0.1", "SERVER_PORT": str(self.port),
            "SERVER_PROTOCOL": "HTTP/1.1", "HTTP_HOST": f"127.0.0.1:{self.port}",
            "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body),
            "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr, "wsgi.version": (1, 0),
            "wsgi.multithread": True, "wsgi.multiprocess": False, "wsgi.run_once": False,
            "REMOTE_ADDR": "127.0.0.1",
            "HTTP_AUTHORIZATION": (
                f"AWS4-HMAC-SHA256 Credential={self.key}/{FAKE_DATE}/{self.region}/{service}/"
                "aws4_request, SignedHeaders=host, Signature=0"),
        }
        for key, value in headers.items():
            if key.lower() == "content-type":
                environ["CONTENT_TYPE"] = value
            else:
                environ[_header_key(key)] = value
        status: list[int] = []

        def start_response(line: str, _headers: Any, _exc: Any = None) -> None:
            status.append(int(line.split()[0]))

        chunks = self.app(environ, start_response)
        try:
            data = b"".join(chunks)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        return status[0], data

    def _json_call(self, service: str, target: str, payload: dict[str, Any]) -> None:
        code, data = self._call(service, "POST", "/", json.dumps(payload).encode(), {
            "X-Amz-Target": target, "Content-Type": "application/x-amz-json-1.0"})
        if code >= 300:
            raise ResourceError(f"{target} {payload.get('TableName') or payload.get('QueueName')}"
                                f" -> {code}: {data.decode(errors='replace')[:300]}")

    def create(self) -> list[str]:
        created = []
        for table in self.declared.get("tables", []):
            keys = [(table["hash_key"], table["hash_key_type"], "HASH")]
            if table.get("range_key"):
                keys.append((table["range_key"], table["range_key_type"], "RANGE"))
            self._json_call("dynamodb", "DynamoDB_20120810.CreateTable", {
                "TableName": table["name"],
                "KeySchema": [{"AttributeName": n, "KeyType": k} for n, _, k in keys],
                "AttributeDefinitions": [{"AttributeName": n, "AttributeType": t}
                                         for n, t, _ in keys],
                "BillingMode": "PAY_PER_REQUEST",
            })
            created.append(f"dynamodb table {table['name']}")
        for queue in self.declared.get("queues", []):
            attributes = {k: str(v) for k, v in (queue.get("attributes") or {}).items()}
            if queue.get("fifo"):
                attributes["FifoQueue"] = "true"
            payload: dict[str, Any] = {"QueueName": queue["name"]}
            if attributes:
                payload["Attributes"] = attributes
            self._json_call("sqs", "AmazonSQS.CreateQueue", payload)
            created.append(f"sqs queue {queue['name']}")
        for bucket in self.declared.get("buckets", []):
            body = b""
            if self.region != "us-east-1":
                body = ("<CreateBucketConfiguration><LocationConstraint>"
                        f"{self.region}</LocationConstraint></CreateBucketConfiguration>").encode()
            code, data = self._call("s3", "PUT", f"/{bucket['name']}", body, {})
            if code >= 300:
                raise ResourceError(f"CreateBucket {bucket['name']} -> {code}: "
                                    f"{data.decode(errors='replace')[:300]}")
            created.append(f"s3 bucket {bucket['name']}")
        return created


# -- start ---------------------------------------------------------------------------------
def _warm(dispatcher: Any, services: list[str], region: str) -> None:
    """Build moto's per-service applications now rather than on the first request."""
    from moto.backend_index import backend_url_patterns

    for service in ["moto_api", *services]:
        if service == "moto_api":
            backend: str | None = "moto_api"
        else:
            url = f"https://{service}.{region}.amazonaws.com"
            backend = next((b for b, p in backend_url_patterns if p.match(url)), None)
        if backend is None or backend in dispatcher.app_instances:
            continue
        try:
            dispatcher.app_instances[backend] = dispatcher.create_app(backend)
        except Exception as exc:  # moto builds it on first use instead
            print(f"shakedown: could not prepare moto backend {backend}: {exc}", file=sys.stderr)


def _share_model_loader() -> None:
    """moto makes a new botocore loader for every service model it reads, and each new loader
    lists every service botocore knows by probing thousands of files (~35 ms). One shared
    loader, listing service directories with one scandir per search path, does the same
    check (is there such a service?) at a fraction of the cost."""
    import functools

    import moto.core.utils as moto_utils

    create = getattr(moto_utils, "create_loader", None)
    if create is None or getattr(create, "shared_by_shakedown", False):
        return
    loader = create()

    def service_directories(type_name: str) -> list[str]:
        names: set[str] = set()
        for path in loader.search_paths:
            try:
                names.update(entry.name for entry in os.scandir(path) if entry.is_dir())
            except OSError:
                continue
        return sorted(names)

    loader.list_available_services = functools.cache(service_directories)

    def shared(*args: Any, **kwargs: Any) -> Any:
        return loader if not args and not kwargs else create(*args, **kwargs)

    shared.shared_by_shakedown = True  # type: ignore[attr-defined]
    moto_utils.create_loader = shared  # type: ignore[attr-defined]
    try:  # the boto3 session moto lists regions with reads the same models: same loader
        from moto.core.base_backend import AccountSpecificBackend

        AccountSpecificBackend.get_session()._session.register_component("data_loader", loader)
    except Exception as exc:  # an optimisation only
        print(f"shakedown: botocore loader not shared: {exc}", file=sys.stderr)


def _warm_request_path(services: list[str]) -> None:
    """What moto does on the first request of a service, done in the background once the
    server answers: account lookup (imports moto.iam) and the botocore model of each service."""
    try:
        from moto.core.utils import get_service_model
        from moto.iam.models import get_account_id_from  # noqa: F401

        for service in services:
            get_service_model(service)
    except Exception as exc:  # the first request does the same work, and reports its errors
        print(f"shakedown: background warm-up stopped: {exc}", file=sys.stderr)


def main(argv: list[str] | None = None) -> None:
    began = time.monotonic()
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--config", default="{}", help="JSON: region, services, resources")
    args = parser.parse_args(argv)
    config: dict[str, Any] = {"region": "us-east-1", "services": [], "resources": {},
                              "access_key_id": "shakedown", **json.loads(args.config)}
    config["port"] = args.port

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((args.host, args.port))
    listener.listen(128)

    os.environ.setdefault("MOTO_PORT", str(args.port))
    gc.disable()  # imports allocate many objects that live forever: no point collecting them
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    _share_model_loader()
    imported = time.monotonic()
    dispatcher = DomainDispatcherApplication(create_backend_app)
    _warm(dispatcher, list(config["services"]), config["region"])
    warmed = time.monotonic()
    resources = Resources(dispatcher, config)
    app = FaultMiddleware(dispatcher, config, resources.create)
    for line in resources.create():
        print(f"created {line}", flush=True)
    created = time.monotonic()
    gc.freeze()
    gc.enable()

    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = make_server(args.host, args.port, app, threaded=True,
                         request_handler=MotoRequestHandler, fd=listener.fileno())

    def stop(signum: int, frame: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    threading.Thread(target=_warm_request_path, args=(list(config["services"]),),
                     daemon=True).start()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"shakedown aws server on http://{args.host}:{args.port} "
          f"(region {config['region']}, services {', '.join(config['services']) or '-'}) "
          f"ready in {time.monotonic() - began:.3f}s (imports {imported - began:.3f}s, "
          f"backends {warmed - imported:.3f}s, resources {created - warmed:.3f}s; "
          f"cpu {time.process_time():.3f}s)", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
        del sys.path[0]  # keep this directory's modules (redis.py, ...) from shadowing packages
    main()
