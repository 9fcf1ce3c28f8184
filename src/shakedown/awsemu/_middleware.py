"""The fault layer in front of moto: latency and error rules applied to matching AWS requests,
and the control endpoints (never subject to rules) under ``/_shakedown/``."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

from ._compute import ComputeBridge
from ._operations import RestOperations
from ._rules import Rule, RuleData
from ._wsgi import (
    App,
    Environ,
    ResourceError,
    StartResponse,
    error_response,
    json_response,
    read_body,
    signing_name,
)

CONTROL = "/_shakedown/"


class FaultMiddleware:
    """Applies latency and error rules to matching AWS requests, serves the control endpoints,
    and passes everything else to moto."""

    def __init__(self, app: App, config: dict[str, Any], resources: Callable[[], list[str]],
                 compute: ComputeBridge | None = None) -> None:
        self.app = app
        self.compute = compute
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
        if self.compute is None:
            return self.app(environ, start_response)
        answered = self.compute.intercept(environ, start_response)
        if answered is not None:
            return answered
        if path == "/moto-api/reset":
            self.compute.reset()
        try:
            return self.app(environ, start_response)
        finally:
            self.compute.after()

    def identify(self, environ: Environ, rules: list[Rule]
                 ) -> tuple[str | None, str | None, str | None]:
        """(signing name, JSON target prefix, operation) of an AWS request, as far as known."""
        service = signing_name(environ.get("HTTP_AUTHORIZATION", ""))
        target = environ.get("HTTP_X_AMZ_TARGET")
        if target:
            prefix, _, operation = target.rpartition(".")
            return service, prefix, operation
        query = parse_qs(environ.get("QUERY_STRING", ""))
        if "Action" in query:
            return service, None, query["Action"][0]
        if environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
            body = read_body(environ)
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
        if self.compute is not None:
            answered = self.compute.control(environ, start_response, path)
            if answered is not None:
                return answered
        if path == "health" and method == "GET":
            health = {"ready": True, "region": self.config["region"],
                      "services": self.config["services"], "pid": os.getpid()}
            return json_response(start_response, 200, health)
        if path == "rules" and method == "GET":
            with self._lock:
                listed = [r.to_dict() for r in self.rules.values()]
            return json_response(start_response, 200, listed)
        if path == "rules" and method == "POST":
            data: RuleData = json.loads(read_body(environ) or b"{}")
            data.setdefault("id", uuid.uuid4().hex[:8])
            rule = Rule(data)
            with self._lock:
                self.rules[rule.id] = rule
            print(f"rule added: {json.dumps(data, sort_keys=True)}", flush=True)
            return json_response(start_response, 201, {"id": rule.id})
        if path == "rules" and method == "DELETE":
            with self._lock:
                count = len(self.rules)
                self.rules.clear()
            print(f"rules cleared ({count})", flush=True)
            return json_response(start_response, 200, {"removed": count})
        if path.startswith("rules/") and method == "DELETE":
            with self._lock:
                removed = self.rules.pop(path[len("rules/"):], None)
            if removed is None:
                return json_response(start_response, 404, {"error": "no such rule"})
            print(f"rule removed: {removed.id}", flush=True)
            return json_response(start_response, 200, removed.to_dict())
        if path == "resources" and method == "POST":
            try:
                return json_response(start_response, 200, {"created": self.create_resources()})
            except ResourceError as exc:
                return json_response(start_response, 500, {"error": str(exc)})
        return json_response(start_response, 404, {"error": f"no control endpoint {method} {path}"})
