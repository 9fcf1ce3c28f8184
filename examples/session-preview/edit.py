"""The edit container of the email-to-preview system (image ``edit:latest``): the one task of ECS
service ``session-{id}`` serves session ``{id}``, which it learns from its task metadata.

It owns the session's workspace, a git checkout in a directory of its own inside the mounted
volume (``$WORKSPACE/{id}``): each revision of the session (each mail) is written there and
committed once, with its revision number as a trailer, so a task that replaces a killed one
finds the files and the history and does not commit the same mail twice. It serves:

- the preview on container port 8080: ``/health`` (200 once the session's revision is applied:
  ECS routes nothing to the task before), ``/session/{id}/`` (the file the latest mail wrote),
  ``/session/{id}/files/PATH``, ``/session/{id}/log`` (``git log``);
- hot reload on container port 8081: a WebSocket at ``/session/{id}/live`` that sends
  ``{"type": "reload", "revision": N, "path": ...}`` for the served revision and each new one.

A new mail is seen by polling the session's record. After ``EDIT_IDLE_TIMEOUT`` seconds with no
visitor (and no open hot-reload socket) it marks the session expired and scales its own service
to zero; ECS's SIGTERM then ends it. A SIGTERM it did not ask for marks the session stopped."""

from __future__ import annotations

import contextlib
import json
import logging
import mimetypes
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from preview_sessions import (
    EXPIRED,
    LIVE,
    STOPPED,
    WORKSPACE_PATH,
    Session,
    SessionTable,
    session_of,
)
from websockets.exceptions import ConnectionClosed
from websockets.sync.server import Server, ServerConnection, serve

log = logging.getLogger("edit")
AWS_ERRORS = (ClientError, BotoCoreError)
REVISION_TRAILER = "Session-Revision"
EXIT_GRACE = 10.0  # seconds to wait for ECS's SIGTERM after scaling to zero


@dataclass(frozen=True)
class Settings:
    workspace: Path
    preview_port: int
    reload_port: int
    table: str
    idle_timeout: float
    poll_interval: float

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        return cls(workspace=Path(env["WORKSPACE"]), preview_port=int(env["PREVIEW_PORT"]),
                   reload_port=int(env["RELOAD_PORT"]),
                   table=env.get("SESSIONS_TABLE", "sessions"),
                   idle_timeout=float(env.get("EDIT_IDLE_TIMEOUT", "300")),
                   poll_interval=float(env.get("EDIT_POLL_INTERVAL", "0.25")))


@dataclass(frozen=True)
class TaskIdentity:
    cluster: str
    service: str
    session_id: str


def task_identity() -> TaskIdentity:
    """Which session this task serves: its ECS service's name, from the task metadata
    endpoint (the dispatcher names the service after the session)."""
    uri = os.environ["ECS_CONTAINER_METADATA_URI_V4"]
    with urllib.request.urlopen(f"{uri}/task", timeout=5) as answer:
        task = json.load(answer)
    service = str(task["ServiceName"])
    return TaskIdentity(cluster=str(task["Cluster"]), service=service,
                        session_id=session_of(service))


# -- the workspace -------------------------------------------------------------------------------
class Workspace:
    """The session's git checkout; its commits are the revisions it applied."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def open(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if not (self.root / ".git").is_dir():
            self._git("init", "-q", "-b", "main")
        # One task serves a session at a time: a lock now is a killed task's, mid-commit.
        (self.root / ".git" / "index.lock").unlink(missing_ok=True)

    def applied_revision(self) -> int:
        """The revision of the latest commit (0 before the first)."""
        done = self._git("log", "-1", f"--format=%(trailers:key={REVISION_TRAILER},valueonly)",
                         check=False)
        value = done.stdout.strip()
        return int(value) if done.returncode == 0 and value.isdigit() else 0

    def commit(self, session: Session) -> None:
        instruction = session.instruction
        target = self._path(instruction.path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(instruction.text)
        self._git("add", "--", instruction.path)
        self._git("commit", "-q", "--allow-empty", "-m", instruction.subject,
                  "-m", f"{REVISION_TRAILER}: {session.revision}", author=session.sender)

    def history(self) -> str:
        done = self._git("log", "--format=%h %an %s", check=False)
        return done.stdout if done.returncode == 0 else ""

    def read(self, path: str) -> bytes | None:
        if not WORKSPACE_PATH.match(path):
            return None
        target = self._path(path)
        return target.read_bytes() if target.is_file() else None

    def _path(self, path: str) -> Path:
        if not WORKSPACE_PATH.match(path):  # the dispatcher checked it; this is the last line
            raise ValueError(f"{path!r} is not a workspace path")
        return self.root / path

    def _git(self, *args: str, check: bool = True,
             author: str = "preview@preview.example.com") -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "GIT_AUTHOR_NAME": author.split("@")[0],
               "GIT_AUTHOR_EMAIL": author, "GIT_COMMITTER_NAME": "preview",
               "GIT_COMMITTER_EMAIL": "preview@preview.example.com",
               "GIT_CONFIG_NOSYSTEM": "1"}
        return subprocess.run(["git", "-C", str(self.root), *args], env=env, text=True,
                              capture_output=True, check=check, timeout=30)


# -- what the servers share ----------------------------------------------------------------------
class Activity:
    """When a visitor last came; the idle timeout counts from there."""

    def __init__(self) -> None:
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def touch(self) -> None:
        with self._lock:
            self._last = time.monotonic()

    def idle_for(self) -> float:
        with self._lock:
            return time.monotonic() - self._last


class Served:
    """The revision being served; hot-reload sockets wait here for the next one."""

    def __init__(self) -> None:
        self._session: Session | None = None
        self._changed = threading.Condition()

    def get(self) -> Session | None:
        with self._changed:
            return self._session

    def publish(self, session: Session) -> None:
        with self._changed:
            self._session = session
            self._changed.notify_all()

    def newer_than(self, revision: int, timeout: float) -> Session | None:
        def newer() -> bool:
            return self._session is not None and self._session.revision > revision

        with self._changed:
            return self._session if self._changed.wait_for(newer, timeout) else None


# -- the session's life --------------------------------------------------------------------------
class Editor:
    """Applies each revision of the session, and ends the session when nobody looks."""

    def __init__(self, settings: Settings, identity: TaskIdentity, workspace: Workspace,
                 clients: dict[str, Any]) -> None:
        self.settings = settings
        self.identity = identity
        self.session_id = identity.session_id
        self.workspace = workspace
        self.table = SessionTable(clients["dynamodb"], settings.table)
        self.ecs = clients["ecs"]
        self.served = Served()
        self.activity = Activity()
        self.ready = threading.Event()
        self.expired = False

    def follow(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.sync()
            if self.activity.idle_for() >= self.settings.idle_timeout and self.expire():
                stop.wait(EXIT_GRACE)  # ECS's SIGTERM, for the scale to zero
                return
            stop.wait(self.settings.poll_interval)
        self.mark_stopped()

    def sync(self) -> None:
        """Apply the session's latest revision if it is not the one served."""
        try:
            latest = self.table.get(self.session_id)
            served = self.served.get()
            if latest is None or (served is not None and served.revision >= latest.revision):
                return
            if self.workspace.applied_revision() < latest.revision:
                self.workspace.commit(latest)
            if self.table.set_status(self.session_id, latest.revision, LIVE):
                self.served.publish(replace(latest, status=LIVE))
                self.activity.touch()
                self.ready.set()
                log.info("session %s: revision %d live", self.session_id, latest.revision)
        except AWS_ERRORS as exc:  # the next poll tries again
            log.warning("session %s: sync failed: %s", self.session_id, exc)

    def expire(self) -> bool:
        """Mark the session expired and scale the service to zero; False (keep serving) when a
        newer mail came in first, or came in while scaling down."""
        served = self.served.get()
        if served is None:
            return False
        try:
            if not self.table.set_status(self.session_id, served.revision, EXPIRED):
                return False
            self.expired = True
            self._scale(0)
            latest = self.table.get(self.session_id)
            if latest is not None and latest.revision != served.revision:
                # the dispatcher saw desiredCount 1 before our scale-down: undo it
                self.expired = False
                self._scale(1)
                return False
        except AWS_ERRORS as exc:
            log.warning("session %s: expiry failed, retrying: %s", self.session_id, exc)
            return False
        log.info("session %s: idle for %.1fs: expired, scaled to zero", self.session_id,
                 self.activity.idle_for())
        return True

    def mark_stopped(self) -> None:
        served = self.served.get()
        if served is None or self.expired:
            return
        try:
            self.table.set_status(self.session_id, served.revision, STOPPED)
        except AWS_ERRORS as exc:
            log.warning("session %s: could not mark it stopped: %s", self.session_id, exc)

    def _scale(self, count: int) -> None:
        self.ecs.update_service(cluster=self.identity.cluster, service=self.identity.service,
                                desiredCount=count)


# -- the preview ---------------------------------------------------------------------------------
class PreviewServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, editor: Editor) -> None:
        super().__init__(("127.0.0.1", port), PreviewHandler)
        self.editor = editor


class PreviewHandler(BaseHTTPRequestHandler):
    server: PreviewServer

    def do_GET(self) -> None:
        editor = self.server.editor
        path = unquote(urlsplit(self.path).path)
        if path == "/health":
            ready = editor.ready.is_set()
            self._reply(200 if ready else 503, b"ok\n" if ready else b"starting\n")
            return
        editor.activity.touch()
        prefix = f"/session/{editor.session_id}"
        if path != prefix and not path.startswith(prefix + "/"):
            self._reply(404, f"this task serves {prefix}/ only\n".encode())
            return
        self._session_page(editor, path[len(prefix):].strip("/"))

    def _session_page(self, editor: Editor, rest: str) -> None:
        served = editor.served.get()
        if served is None:
            self._reply(503, b"the session is starting\n")
        elif rest == "":
            self._file(editor.workspace, served.instruction.path)
        elif rest == "log":
            self._reply(200, editor.workspace.history().encode())
        elif rest.startswith("files/"):
            self._file(editor.workspace, rest[len("files/"):])
        else:
            self._reply(404, b"no such page\n")

    def _file(self, workspace: Workspace, path: str) -> None:
        content = workspace.read(path)
        if content is None:
            self._reply(404, f"no file {path!r} in the workspace\n".encode())
            return
        kind = mimetypes.guess_type(path)[0] or "text/plain"
        self._reply(200, content, kind)

    def _reply(self, status: int, body: bytes, kind: str = "text/plain") -> None:
        with contextlib.suppress(ConnectionError):  # a browser that left needs no answer
            self.send_response(status)
            self.send_header("Content-Type", f"{kind}; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")  # a preview is always the latest
            self.end_headers()
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # ECS's health checks would fill the log


# -- hot reload ----------------------------------------------------------------------------------
def hot_reload(connection: ServerConnection, editor: Editor) -> None:
    """Send the served revision, then each new one, until the browser goes away."""
    if urlsplit(connection.request.path if connection.request else "").path != \
            f"/session/{editor.session_id}/live":
        connection.close(code=1008, reason="this task serves another session")
        return
    seen = 0
    while True:
        editor.activity.touch()  # a browser watching the preview keeps the session alive
        session = editor.served.newer_than(seen, timeout=0.25)
        try:
            if session is not None:
                connection.send(json.dumps({"type": "reload", "revision": session.revision,
                                            "path": session.instruction.path}))
                seen = session.revision
            connection.recv(timeout=0)  # what a browser says is not needed, only its leaving
        except TimeoutError:
            continue
        except ConnectionClosed:
            return


def serve_hot_reload(port: int, editor: Editor) -> Server:
    server = serve(lambda connection: hot_reload(connection, editor), "127.0.0.1", port)
    threading.Thread(target=server.serve_forever, name="hot-reload", daemon=True).start()
    return server


# -- the process ---------------------------------------------------------------------------------
def aws_clients() -> dict[str, Any]:
    make: Any = boto3.session.Session().client  # any service name, not only the stubs' literals
    config = Config(connect_timeout=2, read_timeout=10, retries={"mode": "standard"})
    return {"dynamodb": make("dynamodb", config=config), "ecs": make("ecs", config=config)}


def main() -> int:
    logging.basicConfig(stream=sys.stdout, level=logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("botocore").setLevel(logging.WARNING)
    logging.getLogger("websockets").setLevel(logging.WARNING)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    settings = Settings.from_env()
    identity = task_identity()
    workspace = Workspace(settings.workspace / identity.session_id)
    workspace.open()
    editor = Editor(settings, identity, workspace, aws_clients())
    preview = PreviewServer(settings.preview_port, editor)
    threading.Thread(target=preview.serve_forever, name="preview", daemon=True).start()
    reload = serve_hot_reload(settings.reload_port, editor)
    log.info("session %s: workspace %s, preview on %d, hot reload on %d", identity.session_id,
             workspace.root, settings.preview_port, settings.reload_port)
    editor.follow(stop)
    reload.shutdown()
    preview.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
