"""Tests of the replication-job example, against real PostgreSQL, the AWS emulator and the
example's own API and worker processes. Run them with:

    .venv/bin/pytest examples/replication-job

The environment comes from the project's pytest plugin: ``shakedown_env`` brings up the
``shakedown.toml`` beside this file, once for the module. The smoke tests run twice: against
that API, and against the same API declared ``external`` through the overlay
``api-external.toml`` (the staging case: the API runs elsewhere, the tests only know its URL).
The plugin takes one topology file per environment, so the overlay environment is brought up
here with ``Environment.from_file([base, overlay])``.
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from shakedown.checkers import tables_equal
from shakedown.environment import Environment
from shakedown.process import tagged_processes
from shakedown.services import AwsService
from shakedown.waits import scaled

HERE = Path(__file__).parent
JOB_DEADLINE = 60.0  # seconds: a job that takes longer than this is a hang

pytestmark = pytest.mark.shakedown(scope="module")


@pytest.fixture
def env(shakedown_env: Environment) -> Environment:
    return shakedown_env


@pytest.fixture(scope="module")
def overlay_envs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Environment]]:
    """Environments started from the base topology plus an overlay; down at the module's end
    (before the plugin takes the base environment down)."""
    started: dict[str, Environment] = {}
    yield started
    for environment in started.values():
        environment.down()
        assert not tagged_processes(environment.env_id)


@pytest.fixture
def aws(env: Environment) -> Iterator[AwsService]:
    """The AWS emulator, with no fault rules and fresh resources after each test."""
    service = env["aws"]
    assert isinstance(service, AwsService)
    yield service
    service.clear_rules()
    service.reset()


@pytest.fixture(params=["local", "external"])
def system(request: pytest.FixtureRequest, env: Environment,
           overlay_envs: dict[str, Environment],
           tmp_path_factory: pytest.TempPathFactory) -> Environment:
    """The environment whose ``api`` the smoke tests talk to, and whose databases they copy:
    ``external`` declares the api external, pointing at the API of ``env`` (its worker does
    the copies, from and to this environment's databases)."""
    if request.param == "local":
        return env
    if "external" not in overlay_envs:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("JOBS_API_URL", env["api"].url)
            overlay_envs["external"] = Environment.from_file(
                [HERE / "shakedown.toml", HERE / "api-external.toml"],
                "replication-job-external",
                state_root=tmp_path_factory.mktemp("shakedown-state")).up()
    external = overlay_envs["external"]
    assert external["api"].kind == "external" and external["api"].url == env["api"].url
    return external


def _post(api: str, payload: Any, **kwargs: Any) -> httpx.Response:
    return httpx.post(f"{api}/jobs", json=payload, timeout=30, trust_env=False, **kwargs)


def _wait(api: str, job_id: str, deadline: float = JOB_DEADLINE) -> tuple[dict[str, Any],
                                                                           list[int]]:
    """Poll until the job is done; return it and the progress values seen."""
    seen: list[int] = []
    end = time.monotonic() + deadline
    while True:
        response = httpx.get(f"{api}/jobs/{job_id}", timeout=30, trust_env=False)
        assert response.status_code == 200, response.text
        job = response.json()
        seen.append(job["progress"])
        if job["status"] in ("succeeded", "failed"):
            return job, seen
        assert time.monotonic() < end, f"job not done after {deadline}s: {job}"
        time.sleep(0.05)


def _copy_job(system: Environment) -> dict[str, Any]:
    response = _post(system["api"].url, {"source_url": system["source"].url,
                                         "target_url": system["target"].url})
    assert response.status_code == 201, response.text
    job_id = response.json()["id"]
    assert response.headers["Location"] == f"/jobs/{job_id}"
    job, _ = _wait(system["api"].url, job_id)
    return job


def _counts_and_checksums(url: str) -> dict[str, tuple[int, str]]:
    result = {}
    with psycopg.connect(url) as conn:
        for table in ("customers", "orders"):
            row = conn.execute(f"SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY "
                               f"t.id), '')) FROM {table} t").fetchone()
            assert row is not None
            result[table] = (row[0], row[1])
    return result


# -- smoke tests, against the local API and the external one -------------------------------
def test_unknown_job_is_404(system: Environment) -> None:
    response = httpx.get(f"{system['api'].url}/jobs/{uuid.uuid4()}", trust_env=False)
    assert response.status_code == 404
    assert response.json()["error"].startswith("no job ")


@pytest.mark.parametrize(("body", "problem"), [
    (b"not json", "the body is not JSON"),
    (b"[1, 2]", "the body must be a JSON object"),
    (b'{"source_url": "postgresql://h/db"}', "missing target_url"),
    (b'{"source_url": "http://h/db", "target_url": "postgresql://h/t"}',
     "source_url must be a postgresql:// URL"),
    (b'{"source_url": "postgresql://h/db", "target_url": "postgresql://h/db"}',
     "source_url and target_url are the same database"),
    (b'{"source_url": "postgresql://h/a", "target_url": "postgresql://h/b", "x": 1}',
     "unknown field(s): x"),
])
def test_invalid_payload_is_400(system: Environment, body: bytes, problem: str) -> None:
    response = httpx.post(f"{system['api'].url}/jobs", content=body, trust_env=False,
                          headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json() == {"error": problem}


def test_job_copies_the_source_into_the_target(system: Environment) -> None:
    job = _copy_job(system)
    assert job["status"] == "succeeded", job
    assert job["progress"] == 100 and job["tables"] == 2
    assert "***" in job["source"] and system["source"].password not in str(job)  # type: ignore[attr-defined]
    source, target = system["source"], system["target"]
    result = tables_equal(source, target)
    assert result, str(result)
    counts = _counts_and_checksums(source.url)
    assert counts == _counts_and_checksums(target.url)
    assert counts["customers"][0] == 1000 and counts["orders"][0] == 5000


# -- behaviour of the system, against the local environment --------------------------------
def test_progress_is_reported_and_only_grows(env: Environment, aws: AwsService) -> None:
    # A little latency on UpdateItem makes the intermediate progress values observable.
    aws.add_latency_rule("dynamodb", "UpdateItem", ms=150)
    response = _post(env["api"].url, {"source_url": env["source"].url,
                                      "target_url": env["target"].url})
    job, seen = _wait(env["api"].url, response.json()["id"])
    assert job["status"] == "succeeded"
    assert seen == sorted(seen) and seen[-1] == 100
    assert any(0 < p < 100 for p in seen), seen


def test_invalid_source_fails_with_a_reason_and_the_worker_carries_on(
    env: Environment, aws: AwsService
) -> None:
    with socket_closed_port() as port:
        bad = f"postgresql://postgres:very-secret-pw@127.0.0.1:{port}/nowhere"
        response = _post(env["api"].url, {"source_url": bad, "target_url": env["target"].url})
        assert response.status_code == 201
        job, _ = _wait(env["api"].url, response.json()["id"])
    assert job["status"] == "failed"
    assert job["error"].startswith("cannot read the source database: ")
    assert "Connection refused" in job["error"]
    assert "very-secret-pw" not in str(job) and "***" in job["source"]
    health = httpx.get(f"{env['worker'].url}/health", trust_env=False)
    assert health.status_code == 200 and health.json()["failed"] >= 1
    assert env["worker"].status() == "running"
    assert _copy_job(env)["status"] == "succeeded"  # the next job is done as usual
    assert "very-secret-pw" not in env["api"].log_tail(5000)
    assert "very-secret-pw" not in env["worker"].log_tail(5000)


def test_credentials_never_appear_in_logs(env: Environment, aws: AwsService) -> None:
    _copy_job(env)
    logs = env["api"].log_tail(5000) + env["worker"].log_tail(5000)
    assert "job" in logs
    for db in ("source", "target"):
        assert env[db].password not in logs  # type: ignore[attr-defined]


def test_throttled_dynamodb_is_retried_and_the_job_completes(
    env: Environment, aws: AwsService
) -> None:
    for operation in ("PutItem", "UpdateItem", "GetItem"):
        aws.add_error_rule("dynamodb", operation, "ProvisionedThroughputExceededException",
                           probability=0.4)
    began = time.monotonic()
    for _ in range(5):  # the API retries 4 times; a 503 after that is a clear answer too
        response = _post(env["api"].url, {"source_url": env["source"].url,
                                          "target_url": env["target"].url})
        if response.status_code == 201:
            break
        assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    job_id = response.json()["id"]
    job: dict[str, Any] = {}
    while time.monotonic() - began < JOB_DEADLINE:
        answer = httpx.get(f"{env['api'].url}/jobs/{job_id}", timeout=30, trust_env=False)
        if answer.status_code == 200:  # 503 while GetItem is throttled is a clear answer
            job = answer.json()
            if job["status"] in ("succeeded", "failed"):
                break
        else:
            assert answer.status_code == 503, answer.text
        time.sleep(0.05)
    assert job.get("status") == "succeeded", job
    hits = sum(rule["hits"] for rule in aws.rules())
    assert hits > 0, "no request was throttled: the test proved nothing"


def test_outcome_throttled_beyond_retries_is_retried_later_without_hanging(
    env: Environment, aws: AwsService
) -> None:
    rule = aws.add_error_rule("dynamodb", "UpdateItem", "ProvisionedThroughputExceededException")
    response = _post(env["api"].url, {"source_url": env["source"].url,
                                      "target_url": env["target"].url})
    assert response.status_code == 201
    job_id = response.json()["id"]
    worker = f"{env['worker'].url}/health"
    deadline = time.monotonic() + JOB_DEADLINE
    while httpx.get(worker, trust_env=False).json()["store_errors"] < 1:
        assert time.monotonic() < deadline, "the worker never gave up on a throttled update"
        time.sleep(0.1)
    # Having handed the message back, the worker polls the queue again: it is not stuck.
    polls = httpx.get(worker, trust_env=False).json()["polls"]
    while httpx.get(worker, trust_env=False).json()["polls"] <= polls:
        assert time.monotonic() < deadline, "the worker stopped polling"
        time.sleep(0.1)
    job = httpx.get(f"{env['api'].url}/jobs/{job_id}", trust_env=False).json()
    assert job["status"] == "queued"  # the worker could not record anything yet
    assert "cannot record its state" in env["worker"].log_tail(200)
    aws.remove_rule(rule)
    job, _ = _wait(env["api"].url, job_id)
    assert job["status"] == "succeeded"


def test_api_answers_503_when_the_job_store_is_throttled(
    env: Environment, aws: AwsService
) -> None:
    aws.add_error_rule("dynamodb", "PutItem", "ThrottlingException")
    began = time.monotonic()
    response = _post(env["api"].url, {"source_url": env["source"].url,
                                      "target_url": env["target"].url})
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    assert response.json() == {"error": "job store unavailable (ThrottlingException), "
                                        "retry later"}
    assert time.monotonic() - began < scaled(30)  # bounded retries, no hang
    [rule] = aws.rules()
    assert rule["hits"] == 4  # JOBS_AWS_MAX_ATTEMPTS of the api


class socket_closed_port:  # a context manager; reads like one where it is used
    """A local port on which nothing listens (bound, then closed)."""

    def __enter__(self) -> int:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        return port

    def __exit__(self, *args: object) -> None:
        pass
