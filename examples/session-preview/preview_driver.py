"""What the suite does to the email-to-preview system and reads back from it, as its users and
operators would: mail in (through the system's own SES receipt rules), pages, the API and the
hot-reload socket through the router, the sessions' ECS services and tasks, and the workspaces
on the ``workspace`` volume. Waits are ``shakedown.eventually``; the bounds only catch a hang."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import preview_infra
from preview_sessions import service_name
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from shakedown import eventually
from shakedown.environment import Environment
from shakedown.services import AwsService

HANG = 45.0  # seconds: a wait longer than this is a hang, not a slow machine
CLUSTER = "default"
T = TypeVar("T")


def until(check: Callable[[], T | None], what: str) -> T:
    """``check()``'s value once it is neither None nor falsy (retried on exceptions too)."""
    value = eventually(check, timeout=HANG, description=what)
    assert value is not None
    return value


def new_session_id(purpose: str) -> str:
    """A session id of its own for each test: sessions never meet across tests."""
    return f"{purpose}-{uuid.uuid4().hex[:6]}"


class PreviewSystem:
    """The running system, reached from outside."""

    def __init__(self, env: Environment) -> None:
        aws = env["aws"]
        assert isinstance(aws, AwsService)
        self.aws = aws
        self.router = env["lb"].url
        self.http = httpx.Client(base_url=self.router, timeout=10, trust_env=False)
        self.ecs = aws.client("ecs")

    def close(self) -> None:
        self.http.close()

    # -- mail in ---------------------------------------------------------------------------------
    def mail(self, session_id: str, path: str, text: str, subject: str = "Change",
             sender: str = "author@example.org") -> str:
        """Mail an instruction (write ``text`` to ``path``) to the session; its message id."""
        body = f"write {path}\n{text}\n"
        received = self.aws.receive_email(sender, f"{session_id}@{preview_infra.DOMAIN}",
                                          subject, body)
        taken = [action["type"] for action in received["actions"]]
        assert taken == ["S3", "SNS"], f"the receipt rule did not take the mail: {received}"
        return str(received["messageId"])

    def archived(self, message_id: str) -> str:
        """The MIME text SES's S3 action kept."""
        s3 = self.aws.client("s3")
        answer = s3.get_object(Bucket=preview_infra.BUCKET, Key=f"mail/{message_id}")
        return str(answer["Body"].read().decode())

    def replies(self, to: str) -> list[dict[str, Any]]:
        """Mail the system sent to ``to``."""
        return [m for m in self.aws.sent_emails()
                if to in m["destinations"].get("ToAddresses", [])]

    # -- through the router ----------------------------------------------------------------------
    def get(self, path: str) -> httpx.Response:
        return self.http.get(path)

    def page(self, session_id: str, rest: str = "") -> httpx.Response:
        return self.get(f"/session/{session_id}/{rest}")

    def wait_page(self, session_id: str, expected: str, rest: str = "") -> str:
        """The page once it answers 200 with ``expected`` in it."""
        def shows() -> str | None:
            answer = self.page(session_id, rest)
            return answer.text if answer.status_code == 200 and expected in answer.text \
                else None

        return until(shows, f"/session/{session_id}/{rest} showing {expected!r}")

    def wait_pages(self, expected: dict[str, str]) -> dict[str, str]:
        """The pages of several sessions, each read once it shows its expected text: all are
        polled together, so none idles out while the test waits for another."""
        pages: dict[str, str] = {}

        def all_shown() -> dict[str, str] | None:
            for session_id in set(expected) - set(pages):
                answer = self.page(session_id)
                if answer.status_code == 200 and expected[session_id] in answer.text:
                    pages[session_id] = answer.text
            return pages if len(pages) == len(expected) else None

        return until(all_shown, f"pages of {sorted(expected)}")

    def wait_status(self, path: str, status: int) -> None:
        eventually(lambda: self.get(path).status_code == status, timeout=HANG,
                   description=f"{path} answering {status}")

    def record(self, session_id: str) -> dict[str, Any] | None:
        """The session's record, through the API; None when there is none."""
        answer = self.get(f"/api/sessions/{session_id}")
        if answer.status_code == 404:
            return None
        answer.raise_for_status()
        record: dict[str, Any] = answer.json()
        return record

    def status(self, session_id: str) -> str | None:
        record = self.record(session_id)
        return str(record["status"]) if record is not None else None

    def wait_record(self, session_id: str, status: str, revision: int | None = None
                    ) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            record = self.record(session_id)
            return record if record is not None and record["status"] == status and \
                revision in (None, record["revision"]) else None

        return until(reached, f"session {session_id} {status} (revision {revision})")

    def failures(self) -> list[dict[str, Any]]:
        answer = self.get("/api/failures")
        answer.raise_for_status()
        failures: list[dict[str, Any]] = answer.json()
        return failures

    def live(self, session_id: str) -> ClientConnection:
        """A hot-reload socket of the session, once its route has a task for it; use it as a
        context manager (``with system.live(id) as socket:``), which closes it."""
        url = f"{self.router.replace('http://', 'ws://')}/session/{session_id}/live"

        def opened() -> ClientConnection:
            try:
                return connect(url, open_timeout=5, close_timeout=2)
            except InvalidStatus as exc:  # 503 until the router mapped the session
                raise AssertionError(f"{url}: {exc}") from exc

        return until(opened, f"{url} opened")

    @staticmethod
    def reload_message(socket: ClientConnection) -> dict[str, Any]:
        message: dict[str, Any] = json.loads(socket.recv(timeout=HANG))
        return message

    # -- ECS -------------------------------------------------------------------------------------
    def tasks(self, session_id: str, state: str | None = None) -> list[dict[str, Any]]:
        """Every task the session's service ran (in ``state`` only, when given)."""
        tasks: list[dict[str, Any]] = self.aws.tasks(state, service=service_name(session_id))
        return tasks

    def wait_running_task(self, session_id: str, other_than: str | None = None
                          ) -> dict[str, Any]:
        """The session's one live task, once it is RUNNING (and not ``other_than``)."""
        def running() -> dict[str, Any] | None:
            live = [t for t in self.tasks(session_id) if t["state"] != "STOPPED"]
            ok = len(live) == 1 and live[0]["state"] == "RUNNING" and \
                live[0]["task_id"] != other_than
            return live[0] if ok else None

        return until(running, f"one RUNNING task of {service_name(session_id)}")

    def wait_no_task(self, session_id: str) -> None:
        eventually(lambda: all(t["state"] == "STOPPED" for t in self.tasks(session_id)),
                   timeout=HANG, description=f"no live task of {service_name(session_id)}")

    def service(self, session_id: str) -> dict[str, Any] | None:
        found = self.ecs.describe_services(cluster=CLUSTER,
                                           services=[service_name(session_id)])["services"]
        active = [s for s in found if s["status"] == "ACTIVE"]
        return active[0] if active else None

    def desired_count(self, session_id: str) -> int | None:
        """The desired count of the session's active service; None when it has none."""
        service = self.service(session_id)
        return int(service["desiredCount"]) if service is not None else None

    def scale(self, session_id: str, count: int) -> None:
        """What an operator does: set the session's service's desired count."""
        self.ecs.update_service(cluster=CLUSTER, service=service_name(session_id),
                                desiredCount=count)

    def stop_every_session(self) -> None:
        """Delete every ECS service and wait until every task stopped."""
        for arn in self.ecs.list_services(cluster=CLUSTER)["serviceArns"]:
            self.ecs.delete_service(cluster=CLUSTER, service=arn, force=True)
        eventually(lambda: all(t["state"] == "STOPPED" for t in self.aws.tasks()),
                   timeout=HANG, description="every task STOPPED")

    # -- workspaces ------------------------------------------------------------------------------
    def workspace(self, session_id: str) -> Path:
        """The session's git checkout, on the volume's host directory."""
        volume: Path = self.aws.volumes()["workspace"].path
        return volume / session_id

    def commits(self, session_id: str) -> list[str]:
        """Subjects of the workspace's commits, oldest first (read from the disk, so also
        while no task runs)."""
        done = subprocess.run(["git", "-C", str(self.workspace(session_id)), "log",
                               "--reverse", "--format=%s"], capture_output=True, text=True,
                              check=True, timeout=30)
        return done.stdout.splitlines()
