"""Which AWS operation a request calls, for REST protocols (rest-xml, rest-json) where only the
method and path tell: matched against the request URIs of botocore's service models."""

from __future__ import annotations

import re
import threading
from typing import Any
from urllib.parse import parse_qs

from ._wsgi import Environ, header_key


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
            if any(header_key(h) not in environ for h in headers):
                continue
            score = (len(required), len(headers), literal)
            if best is None or score > best[0]:
                best = (score, name)
        return best[1] if best else None


def _header_key(header: str) -> str:
    return "HTTP_" + header.upper().replace("-", "_")
