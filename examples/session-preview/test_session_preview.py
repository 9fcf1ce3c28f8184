"""The email-to-preview system's plan, against the real thing on one machine: the AWS emulator
(SES, S3, SNS, SQS, DynamoDB, ECS running the edit container natively), the dispatcher as a
process, HAProxy as the path router. Run it with:

    .venv/bin/pytest -n0 examples/session-preview

One environment for the module (``shakedown.toml`` beside this file); each test applies the
system's infrastructure code (idempotent), uses sessions of its own, and ends with every ECS
service deleted, every task stopped and no orphaned task (``no_orphans``). The plan's latency
figures are the topology's ``[targets]``, measured here with ``shakedown_env.measure``."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import httpx
import preview_infra
import pytest
from preview_driver import HANG, PreviewSystem, new_session_id, until

from shakedown import eventually
from shakedown.checkers import no_orphans
from shakedown.environment import Environment

pytestmark = pytest.mark.shakedown(scope="module")

BURST = 20
THROTTLED_SHARE = 0.8  # of PutItem calls; three attempts each: about half the mails give up


@pytest.fixture
def preview(shakedown_env: Environment) -> Iterator[PreviewSystem]:
    system = PreviewSystem(shakedown_env)
    preview_infra.provision(system.aws.client)
    yield system
    try:
        system.stop_every_session()
        result = no_orphans(None, compute=system.aws)
        assert result, str(result)
    finally:
        system.close()


def test_cold_start_from_zero_tasks_serves_the_mail(preview: PreviewSystem,
                                                    shakedown_env: Environment) -> None:
    session = new_session_id("cold")
    assert preview.tasks(session) == [] and preview.service(session) is None
    with shakedown_env.measure("cold-start"):
        message = preview.mail(session, "index.html", "<h1>Hello from the mail</h1>",
                               subject="First draft", sender="alice@example.org")
        page = preview.wait_page(session, "<h1>Hello from the mail</h1>")
    assert page.strip() == "<h1>Hello from the mail</h1>"
    record = preview.wait_record(session, "live", revision=1)
    assert record["message_id"] == message and record["sender"] == "alice@example.org"
    assert preview.desired_count(session) == 1
    [task] = preview.tasks(session)
    assert task["state"] == "RUNNING" and task["health"] == "HEALTHY"
    assert "alice First draft" in preview.page(session, "log").text
    assert "Subject: First draft" in preview.archived(message)  # SES's S3 action kept it


def test_workspace_and_history_survive_a_forced_scale_down(preview: PreviewSystem) -> None:
    session = new_session_id("kept")
    preview.mail(session, "index.html", "<p>version one</p>", subject="One")
    preview.wait_page(session, "version one")
    [first] = preview.tasks(session)
    preview.scale(session, 0)  # an operator's scale-down, not the idle one
    preview.wait_no_task(session)
    preview.wait_record(session, "stopped", revision=1)
    preview.wait_status(f"/session/{session}/", 503)  # no task: the router has nowhere to go
    assert (preview.workspace(session) / "index.html").read_text() == "<p>version one</p>\n"

    preview.mail(session, "notes/todo.txt", "make it blue", subject="Two")
    preview.wait_page(session, "make it blue")
    preview.wait_record(session, "live", revision=2)
    second = preview.wait_running_task(session)
    assert second["task_id"] != first["task_id"]
    assert preview.page(session, "files/index.html").text == "<p>version one</p>\n"
    assert preview.commits(session) == ["One", "Two"]


def test_three_concurrent_sessions_are_isolated_and_expire_independently(
        preview: PreviewSystem) -> None:
    red, green, blue = sessions = [new_session_id(name) for name in ("red", "green", "blue")]
    with _visiting(preview, green):  # only green has a visitor, from its first page on
        for session in sessions:
            preview.mail(session, "index.html", f"<p>{session}</p>", subject=f"Paint {session}")
        pages = preview.wait_pages({session: f"<p>{session}</p>" for session in sessions})
        # read from what each session showed and left on disk: red and blue may expire already
        for session in sessions:
            assert pages[session].strip() == f"<p>{session}</p>"
            assert preview.commits(session) == [f"Paint {session}"]
            assert (preview.workspace(session) / "index.html").read_text() == \
                f"<p>{session}</p>\n"
        assert len({preview.tasks(s)[0]["ports"]["8080"] for s in sessions}) == 3
        for idle in (red, blue):
            preview.wait_record(idle, "expired")
            preview.wait_no_task(idle)
        assert preview.status(green) == "live" and preview.tasks(green, "RUNNING")
    preview.wait_record(green, "expired")
    preview.wait_no_task(green)
    assert [len(preview.tasks(s)) for s in sessions] == [1, 1, 1]  # none was started twice


@pytest.fixture
def every_route_session(preview: PreviewSystem) -> str:
    session = new_session_id("routes")
    preview.mail(session, "index.html", "<p>routed</p>", subject="Routed")
    preview.wait_page(session, "routed")
    return session


def test_every_route_answers(preview: PreviewSystem, every_route_session: str) -> None:
    session = every_route_session
    health = preview.get("/api/health")
    assert health.status_code == 200 and health.json()["ok"] is True
    assert preview.get(f"/api/sessions/{session}").json()["preview"] == f"/session/{session}/"
    assert preview.get("/api/sessions/no-such-session").status_code == 404
    assert preview.page(session).text.strip() == "<p>routed</p>"
    assert "Routed" in preview.page(session, "log").text
    assert preview.page(session, "files/index.html").status_code == 200
    assert preview.page(session, "files/.git/config").status_code == 404
    assert preview.get("/nowhere").status_code == 404  # no route matches
    assert preview.get(f"/session/{new_session_id('none')}/").status_code == 503

    with preview.live(session) as socket:  # closed when the block ends
        assert preview.reload_message(socket) == {"type": "reload", "revision": 1,
                                                  "path": "index.html"}
        preview.mail(session, "style.css", "h1 { color: blue }", subject="Blue")
        assert preview.reload_message(socket) == {"type": "reload", "revision": 2,
                                                  "path": "style.css"}
    assert "color: blue" in preview.page(session).text


def test_a_warm_session_applies_the_next_mail_in_its_running_task(
        preview: PreviewSystem, shakedown_env: Environment) -> None:
    session = new_session_id("warm")
    preview.mail(session, "index.html", "<p>draft</p>", subject="Draft")
    preview.wait_page(session, "draft")
    [task] = preview.tasks(session)
    with shakedown_env.measure("warm-session"):
        preview.mail(session, "index.html", "<p>final</p>", subject="Final")
        preview.wait_page(session, "final")
    preview.wait_record(session, "live", revision=2)
    assert [t["task_id"] for t in preview.tasks(session)] == [task["task_id"]]
    assert preview.commits(session) == ["Draft", "Final"]


def test_a_killed_container_is_replaced_with_its_session_and_files(
        preview: PreviewSystem, shakedown_env: Environment) -> None:
    session = new_session_id("crash")
    preview.mail(session, "index.html", "<p>survivor</p>", subject="Survive")
    preview.wait_page(session, "survivor")
    killed = preview.wait_running_task(session)
    with shakedown_env.measure("restart-recovery"):
        shakedown_env.faults.kill("aws", f"task:{killed['task_id']}")
        replacement = preview.wait_running_task(session, other_than=killed["task_id"])
        preview.wait_page(session, "survivor")
    assert preview.wait_record(session, "live")["revision"] == 1
    [dead] = [t for t in preview.tasks(session) if t["task_id"] == killed["task_id"]]
    assert dead["state"] == "STOPPED" and dead["stop_code"] == "EssentialContainerExited"
    assert dead["containers"][0]["exit_code"] == 137
    assert replacement["task_id"] != killed["task_id"]
    assert preview.commits(session) == ["Survive"]  # the mail was not applied twice


def test_a_burst_under_dynamodb_throttling_records_some_and_orphans_no_task(
        preview: PreviewSystem, shakedown_env: Environment) -> None:
    ids = [new_session_id(f"burst{n}") for n in range(BURST)]
    sessions = {session: f"writer-{session}@example.org" for session in ids}  # who is told
    with shakedown_env.faults.aws_error("aws", "dynamodb", "PutItem",
                                        "ProvisionedThroughputExceededException",
                                        probability=THROTTLED_SHARE):
        for session, sender in sessions.items():
            preview.mail(session, "index.html", f"<p>{session}</p>", sender=sender)
        recorded, given_up = until(lambda: _settled(preview, set(sessions)),
                                   "every mail of the burst recorded or given up")
    assert recorded and given_up, f"recorded {sorted(recorded)}, gave up {sorted(given_up)}"
    assert recorded | given_up == set(sessions) and not recorded & given_up
    for session in given_up:  # no record, no service, no task; its sender was told
        assert preview.record(session) is None
        assert preview.service(session) is None and preview.tasks(session) == []
        [reply] = preview.replies(sessions[session])
        assert reply["subject"] == f"Preview {session}: not started"
    eventually(lambda: all(preview.tasks(s) for s in recorded), timeout=HANG,
               description="a task for every recorded session")
    ran = {t["service"].removeprefix("session-") for t in preview.aws.tasks()}
    assert not ran & given_up, f"tasks for sessions never recorded: {ran & given_up}"


def _settled(preview: PreviewSystem, sessions: set[str]) -> tuple[set[str], set[str]] | None:
    """(recorded, given up) once every session is one or the other."""
    given_up = {f["session"] for f in preview.failures()} & sessions
    recorded = {s for s in sessions - given_up if preview.record(s) is not None}
    return (recorded, given_up) if recorded | given_up == sessions else None


def test_an_idle_session_scales_itself_to_zero_and_is_marked_expired(
        preview: PreviewSystem, shakedown_env: Environment) -> None:
    session = new_session_id("idle")
    preview.mail(session, "index.html", "<p>soon gone</p>", subject="Idle")
    preview.wait_page(session, "soon gone")  # the last visit
    with shakedown_env.measure("idle-shutdown"):
        preview.wait_no_task(session)
        preview.wait_record(session, "expired", revision=1)
    assert preview.desired_count(session) == 0
    [task] = preview.tasks(session)
    assert task["stop_code"] == "ServiceSchedulerInitiated"
    assert task["containers"][0]["exit_code"] == 0  # it left on ECS's SIGTERM
    preview.wait_status(f"/session/{session}/", 503)
    assert preview.commits(session) == ["Idle"]


class _visiting:
    """A visitor who reloads a session's preview every 0.3 s while the block runs (with a
    client of its own: the test's is used meanwhile)."""

    def __init__(self, preview: PreviewSystem, session: str) -> None:
        self.url = f"{preview.router}/session/{session}/"
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._visit, daemon=True)

    def __enter__(self) -> _visiting:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join(timeout=HANG)

    def _visit(self) -> None:
        with httpx.Client(timeout=10, trust_env=False) as client:
            while not self.done.wait(0.3):
                with contextlib.suppress(httpx.HTTPError):  # a visitor reloads again
                    client.get(self.url)
