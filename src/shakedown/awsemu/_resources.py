"""The declared resources (DynamoDB tables, SQS queues, S3 buckets), created by calling moto's
application in process with the requests an SDK would send."""

from __future__ import annotations

import io
import json
import sys
from typing import Any

from ._declared import create_functions
from ._settings import DEFAULT_ACCOUNT
from ._wsgi import App, Environ, ResourceError, header_key

FAKE_DATE = "20240101"


class Resources:
    """Creates the declared tables, queues and buckets by calling moto's application in
    process, with the same requests an SDK would send."""

    def __init__(self, app: App, config: dict[str, Any]) -> None:
        self.app = app
        self.region: str = config["region"]
        self.key: str = config["access_key_id"]
        self.port: int = config["port"]
        self.declared: dict[str, list[dict[str, Any]]] = config.get("resources") or {}
        self.functions: dict[str, dict[str, Any]] = (config.get("compute") or {}).get(
            "functions") or {}

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
                environ[header_key(key)] = value
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
        return created + create_functions(self._call, self.functions, DEFAULT_ACCOUNT,
                                           self.region)
