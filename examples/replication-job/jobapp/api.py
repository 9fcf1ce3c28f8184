"""The job API: ``POST /jobs {source_url, target_url}`` stores a job in DynamoDB, hands it to
the worker through SQS and answers 201 with its id; ``GET /jobs/ID`` answers its status and
progress. URLs are stored and shown with their passwords masked; the full URLs travel only in
the queue message.

    python -m jobapp.api --port 8080
"""

from __future__ import annotations

import argparse
import json
import re
import threading
import time
import uuid
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from .common import QUEUE, TABLE, clients, is_postgres_url, mask, setup_logging

log = setup_logging("jobapp.api")
MAX_BODY = 64 * 1024
_JOB_PATH = re.compile(r"^/jobs/([0-9a-f-]{1,64})$")


class Store:
    """Jobs in DynamoDB, hand-over through SQS."""

    def __init__(self) -> None:
        self.dynamodb, self.sqs = clients()
        self._queue_url: str | None = None
        self._lock = threading.Lock()

    @property
    def queue_url(self) -> str:
        with self._lock:
            if self._queue_url is None:
                self._queue_url = self.sqs.get_queue_url(QueueName=QUEUE)["QueueUrl"]
            return self._queue_url

    def create(self, source_url: str, target_url: str) -> str:
        job_id = str(uuid.uuid4())
        now = int(time.time() * 1000)
        self.dynamodb.put_item(TableName=TABLE, Item={
            "id": {"S": job_id}, "status": {"S": "queued"}, "progress": {"N": "0"},
            "source": {"S": mask(source_url)}, "target": {"S": mask(target_url)},
            "created_at": {"N": str(now)}, "updated_at": {"N": str(now)},
        }, ConditionExpression="attribute_not_exists(id)")
        message = {"id": job_id, "source_url": source_url, "target_url": target_url}
        try:
            self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=json.dumps(message))
        except (ClientError, BotoCoreError):
            self.dynamodb.update_item(
                TableName=TABLE, Key={"id": {"S": job_id}},
                UpdateExpression="SET #s = :s, #e = :e",
                ExpressionAttributeNames={"#s": "status", "#e": "error"},
                ExpressionAttributeValues={":s": {"S": "failed"},
                                           ":e": {"S": "could not queue the job"}})
            raise
        return job_id

    def get(self, job_id: str) -> dict[str, Any] | None:
        item = self.dynamodb.get_item(TableName=TABLE, Key={"id": {"S": job_id}},
                                      ConsistentRead=True).get("Item")
        if item is None:
            return None
        job: dict[str, Any] = {"id": item["id"]["S"], "status": item["status"]["S"],
                               "progress": int(item["progress"]["N"]),
                               "source": item["source"]["S"], "target": item["target"]["S"]}
        for key in ("error",):
            if key in item:
                job[key] = item[key]["S"]
        for key in ("tables", "created_at", "updated_at"):
            if key in item:
                job[key] = int(item[key]["N"])
        return job


class Handler(BaseHTTPRequestHandler):
    store: Store
    server_version = "jobapp"

    def do_GET(self) -> None:
        if self.path == "/health":
            return self._send(200, {"status": "ok"})
        match = _JOB_PATH.match(self.path)
        if match is None:
            return self._send(404, {"error": "not found"})
        try:
            job = self.store.get(match.group(1))
        except (ClientError, BotoCoreError) as exc:
            return self._unavailable(exc)
        if job is None:
            return self._send(404, {"error": f"no job {match.group(1)}"})
        return self._send(200, job)

    def do_POST(self) -> None:
        if self.path != "/jobs":
            return self._send(404 if not self.path.startswith("/jobs/") else 405,
                              {"error": "not found"})
        payload, problem = self._payload()
        if problem:
            return self._send(400, {"error": problem})
        try:
            job_id = self.store.create(payload["source_url"], payload["target_url"])
        except (ClientError, BotoCoreError) as exc:
            return self._unavailable(exc)
        log.info("job %s queued: %s -> %s", job_id, mask(payload["source_url"]),
                 mask(payload["target_url"]))
        return self._send(201, {"id": job_id, "status": "queued"},
                          headers={"Location": f"/jobs/{job_id}"})

    def _payload(self) -> tuple[dict[str, Any], str]:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return {}, "bad Content-Length"
        if length <= 0 or length > MAX_BODY:
            return {}, f"send a JSON body of at most {MAX_BODY} bytes"
        try:
            payload = json.loads(self.rfile.read(length))
        except ValueError:
            return {}, "the body is not JSON"
        if not isinstance(payload, dict):
            return {}, "the body must be a JSON object"
        missing = [k for k in ("source_url", "target_url") if k not in payload]
        if missing:
            return {}, f"missing {', '.join(missing)}"
        unknown = sorted(set(payload) - {"source_url", "target_url"})
        if unknown:
            return {}, f"unknown field(s): {', '.join(unknown)}"
        for key in ("source_url", "target_url"):
            if not is_postgres_url(payload[key]):
                return {}, f"{key} must be a postgresql:// URL"
        if payload["source_url"] == payload["target_url"]:
            return {}, "source_url and target_url are the same database"
        return payload, ""

    def _unavailable(self, exc: Exception) -> None:
        code = exc.response["Error"].get("Code", "?") if isinstance(exc, ClientError) \
            else type(exc).__name__
        log.warning("job store unavailable: %s", mask(str(code)))
        self._send(503, {"error": f"job store unavailable ({code}), retry later"},
                   headers={"Retry-After": "1"})

    def _send(self, status: int, body: dict[str, Any],
              headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        status = code.value if isinstance(code, HTTPStatus) else code
        log.info("%s %s %s", self.command, mask(self.path), status)

    def log_message(self, format: str, *args: Any) -> None:
        log.info(mask(format % args))


def main() -> None:
    parser = argparse.ArgumentParser(description="job API")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    Handler.store = Store()
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    log.info("job API on http://%s:%d (table %s, queue %s)", args.host, args.port, TABLE, QUEUE)
    server.serve_forever()


if __name__ == "__main__":
    main()
