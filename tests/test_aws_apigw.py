"""HTTP APIs of the ``aws`` kind in front of native Lambda functions, against the real emulator
and real workers: routes and path parameters, query strings, headers, cookies, base64 bodies,
the format 2.0 response mapping, the API key (401/403), errors, and the API's URL exported to
another service."""

from __future__ import annotations

import base64
import json
import shutil
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shakedown.environment import Environment
from shakedown.process import kill_tagged, tagged_processes
from shakedown.services import AwsService

TOPOLOGY = """
    [services.aws]
    kind = "aws"
    services = ["lambda"]

    [services.aws.functions.show]
    handler = "web.show"
    [services.aws.functions.shaped]
    handler = "web.shaped"
    [services.aws.functions.broken]
    handler = "web.broken"

    [services.aws.apis.public.routes]
    "GET /items/{id}" = "show"
    "POST /items" = "shaped"
    "ANY /files/{path+}" = "show"
    "GET /broken" = "broken"

    [services.aws.apis.private]
    api_key = "let-me-in"
    routes = { "$default" = "show" }

    [services.client]
    kind = "process"
    command = ["sh", "-c", "echo up; exec sleep 600"]
    ready = { log = "up" }
    env = { API_URL = "{aws.api_public_url}" }
    """

HANDLERS = '''
import base64, json


def show(event, context):
    return {"event": event}


def shaped(event, context):
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        body = base64.b64decode(body).decode()
    return {"statusCode": 201,
            "headers": {"Location": "/items/7", "X-Was-Base64": str(event["isBase64Encoded"])},
            "cookies": ["session=abc; Path=/"],
            "body": json.dumps({"created": 7, "got": body})}


def broken(event, context):
    raise KeyError("nothing here")
'''


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Environment]:
    root = Path("/dev/shm") / f"shakedown-test-{uuid.uuid4().hex[:8]}"
    root.mkdir(mode=0o755)
    directory = tmp_path_factory.mktemp("apigw")
    (directory / "web.py").write_text(HANDLERS)
    (directory / "shakedown.toml").write_text(textwrap.dedent(TOPOLOGY))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SHAKEDOWN_RUNTIME_DIR", str(root))
        environment = Environment.from_file(directory / "shakedown.toml").up()
    try:
        yield environment
    finally:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("SHAKEDOWN_RUNTIME_DIR", str(root))
            environment.down()
            leaked = tagged_processes(root=root)
            for env_id in set(leaked.values()):
                kill_tagged(env_id)
        shutil.rmtree(root, ignore_errors=True)
        assert not leaked, f"processes leaked: {leaked}"


@pytest.fixture
def aws(env: Environment) -> AwsService:
    service = env["aws"]
    assert isinstance(service, AwsService)
    return service


def event_of(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    event: dict[str, Any] = response.json()["event"]
    return event


def test_route_with_path_parameters_query_and_headers(aws: AwsService) -> None:
    url = aws.api_url("public")
    assert url == aws.exports()["api_public_url"] and url != aws.url
    response = httpx.get(f"{url}/items/42?color=red&color=blue&size=",
                         headers={"X-Trace": "t1", "Cookie": "a=1; b=2"}, trust_env=False)
    event = event_of(response)
    assert response.headers["content-type"] == "application/json"
    assert event["version"] == "2.0" and event["routeKey"] == "GET /items/{id}"
    assert event["rawPath"] == "/items/42"
    assert event["rawQueryString"] == "color=red&color=blue&size="
    assert event["queryStringParameters"] == {"color": "red,blue", "size": ""}
    assert event["pathParameters"] == {"id": "42"}
    assert event["headers"]["x-trace"] == "t1" and "cookie" not in event["headers"]
    assert event["cookies"] == ["a=1", "b=2"]
    context = event["requestContext"]
    assert context["http"]["method"] == "GET" and context["http"]["path"] == "/items/42"
    assert context["routeKey"] == "GET /items/{id}" and context["stage"] == "$default"
    assert "body" not in event and event["isBase64Encoded"] is False


def test_greedy_path_and_any_method(aws: AwsService) -> None:
    event = event_of(httpx.delete(f"{aws.api_url('public')}/files/a/b/c.txt", trust_env=False))
    assert event["routeKey"] == "ANY /files/{path+}"
    assert event["pathParameters"] == {"path": "a/b/c.txt"}


def test_text_body_plain_and_binary_body_base64(aws: AwsService) -> None:
    url = aws.api_url("private")
    headers = {"x-api-key": "let-me-in"}
    text = event_of(httpx.post(f"{url}/x", json={"a": 1}, headers=headers, trust_env=False))
    assert text["body"] == '{"a":1}' and text["isBase64Encoded"] is False
    blob = bytes(range(256))
    binary = event_of(httpx.put(f"{url}/y", content=blob, trust_env=False, headers={
        **headers, "Content-Type": "application/octet-stream"}))
    assert binary["isBase64Encoded"] is True
    assert base64.b64decode(binary["body"]) == blob
    assert binary["routeKey"] == "$default"


def test_status_headers_cookies_and_body_from_the_handler(aws: AwsService) -> None:
    response = httpx.post(f"{aws.api_url('public')}/items", content=b"\x00\x01",
                          headers={"Content-Type": "application/octet-stream"},
                          trust_env=False)
    assert response.status_code == 201
    assert response.headers["location"] == "/items/7"
    assert response.headers["x-was-base64"] == "True"
    assert response.headers["set-cookie"] == "session=abc; Path=/"
    assert response.json() == {"created": 7, "got": "\x00\x01"}


def test_api_key_missing_is_401_and_wrong_is_403(aws: AwsService) -> None:
    url = aws.api_url("private")
    missing = httpx.get(f"{url}/anything", trust_env=False)
    assert missing.status_code == 401 and missing.json() == {"message": "Unauthorized"}
    wrong = httpx.get(f"{url}/anything", headers={"x-api-key": "nope"}, trust_env=False)
    assert wrong.status_code == 403 and wrong.json() == {"message": "Forbidden"}
    assert httpx.get(f"{url}/anything", headers={"x-api-key": "let-me-in"},
                     trust_env=False).status_code == 200


def test_no_route_is_404_and_a_failing_function_is_500(aws: AwsService) -> None:
    url = aws.api_url("public")
    assert httpx.get(f"{url}/nothing", trust_env=False).json() == {"message": "Not Found"}
    assert httpx.get(f"{url}/nothing", trust_env=False).status_code == 404
    assert httpx.post(f"{url}/items/1", trust_env=False).status_code == 404  # GET only
    failing = httpx.get(f"{url}/broken", trust_env=False)
    assert failing.status_code == 500
    assert failing.json() == {"message": "Internal Server Error"}
    log = aws.log_paths()["lambda/broken"].read_text()
    assert "[ERROR] KeyError: 'nothing here'" in log


def test_api_url_is_exported_to_other_services(env: Environment, aws: AwsService) -> None:
    pid = env["client"].pids[0]
    environ = dict(item.split("=", 1) for item in
                   Path(f"/proc/{pid}/environ").read_text().split("\0") if "=" in item)
    assert environ["API_URL"] == aws.api_url("public")
    assert json.loads(json.dumps(aws.compute()["apis"]["public"]))["port"] == \
        int(aws.api_url("public").rsplit(":", 1)[1])
