"""The dispatcher of the email-to-preview system: it owns the way from an inbound mail to a
running preview. It long-polls the mail queue (SES "Received" notifications, through SNS),
records each mail as the next revision of its session in DynamoDB, and keeps the session's ECS
service ``session-{id}`` at one task (CreateService, or UpdateService from zero). It also serves
the system's small HTTP API on ``--port``: ``/api/health``, ``/api/sessions/{id}`` (the record)
and ``/api/failures`` (mails it gave up on).

Ordering is what keeps tasks from being orphaned: a session's service is created or scaled up
only after its record is written. When DynamoDB keeps throttling that write (retried with
backoff), the mail is given up: recorded in the failure ledger, answered by mail to its sender,
deleted from the queue, and no task is started for it. Any other error leaves the message on the
queue, which hands it out again after its visibility timeout.

    python dispatcher.py --port 8000      # AWS_ENDPOINT_URL, AWS_* keys and region from env
"""

from __future__ import annotations

import argparse
import contextlib
import email
import email.policy
import json
import logging
import os
import random
import re
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from preview_sessions import (
    SESSION_ID,
    STARTING,
    THROTTLING,
    WORKSPACE_PATH,
    Instruction,
    Session,
    SessionTable,
    error_code,
    service_name,
)

log = logging.getLogger("dispatcher")
DEFAULT_PATH = "index.html"
AWS_ERRORS = (ClientError, BotoCoreError)


@dataclass(frozen=True)
class Settings:
    table: str
    queue: str
    cluster: str
    task_definition: str
    domain: str
    sender: str
    record_attempts: int
    record_backoff: float

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ.get
        return cls(table=env("SESSIONS_TABLE", "sessions"), queue=env("MAIL_QUEUE", "mail"),
                   cluster=env("ECS_CLUSTER", "default"),
                   task_definition=env("EDIT_TASK_DEFINITION", "edit"),
                   domain=env("PREVIEW_DOMAIN", "preview.example.com"),
                   sender=env("PREVIEW_SENDER", "preview@preview.example.com"),
                   record_attempts=int(env("RECORD_ATTEMPTS", "3")),
                   record_backoff=float(env("RECORD_BACKOFF", "0.05")))


class Rejected(Exception):
    """A mail the system cannot act on; the message is the reason its sender is told."""


class GaveUp(Exception):
    """DynamoDB refused the session's record on every attempt."""


@dataclass(frozen=True)
class Mail:
    message_id: str
    sender: str
    session_id: str
    instruction: Instruction


# -- reading a mail ----------------------------------------------------------------------------
def read_mail(body: str, domain: str) -> Mail:
    """The mail an SQS message carries; Rejected when it is not one the system can act on."""
    try:
        return mail_of(notification_of(body), domain)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:  # malformed: not SES's
        raise Rejected(f"not a readable SES notification: {exc!r}") from exc


def notification_of(body: str) -> dict[str, Any]:
    """SES's notification from an SQS body: SNS's envelope around it, or the bare JSON when the
    subscription delivers raw messages."""
    data: dict[str, Any] = json.loads(body)
    if data.get("Type") == "Notification":
        data = json.loads(data["Message"])
    if data.get("notificationType") != "Received" or "content" not in data:
        raise Rejected(f"not an SES Received notification with content: "
                       f"{data.get('notificationType')!r}")
    return data


def mail_of(notification: dict[str, Any], domain: str) -> Mail:
    mail = notification["mail"]
    recipients = notification.get("receipt", {}).get("recipients") or mail.get("destination")
    message = email.message_from_string(notification["content"], policy=email.policy.default)
    if not isinstance(message, EmailMessage):  # what the default policy makes; for the types
        raise Rejected("the content is not a MIME message")
    subject = str(mail.get("commonHeaders", {}).get("subject") or message["Subject"] or "")
    return Mail(message_id=str(mail["messageId"]), sender=str(mail["source"]),
                session_id=session_id_of(recipients or [], domain),
                instruction=instruction_of(_plain_text(message), subject or "(no subject)"))


def session_id_of(recipients: list[str], domain: str) -> str:
    """The session a mail is for: the local part of its first recipient at the preview
    domain (``blue-header@preview.example.com`` is session ``blue-header``)."""
    for address in recipients:
        local, _, at = address.strip().lower().rpartition("@")
        if at == domain:
            if not SESSION_ID.match(local):
                raise Rejected(f"{local!r} is not a session name: use lower-case letters, "
                               "digits and '-', at most 63")
            return local
    raise Rejected(f"no recipient at {domain}: {recipients}")


def instruction_of(body: str, subject: str) -> Instruction:
    """``write PATH`` on the first line and the file's text after it; a body without that
    line is the text of index.html."""
    first, _, rest = body.partition("\n")
    words = first.split()
    path, text = (words[1], rest) if len(words) == 2 and words[0].lower() == "write" else \
        (DEFAULT_PATH, body)
    if not WORKSPACE_PATH.match(path):
        raise Rejected(f"{path!r} is not a path in the workspace")
    return Instruction(path=path, text=text.strip("\n") + "\n", subject=subject)


def _plain_text(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    content = part.get_content() if part is not None else ""
    return str(content).replace("\r\n", "\n")


# -- acting on it --------------------------------------------------------------------------------
def with_backoff(write: Callable[[], None], attempts: int, base: float) -> None:
    """Run ``write``, retrying DynamoDB's throttling with a jittered doubling backoff (so that
    a burst of writers does not come back in step); GaveUp after ``attempts``."""
    for attempt in range(1, attempts + 1):
        try:
            write()
            return
        except ClientError as exc:
            if error_code(exc) not in THROTTLING:
                raise
            if attempt == attempts:
                raise GaveUp(f"DynamoDB refused the record {attempts} times "
                             f"({error_code(exc)})") from exc
            time.sleep(base * 2 ** (attempt - 1) * random.uniform(0.5, 1.0))


class Dispatcher:
    """Mail in, session recorded, ECS service at one task."""

    def __init__(self, settings: Settings, clients: dict[str, Any]) -> None:
        self.settings = settings
        self.sqs, self.ecs, self.ses = clients["sqs"], clients["ecs"], clients["ses"]
        self.table = SessionTable(clients["dynamodb"], settings.table)
        self.queue_url = str(self.sqs.get_queue_url(QueueName=settings.queue)["QueueUrl"])
        self.failures: list[dict[str, Any]] = []
        self.handled = 0
        self._lock = threading.Lock()

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            for message in self._receive():
                self.handle(message)

    def _receive(self) -> list[dict[str, Any]]:
        try:
            answer = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10,
                                              WaitTimeSeconds=1)
        except AWS_ERRORS as exc:  # the queue is back soon; do not spin on it meanwhile
            log.warning("receiving from %s failed: %s", self.settings.queue, exc)
            time.sleep(0.5)
            return []
        messages: list[dict[str, Any]] = answer.get("Messages", [])
        return messages

    def handle(self, message: dict[str, Any]) -> None:
        """Act on one message and delete it; leave it on the queue when AWS failed us."""
        try:
            self._act_on(message)
        except AWS_ERRORS as exc:
            log.warning("message %s left for redelivery: %s", message["MessageId"], exc)
            return
        except Exception:  # a bug on one message must not stop the queue
            log.exception("message %s left for redelivery", message["MessageId"])
            return
        self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        with self._lock:
            self.handled += 1

    def _act_on(self, message: dict[str, Any]) -> None:
        try:
            mail = read_mail(message["Body"], self.settings.domain)
        except Rejected as exc:  # acting on it again would not make it better: drop it
            log.info("rejected message %s: %s", message["MessageId"], exc)
            return
        try:
            self.dispatch(mail)
        except GaveUp as exc:
            self.give_up(mail, exc)

    def dispatch(self, mail: Mail) -> None:
        current = self.table.get(mail.session_id)
        if current is None or current.message_id != mail.message_id:  # else: a redelivery
            self.record(mail, current)
        self.ensure_running(mail.session_id)
        log.info("session %s: revision of message %s dispatched", mail.session_id,
                 mail.message_id)

    def record(self, mail: Mail, current: Session | None) -> None:
        previous = current.revision if current is not None else None
        session = Session(id=mail.session_id, revision=(previous or 0) + 1, status=STARTING,
                          instruction=mail.instruction, message_id=mail.message_id,
                          sender=mail.sender, updated_at=time.time())
        with_backoff(lambda: self.table.put_revision(session, previous),
                     self.settings.record_attempts, self.settings.record_backoff)

    def ensure_running(self, session_id: str) -> None:
        """The session's ECS service exists and wants one task."""
        name, cluster = service_name(session_id), self.settings.cluster
        found = self.ecs.describe_services(cluster=cluster, services=[name])["services"]
        active = next((s for s in found if s["status"] == "ACTIVE"), None)
        if active is None:
            self.ecs.create_service(cluster=cluster, serviceName=name, desiredCount=1,
                                    taskDefinition=self.settings.task_definition)
        elif active["desiredCount"] < 1:
            self.ecs.update_service(cluster=cluster, service=name, desiredCount=1)

    def give_up(self, mail: Mail, exc: GaveUp) -> None:
        entry = {"session": mail.session_id, "message_id": mail.message_id,
                 "sender": mail.sender, "reason": str(exc), "at": time.time()}
        with self._lock:
            self.failures.append(entry)
        log.warning("session %s: gave up on message %s: %s", mail.session_id,
                    mail.message_id, exc)
        self.reply(mail.sender, f"Preview {mail.session_id}: not started",
                   f"Your mail could not be recorded ({exc}). Nothing was started; please "
                   "send it again in a minute.")

    def reply(self, to: str, subject: str, text: str) -> None:
        try:
            self.ses.send_email(Source=self.settings.sender, Destination={"ToAddresses": [to]},
                                Message={"Subject": {"Data": subject},
                                         "Body": {"Text": {"Data": text}}})
        except AWS_ERRORS as exc:  # the failure is in the ledger whatever happens to the mail
            log.warning("could not tell %s: %s", to, exc)

    def health(self) -> dict[str, Any]:
        with self._lock:
            return {"ok": True, "handled": self.handled, "failed": len(self.failures)}

    def failure_list(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.failures)


# -- the HTTP API --------------------------------------------------------------------------------
_SESSION_PATH = re.compile(r"^/api/sessions/([^/]+)$")


class ApiServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, dispatcher: Dispatcher) -> None:
        super().__init__(("127.0.0.1", port), ApiHandler)
        self.dispatcher = dispatcher


class ApiHandler(BaseHTTPRequestHandler):
    server: ApiServer

    def do_GET(self) -> None:
        dispatcher = self.server.dispatcher
        path = self.path.split("?", 1)[0]
        found = _SESSION_PATH.match(path)
        if path == "/api/health":
            self._json(200, dispatcher.health())
        elif path == "/api/failures":
            self._json(200, dispatcher.failure_list())
        elif found:
            self._session(dispatcher, found.group(1))
        else:
            self._json(404, {"error": f"no such API path: {path}"})

    def _session(self, dispatcher: Dispatcher, session_id: str) -> None:
        if not SESSION_ID.match(session_id):
            self._json(400, {"error": f"{session_id!r} is not a session id"})
            return
        try:
            session = dispatcher.table.get(session_id)
        except AWS_ERRORS as exc:
            self._json(503, {"error": f"the session store did not answer: {exc}"})
            return
        if session is None:
            self._json(404, {"error": f"no session {session_id!r}"})
        else:
            self._json(200, session.as_json())

    def _json(self, status: int, body: Any) -> None:
        raw = json.dumps(body).encode()
        # HAProxy's health check hangs up once it has read the status line
        with contextlib.suppress(ConnectionError):
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # health checks every 100 ms would bury the log


# -- the process ---------------------------------------------------------------------------------
def aws_clients() -> dict[str, Any]:
    """Clients from the environment's endpoint, keys and region. DynamoDB's own retries are
    off: the dispatcher's backoff is the one that decides when to give up."""
    session = boto3.session.Session()
    make: Any = session.client  # any service name, not only the stubs' literals
    quick = Config(connect_timeout=2, read_timeout=10, retries={"mode": "standard"})
    once = Config(connect_timeout=2, read_timeout=10, retries={"total_max_attempts": 1})
    return {"sqs": make("sqs", config=quick), "ecs": make("ecs", config=quick),
            "ses": make("ses", config=quick), "dynamodb": make("dynamodb", config=once)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    logging.basicConfig(stream=sys.stdout, level=logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("botocore").setLevel(logging.WARNING)
    dispatcher = Dispatcher(Settings.from_env(), aws_clients())
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    api = ApiServer(args.port, dispatcher)
    threading.Thread(target=api.serve_forever, name="api", daemon=True).start()
    log.info("dispatching mail of queue %s; API on port %d", dispatcher.settings.queue,
             args.port)
    dispatcher.run(stop)
    api.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
