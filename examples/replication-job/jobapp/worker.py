"""The worker: takes jobs from SQS, copies the source database into the target with
``pg_dump --format=custom`` and ``pg_restore --clean --single-transaction``, and keeps the job's
status and progress in DynamoDB. A job that cannot be done (bad source URL, unreachable target)
ends ``failed`` with a reason; the worker carries on. When DynamoDB throttles, boto3 retries
with backoff; if it still cannot record the outcome, the message goes back to the queue and the
job is done again later (the copy is idempotent). Every wait has a timeout.

    python -m jobapp.worker --port 8081     # GET /health on that port
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from botocore.exceptions import BotoCoreError, ClientError

from .common import QUEUE, TABLE, clients, mask, setup_logging

log = setup_logging("jobapp.worker")
COPY_TIMEOUT = float(os.environ.get("JOBS_COPY_TIMEOUT", "600"))
AWS_ERRORS = (ClientError, BotoCoreError)


class CopyError(Exception):
    """The job cannot be done; the message is the reason shown to users (no secrets)."""


class Stats:
    def __init__(self) -> None:
        self.started = time.monotonic()
        self.last_poll = time.monotonic()
        self.polls = 0
        self.succeeded = 0
        self.failed = 0
        self.store_errors = 0
        self.current: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"status": "ok", "polls": self.polls, "succeeded": self.succeeded,
                "failed": self.failed, "store_errors": self.store_errors,
                "current": self.current,
                "last_poll_age": round(time.monotonic() - self.last_poll, 3)}


STATS = Stats()


# -- the copy --------------------------------------------------------------------------------
def _split_password(url: str) -> tuple[str, str]:
    """(URL without its password, password): the password goes to libpq through PGPASSWORD,
    never on a command line that ps could show."""
    parts = urlsplit(url)
    password = parts.password or ""
    netloc = parts.hostname or ""
    if ":" in netloc:
        netloc = f"[{netloc}]"
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    if parts.username:
        netloc = f"{parts.username}@{netloc}"
    return urlunsplit(("postgresql", netloc, parts.path, parts.query, "")), password


def _pg_env(password: str) -> dict[str, str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PGCONNECT_TIMEOUT": "5",
           "LANG": "C.UTF-8"}
    if password:
        env["PGPASSWORD"] = password
    return env


def _reason(side: str, stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    detail = next((ln for ln in lines if "error" in ln.lower()), lines[0] if lines else "?")
    detail = detail.split("error:", 1)[-1].strip()
    return mask(f"cannot {'read the source' if side == 'source' else 'write the target'} "
                f"database: {detail}")[:500]


def copy_database(source_url: str, target_url: str, progress: Callable[[int], None]) -> int:
    """Copy every table of the source into the target; returns the number of tables."""
    source, source_password = _split_password(source_url)
    target, target_password = _split_password(target_url)
    with tempfile.TemporaryDirectory(prefix="jobapp-") as tmp:
        dump = Path(tmp) / "source.dump"
        try:
            result = subprocess.run(
                ["pg_dump", "--format=custom", "--no-owner", "--no-privileges",
                 "--file", str(dump), "--dbname", source],
                env=_pg_env(source_password), capture_output=True, text=True,
                timeout=COPY_TIMEOUT, check=False)
        except subprocess.TimeoutExpired:
            raise CopyError(f"reading the source took more than {COPY_TIMEOUT:.0f}s") from None
        if result.returncode != 0:
            raise CopyError(_reason("source", result.stderr))
        progress(40)
        listing = subprocess.run(["pg_restore", "--list", str(dump)], capture_output=True,
                                 text=True, timeout=60, check=False).stdout
        tables = sum(1 for line in listing.splitlines() if " TABLE DATA " in line)
        process = subprocess.Popen(
            ["pg_restore", "--verbose", "--no-owner", "--no-privileges", "--clean",
             "--if-exists", "--exit-on-error", "--single-transaction", "--dbname", target,
             str(dump)],
            env=_pg_env(target_password), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True)
        timer = threading.Timer(COPY_TIMEOUT, process.kill)
        timer.start()
        errors: list[str] = []
        done = 0
        try:
            assert process.stderr is not None
            for line in process.stderr:
                if "processing data for table" in line:
                    done += 1
                    progress(40 + (55 * done) // max(tables, 1))
                elif "error" in line.lower() or "could not" in line.lower():
                    errors.append(line)
            code = process.wait()
        finally:
            timer.cancel()
        if code != 0:
            raise CopyError(_reason("target", "".join(errors) or f"pg_restore exit {code}"))
    return tables


# -- the job loop --------------------------------------------------------------------------
class Worker:
    def __init__(self) -> None:
        self.dynamodb, self.sqs = clients()
        self.queue_url = ""
        self.stopping = threading.Event()

    def set_job(self, job_id: str, **fields: Any) -> None:
        names, values, sets = {}, {}, []
        fields["updated_at"] = int(time.time() * 1000)
        for i, (key, value) in enumerate(fields.items()):
            names[f"#k{i}"] = key
            values[f":v{i}"] = {"N": str(value)} if isinstance(value, int) else {"S": value}
            sets.append(f"#k{i} = :v{i}")
        self.dynamodb.update_item(
            TableName=TABLE, Key={"id": {"S": job_id}}, UpdateExpression="SET " + ", ".join(sets),
            ExpressionAttributeNames=names, ExpressionAttributeValues=values,
            ConditionExpression="attribute_exists(id)")

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                if not self.queue_url:
                    self.queue_url = self.sqs.get_queue_url(QueueName=QUEUE)["QueueUrl"]
                answer = self.sqs.receive_message(QueueUrl=self.queue_url,
                                                  MaxNumberOfMessages=1, WaitTimeSeconds=1,
                                                  VisibilityTimeout=120)
            except AWS_ERRORS as exc:
                log.warning("cannot read the queue: %s", mask(str(exc)))
                STATS.store_errors += 1
                self.stopping.wait(0.5)
                continue
            finally:
                STATS.polls += 1
                STATS.last_poll = time.monotonic()
            for message in answer.get("Messages", []):
                self.handle(message)

    def handle(self, message: dict[str, Any]) -> None:
        try:
            job = json.loads(message["Body"])
            job_id, source, target = job["id"], job["source_url"], job["target_url"]
        except (ValueError, KeyError, TypeError):
            log.error("dropping a message that is not a job")
            self._delete(message)
            return
        STATS.current = job_id
        try:
            self.set_job(job_id, status="running", progress=1)
            log.info("job %s: copying %s -> %s", job_id, mask(source), mask(target))
            try:
                tables = copy_database(source, target, lambda p: self._progress(job_id, p))
            except CopyError as exc:
                log.warning("job %s failed: %s", job_id, exc)
                self.set_job(job_id, status="failed", error=str(exc))
                STATS.failed += 1
            else:
                self.set_job(job_id, status="succeeded", progress=100, tables=tables)
                log.info("job %s succeeded: %d tables", job_id, tables)
                STATS.succeeded += 1
            self._delete(message)
        except AWS_ERRORS as exc:
            # The outcome could not be recorded even after boto3's retries: the job goes back
            # to the queue and is done again in a moment.
            STATS.store_errors += 1
            log.warning("job %s: cannot record its state (%s); it will be retried", job_id,
                        mask(str(exc)))
            self._retry_later(message)
        finally:
            STATS.current = None

    def _progress(self, job_id: str, percent: int) -> None:
        try:
            self.set_job(job_id, progress=percent)
        except AWS_ERRORS as exc:  # progress is best effort; the outcome is not
            log.warning("job %s: progress %d%% not recorded (%s)", job_id, percent,
                        mask(str(exc)))

    def _delete(self, message: dict[str, Any]) -> None:
        try:
            self.sqs.delete_message(QueueUrl=self.queue_url,
                                    ReceiptHandle=message["ReceiptHandle"])
        except AWS_ERRORS as exc:
            log.warning("cannot delete a message (it may come back): %s", mask(str(exc)))

    def _retry_later(self, message: dict[str, Any]) -> None:
        try:
            self.sqs.change_message_visibility(QueueUrl=self.queue_url,
                                               ReceiptHandle=message["ReceiptHandle"],
                                               VisibilityTimeout=2)
        except AWS_ERRORS as exc:
            log.warning("cannot hand a message back (it comes back later): %s", mask(str(exc)))


class Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        stats = STATS.to_dict()
        stuck = stats["last_poll_age"] > COPY_TIMEOUT + 30
        status = 503 if stuck or self.path != "/health" else 200
        body = json.dumps(stats if self.path == "/health" else {"error": "not found"}).encode()
        self.send_response(404 if self.path != "/health" else status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description="job worker")
    parser.add_argument("--port", type=int, required=True, help="health endpoint port")
    args = parser.parse_args()
    worker = Worker()
    health = ThreadingHTTPServer(("127.0.0.1", args.port), Health)
    threading.Thread(target=health.serve_forever, daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *_: worker.stopping.set())
    log.info("worker polling queue %s, health on port %d", QUEUE, args.port)
    worker.run()
    log.info("worker stopped")


if __name__ == "__main__":
    main()
