"""HTTP and REST APIs of the ``aws`` kind in front of native Lambda functions, against the real
emulator and real workers: routes and path parameters, query strings, headers, cookies, base64
bodies, the format 2.0 and 1.0 payloads and response mappings, API keys (401/403), Lambda
authorizers (TOKEN for REST, simple responses for HTTP), errors, and the API's URL exported to
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
from shakedown.errors import TopologyError
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

    [services.aws.functions.rest]
    handler = "web.rest"
    [services.aws.functions.policy]
    handler = "web.policy"
    [services.aws.functions.simple]
    handler = "web.simple"

    [services.aws.apis.legacy]
    type = "rest"
    [services.aws.apis.legacy.routes]
    "GET /orders/{id}" = "rest"
    "POST /orders" = "rest"
    "GET /broken" = "broken"
    "GET /plain" = "show"

    [services.aws.apis.guarded]
    type = "rest"
    authorizer = "policy"
    routes = { "ANY /{proxy+}" = "rest" }

    [services.aws.apis.keyed]
    type = "rest"
    api_key = "rest-key"
    routes = { "ANY /{proxy+}" = "rest" }

    [services.aws.apis.checked]
    authorizer = "simple"
    identity_source = "x-token"
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


def rest(event, context):
    return {"statusCode": 200 if event["httpMethod"] == "GET" else 201,
            "headers": {"Content-Type": "application/json"},
            "multiValueHeaders": {"X-Seen": ["a", "b"]},
            "body": json.dumps({"event": event})}


def policy(event, context):
    token = event["authorizationToken"]
    if token == "raise":
        raise Exception("Unauthorized")
    if token == "crash":
        raise ValueError("a bug")
    effect = {"allow": "Allow", "deny": "Deny"}.get(token)
    statements = [{"Action": "execute-api:Invoke", "Effect": effect,
                   "Resource": event["methodArn"].rsplit("/", 2)[0] + "/*"}] if effect else []
    return {"principalId": "user-1", "context": {"tier": "gold"},
            "policyDocument": {"Version": "2012-10-17", "Statement": statements}}


def simple(event, context):
    return {"isAuthorized": event["identitySource"] == ["good"], "context": {"who": "ann"}}
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


def test_rest_api_sends_payload_1_0_and_maps_the_answer(aws: AwsService) -> None:
    url = aws.api_url("legacy")
    response = httpx.get(f"{url}/orders/42?x=1&x=2&y=z", headers={"X-Custom": "v"},
                         trust_env=False)
    assert response.status_code == 200
    assert response.headers.get_list("x-seen") == ["a", "b"]
    event = response.json()["event"]
    assert event["resource"] == "/orders/{id}" and event["path"] == "/orders/42"
    assert event["httpMethod"] == "GET" and event["pathParameters"] == {"id": "42"}
    assert event["queryStringParameters"] == {"x": "2", "y": "z"}
    assert event["multiValueQueryStringParameters"] == {"x": ["1", "2"], "y": ["z"]}
    assert event["headers"]["x-custom"] == "v" and event["multiValueHeaders"]["x-custom"] == ["v"]
    assert event["body"] is None and event["isBase64Encoded"] is False
    assert event["requestContext"]["resourcePath"] == "/orders/{id}"
    assert event["requestContext"]["httpMethod"] == "GET"
    assert "version" not in event and "routeKey" not in event  # not format 2.0
    posted = httpx.post(f"{url}/orders", content=b"\x00\xff",
                        headers={"Content-Type": "application/octet-stream"}, trust_env=False)
    assert posted.status_code == 201
    event = posted.json()["event"]
    assert event["isBase64Encoded"] is True and base64.b64decode(event["body"]) == b"\x00\xff"


def test_rest_api_errors_as_api_gateway_answers(aws: AwsService) -> None:
    url = aws.api_url("legacy")
    missing = httpx.get(f"{url}/nowhere", trust_env=False)
    assert missing.status_code == 403
    assert missing.json() == {"message": "Missing Authentication Token"}
    failing = httpx.get(f"{url}/broken", trust_env=False)
    assert failing.status_code == 502 and failing.json() == {"message": "Internal server error"}
    # an answer without statusCode is a malformed proxy response for a REST API
    malformed = httpx.get(f"{url}/plain", trust_env=False)
    assert malformed.status_code == 502


def test_rest_api_key_missing_or_wrong_is_403(aws: AwsService) -> None:
    url = aws.api_url("keyed")
    for headers in ({}, {"x-api-key": "nope"}):
        answer = httpx.get(f"{url}/a", headers=headers, trust_env=False)
        assert answer.status_code == 403 and answer.json() == {"message": "Forbidden"}
    allowed = httpx.get(f"{url}/a", headers={"x-api-key": "rest-key"}, trust_env=False)
    assert allowed.status_code == 200
    assert allowed.json()["event"]["requestContext"]["identity"]["apiKey"] == "rest-key"


def test_rest_token_authorizer(aws: AwsService) -> None:
    url = aws.api_url("guarded")

    def call(token: str | None) -> httpx.Response:
        headers = {"Authorization": token} if token is not None else {}
        return httpx.get(f"{url}/things/1", headers=headers, trust_env=False)

    assert call(None).status_code == 401 and call(None).json() == {"message": "Unauthorized"}
    assert call("raise").status_code == 401
    denied = call("deny")
    assert denied.status_code == 403
    assert denied.json() == {"Message": "User is not authorized to access this resource with "
                                        "an explicit deny"}
    assert call("nobody").status_code == 403  # no statement allows it
    assert call("crash").status_code == 500
    allowed = call("allow")
    assert allowed.status_code == 200
    assert allowed.json()["event"]["requestContext"]["authorizer"] == \
        {"principalId": "user-1", "tier": "gold"}


def test_http_api_lambda_authorizer_with_simple_responses(aws: AwsService) -> None:
    url = aws.api_url("checked")
    assert httpx.get(f"{url}/x", trust_env=False).status_code == 401
    refused = httpx.get(f"{url}/x", headers={"x-token": "bad"}, trust_env=False)
    assert refused.status_code == 403 and refused.json() == {"message": "Forbidden"}
    event = event_of(httpx.get(f"{url}/x", headers={"x-token": "good"}, trust_env=False))
    assert event["requestContext"]["authorizer"] == {"lambda": {"who": "ann"}}
    assert event["version"] == "2.0"


@pytest.mark.parametrize(("api", "expected"), [
    ('authorizer = "nope"\nroutes = { "$default" = "show" }',
     "apis.a.authorizer = 'nope': no such function"),
    ('type = "rest"\nroutes = { "$default" = "show" }',
     'a REST API has no "$default" route'),
])
def test_bad_api_declarations_are_refused(tmp_path: Path, api: str, expected: str) -> None:
    (tmp_path / "web.py").write_text(HANDLERS)
    (tmp_path / "shakedown.toml").write_text(textwrap.dedent("""
        [services.aws]
        kind = "aws"
        services = ["lambda"]
        [services.aws.functions.show]
        handler = "web.show"
        [services.aws.apis.a]
        """) + api + "\n")
    with pytest.raises(TopologyError) as caught:
        Environment.from_file(tmp_path / "shakedown.toml")
    assert expected in str(caught.value)
