"""The AWS emulator's own HTTP front (``awsemu/_http.py``), against the real emulator: what moto
and the SDKs rely on from an HTTP/1.1 server (keep-alive, pipelining, ``Expect:
100-continue``, chunked bodies, HEAD, ``Connection: close``, S3 metadata names with ``_``
kept as sent) and a malformed request answered 400."""

from __future__ import annotations

import shutil
import socket
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from shakedown.environment import Environment
from shakedown.process import kill_tagged, tagged_processes
from shakedown.services import AwsService

TOPOLOGY = """
    [services.aws]
    kind = "aws"
    services = ["s3"]
    [services.aws.resources]
    buckets = ["front"]
    """
AUTH = ("AWS4-HMAC-SHA256 Credential=shakedown/20240101/us-east-1/s3/aws4_request, "
        "SignedHeaders=host, Signature=0")


@pytest.fixture(scope="module")
def aws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AwsService]:
    root = Path("/dev/shm") / f"shakedown-test-{uuid.uuid4().hex[:8]}"
    root.mkdir(mode=0o755)
    directory = tmp_path_factory.mktemp("aws-http")
    (directory / "shakedown.toml").write_text(textwrap.dedent(TOPOLOGY))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SHAKEDOWN_RUNTIME_DIR", str(root))
        env = Environment.from_file(directory / "shakedown.toml").up()
    try:
        service = env["aws"]
        assert isinstance(service, AwsService)
        yield service
    finally:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("SHAKEDOWN_RUNTIME_DIR", str(root))
            env.down()
            leaked = tagged_processes(root=root)
            for env_id in set(leaked.values()):
                kill_tagged(env_id)
        shutil.rmtree(root, ignore_errors=True)
        assert not leaked, f"processes leaked: {leaked}"


def connect(aws: AwsService) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", aws.port), timeout=30)
    return sock


def read_response(sock: socket.socket, buffer: bytearray, head_request: bool = False
                  ) -> tuple[bytes, dict[str, str], bytes]:
    """One response off the connection (Content-Length framing, none for HEAD); what follows
    stays in ``buffer``."""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"connection closed mid-response: {bytes(buffer)!r}")
        buffer += chunk
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    status, *lines = head.split(b"\r\n")
    headers = {k.decode().lower(): v.decode().strip()
               for k, v in (line.split(b":", 1) for line in lines)}
    length = 0 if head_request or status.split()[1] in (b"100", b"204", b"304") else \
        int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError("connection closed mid-body")
        rest += chunk
    buffer[:] = rest[length:]
    return status, headers, rest[:length]


def request(method: str, path: str, body: bytes = b"", **headers: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"Authorization: {AUTH}"]
    lines += [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
    if body and "Transfer-Encoding" not in {k.replace("_", "-") for k in headers}:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def test_pipelined_requests_on_one_connection_are_answered_in_order(aws: AwsService) -> None:
    with connect(aws) as sock:
        sock.sendall(request("PUT", "/front/one", b"first")
                     + request("PUT", "/front/two", b"second")
                     + request("GET", "/front/one") + request("GET", "/front/two"))
        buffer = bytearray()
        answers = [read_response(sock, buffer) for _ in range(4)]
    assert [a[0].split()[1] for a in answers] == [b"200"] * 4
    assert [a[2] for a in answers[2:]] == [b"first", b"second"]


def test_expect_100_continue_and_a_chunked_body(aws: AwsService) -> None:
    with connect(aws) as sock:
        sock.sendall(request("PUT", "/front/expected", Expect="100-continue",
                             Content_Length="5"))
        buffer = bytearray()
        status, _, _ = read_response(sock, buffer)
        assert status == b"HTTP/1.1 100 Continue"
        sock.sendall(b"hello")
        assert read_response(sock, buffer)[0].split()[1] == b"200"
        sock.sendall(request("PUT", "/front/chunked", b"3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n",
                             Transfer_Encoding="chunked"))
        assert read_response(sock, buffer)[0].split()[1] == b"200"
        sock.sendall(request("GET", "/front/expected") + request("GET", "/front/chunked"))
        assert read_response(sock, buffer)[2] == b"hello"
        assert read_response(sock, buffer)[2] == b"abcdefg"


def test_head_has_the_length_and_no_body_and_connection_close_closes(aws: AwsService) -> None:
    with connect(aws) as sock:
        sock.sendall(request("PUT", "/front/sized", b"0123456789"))
        buffer = bytearray()
        read_response(sock, buffer)
        sock.sendall(request("HEAD", "/front/sized") + request("GET", "/front/sized",
                                                                 Connection="close"))
        status, headers, body = read_response(sock, buffer, head_request=True)
        assert status.split()[1] == b"200" and headers["content-length"] == "10"
        # HEAD: no body, so the next bytes are the GET's answer (a body would garble it)
        status, headers, body = read_response(sock, buffer)
        assert body == b"0123456789" and headers["connection"] == "close"
        assert sock.recv(1) == b""  # closed by the server


def test_s3_metadata_names_keep_their_underscores(aws: AwsService) -> None:
    s3 = aws.client("s3")
    s3.put_object(Bucket="front", Key="meta", Body=b"x",
                  Metadata={"my_key": "under", "other-key": "dash"})
    assert s3.head_object(Bucket="front", Key="meta")["Metadata"] == \
        {"my_key": "under", "other-key": "dash"}


def test_a_malformed_request_is_400_and_the_server_goes_on(aws: AwsService) -> None:
    with connect(aws) as sock:
        sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        status, headers, _ = read_response(sock, bytearray())
        assert status.split()[1] == b"400" and headers["connection"] == "close"
    s3 = aws.client("s3")
    s3.put_object(Bucket="front", Key="after", Body=b"still here")
    assert s3.get_object(Bucket="front", Key="after")["Body"].read() == b"still here"
