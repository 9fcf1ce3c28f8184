"""Tests of the replication-job example, against real PostgreSQL, the AWS emulator and the
example's own code running as AWS runs it: the two Lambda handlers behind the HTTP API, and a
worker process per job, started by RunInstances. Run them with:

    .venv/bin/pytest examples/replication-job

The environment comes from the project's pytest plugin: ``shakedown_env`` brings up the
``shakedown.toml`` beside this file, once for the module. The smoke tests run twice: against
the local API, and against the same API declared ``external`` through the overlay
``api-external.toml`` (the staging case: the tests only know the API's URL and key). The
plugin takes one topology file per environment, so the overlay environment is brought up here
with ``Environment.from_file([base, overlay])``.
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

from shakedown.checkers import no_orphans, tables_equal
from shakedown.environment import Environment
from shakedown.process import tagged_processes
from shakedown.services import AwsService
from shakedown.waits import scaled

HERE = Path(__file__).parent
JOB_DEADLINE = 60.0  # seconds: a job that takes longer than this is a hang
API_KEY = "replication-demo-key"
KEY = {"x-api-key": API_KEY}

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
    """The AWS emulator, with no fault rules and fresh resources after each test; no worker
    instance may outlive a test."""
    service = env["aws"]
    assert isinstance(service, AwsService)
    yield service
    service.clear_rules()
    try:
        _wait_until(lambda: not service.instances("running") and
                    not service.instances("shutting-down"), "workers ended")
        result = no_orphans(None, compute=service)
        assert result, str(result)
    finally:
        service.reset()


def api_url(system: Environment) -> str:
    """The job API's URL: the external service's in the staging case, else the local API's."""
    if "api" in system.services:
        return system["api"].url
    aws = system["aws"]
    assert isinstance(aws, AwsService)
    return aws.api_url("jobs")


@pytest.fixture(params=["local", "external"])
def system(request: pytest.FixtureRequest, env: Environment,
           overlay_envs: dict[str, Environment],
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Environment]:
    """The environment whose API the smoke tests talk to, and whose databases they copy:
    ``external`` declares the API external, pointing at the API of ``env`` (its workers do
    the copies, from and to this environment's databases)."""
    aws = env["aws"]
    assert isinstance(aws, AwsService)
    if request.param == "local":
        yield env
    else:
        if "external" not in overlay_envs:
            with pytest.MonkeyPatch.context() as patch:
                patch.setenv("JOBS_API_URL", aws.api_url("jobs"))
                overlay_envs["external"] = Environment.from_file(
                    [HERE / "shakedown.toml", HERE / "api-external.toml"],
                    "replication-job-external",
                    state_root=tmp_path_factory.mktemp("shakedown-state")).up()
        external = overlay_envs["external"]
        assert external["api"].kind == "external" and external["api"].url == aws.api_url("jobs")
        yield external
    _wait_until(lambda: not aws.instances("running"), "the test's workers ended")


def _wait_until(check: Any, what: str, deadline: float = JOB_DEADLINE) -> None:
    end = time.monotonic() + deadline
    while not check():
        assert time.monotonic() < end, f"{what}: not after {deadline}s"
        time.sleep(0.05)


def _post(api: str, payload: Any, **kwargs: Any) -> httpx.Response:
    return httpx.post(f"{api}/jobs", json=payload, timeout=30, trust_env=False,
                      headers=KEY, **kwargs)


def _get(api: str, job_id: str) -> httpx.Response:
    return httpx.get(f"{api}/jobs/{job_id}", timeout=30, trust_env=False, headers=KEY)


def _wait(api: str, job_id: str, deadline: float = JOB_DEADLINE) -> tuple[dict[str, Any],
                                                                           list[int]]:
    """Poll until the job is done; return it and the progress values seen."""
    seen: list[int] = []
    end = time.monotonic() + deadline
    while True:
        response = _get(api, job_id)
        assert response.status_code == 200, response.text
        job = response.json()
        seen.append(job["progress"])
        if job["status"] in ("succeeded", "failed"):
            return job, seen
        assert time.monotonic() < end, f"job not done after {deadline}s: {job}"
        time.sleep(0.05)


def _copy_job(system: Environment) -> dict[str, Any]:
    response = _post(api_url(system), {"source_url": system["source"].url,
                                       "target_url": system["target"].url})
    assert response.status_code == 201, response.text
    job_id = response.json()["id"]
    assert response.headers["Location"] == f"/jobs/{job_id}"
    job, _ = _wait(api_url(system), job_id)
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
    response = _get(api_url(system), str(uuid.uuid4()))
    assert response.status_code == 404
    assert response.json()["error"].startswith("no job ")


def test_missing_or_wrong_api_key_is_refused(system: Environment) -> None:
    url = f"{api_url(system)}/jobs"
    missing = httpx.post(url, json={}, trust_env=False)
    assert missing.status_code == 401 and missing.json() == {"message": "Unauthorized"}
    wrong = httpx.get(f"{url}/x", headers={"x-api-key": "guess"}, trust_env=False)
    assert wrong.status_code == 403 and wrong.json() == {"message": "Forbidden"}


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
    response = httpx.post(f"{api_url(system)}/jobs", content=body, trust_env=False,
                          headers={"Content-Type": "application/json", **KEY})
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
    with psycopg.connect(target.url) as conn:
        keys = conn.execute("SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND "
                            "conrelid = 'orders'::regclass").fetchone()
    assert keys == (1,)  # the foreign key came across


# -- behaviour of the system, against the local environment --------------------------------
def test_each_job_runs_on_its_own_instance_that_terminates_itself(
    env: Environment, aws: AwsService
) -> None:
    job = _copy_job(env)
    assert job["status"] == "succeeded"
    def ended() -> list[dict[str, Any]]:
        return [i for i in aws.instances("terminated") if i["instance_id"] == job["instance"]]

    _wait_until(ended, "the worker ended")
    [instance] = ended()
    assert instance["image_id"] == "ami-0a1b2c3d4e5f60789"
    log = aws.log_paths()[f"ec2/{job['instance']}"].read_text()
    assert f"job {job['id']} succeeded: 2 tables" in log
    states = [e["state"] for e in aws.compute_events()
              if e.get("instance_id") == job["instance"]]
    assert states == ["running", "shutting-down", "terminated"]  # TerminateInstances, by itself
    handlers = {e["function"] for e in aws.compute_events() if e["type"] == "lambda.invoke"}
    assert {"create-job", "get-job"} <= handlers


def test_progress_is_reported_and_only_grows(env: Environment, aws: AwsService) -> None:
    # A little latency on UpdateItem makes the intermediate progress values observable.
    aws.add_latency_rule("dynamodb", "UpdateItem", ms=150)
    response = _post(api_url(env), {"source_url": env["source"].url,
                                    "target_url": env["target"].url})
    job, seen = _wait(api_url(env), response.json()["id"])
    assert job["status"] == "succeeded"
    assert seen == sorted(seen) and seen[-1] == 100
    assert any(0 < p < 100 for p in seen), seen


def test_invalid_source_fails_with_a_reason_and_leaves_no_instance(
    env: Environment, aws: AwsService
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    bad = f"postgresql://postgres:very-secret-pw@127.0.0.1:{port}/nowhere"
    response = _post(api_url(env), {"source_url": bad, "target_url": env["target"].url})
    assert response.status_code == 201
    job, _ = _wait(api_url(env), response.json()["id"])
    assert job["status"] == "failed"
    assert job["error"].startswith("cannot read the source database: ")
    assert "Connection refused" in job["error"]
    assert "very-secret-pw" not in str(job) and "***" in job["source"]
    _wait_until(lambda: any(i["instance_id"] == job["instance"]
                            for i in aws.instances("terminated")), "the job's worker ended")
    assert no_orphans(None, compute=aws)
    logs = "".join(path.read_text() for path in aws.log_paths().values())
    assert "very-secret-pw" not in logs
    assert _copy_job(env)["status"] == "succeeded"  # the next job is done as usual


def test_credentials_never_appear_in_logs(env: Environment, aws: AwsService) -> None:
    _copy_job(env)
    logs = "".join(path.read_text() for key, path in aws.log_paths().items() if key)
    assert "job" in logs
    for db in ("source", "target"):
        assert env[db].password not in logs  # type: ignore[attr-defined]


def test_throttled_dynamodb_is_retried_and_the_job_completes(
    env: Environment, aws: AwsService
) -> None:
    # Writes fail at most 4 times in all: fewer than the 5 attempts one call has, so the
    # outcome is certain while which attempts fail stays random (uncapped, 0.4 makes a call
    # exhaust its retries 1% of the time: the job then fails, correctly, and so did this test
    # in CI). Reads stay uncapped: the polling below accepts their 503s.
    for operation, times in (("PutItem", 4), ("UpdateItem", 4), ("GetItem", None)):
        aws.add_error_rule("dynamodb", operation, "ProvisionedThroughputExceededException",
                           probability=0.4, times=times)
    began = time.monotonic()
    for _ in range(5):  # the API retries 4 times; a 503 after that is a clear answer too
        response = _post(api_url(env), {"source_url": env["source"].url,
                                        "target_url": env["target"].url})
        if response.status_code == 201:
            break
        assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    assert response.status_code == 201, response.text
    job_id = response.json()["id"]
    job: dict[str, Any] = {}
    while time.monotonic() - began < JOB_DEADLINE:
        answer = _get(api_url(env), job_id)
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


def test_api_answers_503_when_the_job_store_is_throttled(
    env: Environment, aws: AwsService
) -> None:
    aws.add_error_rule("dynamodb", "PutItem", "ThrottlingException")
    began = time.monotonic()
    response = _post(api_url(env), {"source_url": env["source"].url,
                                    "target_url": env["target"].url})
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    assert response.json() == {"error": "job store unavailable (ThrottlingException), "
                                        "retry later"}
    assert time.monotonic() - began < scaled(30)  # bounded retries, no hang
    [rule] = aws.rules()
    assert rule["hits"] == 4  # JOBS_AWS_MAX_ATTEMPTS of the handler
    assert not aws.instances("pending") and not aws.instances("running")  # none started


def test_run_instances_throttled_is_retried_then_answered_503(
    env: Environment, aws: AwsService
) -> None:
    # Two throttles: boto3's retries absorb them and the job runs.
    before = len(aws.instances())
    aws.add_error_rule("ec2", "RunInstances", "RequestLimitExceeded", times=2)
    assert _copy_job(env)["status"] == "succeeded"
    aws.clear_rules()
    # Throttled beyond the retries: 503, the job is marked failed, no instance exists.
    aws.add_error_rule("ec2", "RunInstances", "RequestLimitExceeded")
    response = _post(api_url(env), {"source_url": env["source"].url,
                                    "target_url": env["target"].url})
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    assert response.json() == {"error": "worker capacity unavailable (RequestLimitExceeded), "
                                        "retry later"}
    assert aws.rules()[0]["hits"] == 4
    assert len(aws.instances()) == before + 1  # only the first job's, terminated


def test_worker_killed_mid_copy_fails_the_job(env: Environment, aws: AwsService) -> None:
    aws.add_latency_rule("dynamodb", "UpdateItem", ms=300)  # a copy long enough to cut
    response = _post(api_url(env), {"source_url": env["source"].url,
                                    "target_url": env["target"].url})
    job_id = response.json()["id"]
    running: dict[str, Any] = {}

    def started() -> bool:
        running.update(_get(api_url(env), job_id).json())
        return running["status"] == "running"

    _wait_until(started, "the worker started copying")
    aws.kill(running["instance"])  # SIGKILL: the worker cannot record anything
    job, _ = _wait(api_url(env), job_id)
    assert job["status"] == "failed"
    assert job["error"] == (f"the worker {running['instance']} ended (terminated) before the "
                            "job finished")
    assert running["instance"] in [i["instance_id"] for i in aws.instances("terminated")]
