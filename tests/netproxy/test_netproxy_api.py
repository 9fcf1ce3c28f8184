"""The control API and its client: bad input is a FaultError that names the toxic and the field
and changes nothing; reset; raw HTTP answers; toxic validation as a pure function."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from netproxy_support import TcpServer, free_port, round_trip

from shakedown.errors import FaultError
from shakedown.netproxy import ProxyControl
from shakedown.netproxy._toxics import parse_toxic

Connect = Callable[[int], socket.socket]
MakeProxy = Callable[[int], tuple[str, int]]

BAD_TOXICS: list[tuple[dict[str, Any], str]] = [
    ({"type": "latncy", "attributes": {"latency_ms": 1}}, "'latncy' on proxy 'p"),
    ({"type": "latency", "attributes": {"latency": 1}}, "unknown attribute 'latency'"),
    ({"type": "latency", "attributes": {"latency_ms": "100"}}, "'latency_ms' must be a number"),
    ({"type": "latency", "attributes": {"latency_ms": True}}, "'latency_ms' must be a number"),
    ({"type": "latency", "attributes": {"latency_ms": -5}}, "'latency_ms' must be >= 0"),
    ({"type": "latency", "attributes": {}}, "'latency_ms' is required"),
    ({"type": "latency", "toxicity": 1.5, "attributes": {"latency_ms": 1}}, "toxicity must be"),
    ({"type": "latency", "toxicity": -0.1, "attributes": {"latency_ms": 1}}, "toxicity must be"),
    ({"type": "latency", "stream": "sideways", "attributes": {"latency_ms": 1}}, "stream must"),
    ({"type": "bandwidth", "attributes": {"rate_kbps": 0}}, "'rate_kbps' must be > 0"),
    ({"type": "limit_data", "attributes": {"bytes": 1.5}}, "'bytes' must be an integer"),
    ({"type": "slicer", "attributes": {"average_size": 10, "size_variation": 10}},
     "'size_variation' must be smaller"),
    ({"type": "down", "attributes": {"x": 1}}, "unknown attribute 'x'"),
    ({"type": "down", "toxicity": 0.5}, "toxicity of 'down' must be 1"),
    ({"type": "latency", "colour": "red", "attributes": {"latency_ms": 1}}, "unknown field"),
    ({"type": "latency", "sources": "db1", "attributes": {"latency_ms": 1}},
     "sources must be a list"),
    ({"type": "latency", "sources": [""], "attributes": {"latency_ms": 1}},
     "sources must be a list"),
    ({"type": "down", "sources": ["db1"]}, "takes no sources"),
]


@pytest.mark.parametrize(("body", "message"), BAD_TOXICS)
def test_bad_toxic_is_a_fault_error_and_changes_nothing(
    echo_proxy: tuple[str, int],
    connect: Connect,
    control: ProxyControl,
    body: dict[str, Any],
    message: str,
) -> None:
    name, port = echo_proxy
    control.add_toxic(name, "latency", name="kept", latency_ms=1)
    before = control.proxies()
    with pytest.raises(FaultError) as caught:
        _add_raw(control, name, body)
    assert message in caught.value.what
    assert caught.value.what.startswith("toxic '")  # names the toxic
    assert f"on proxy {name!r}" in caught.value.what
    assert caught.value.fix  # every error says what to do
    assert control.proxies() == before
    round_trip(connect(port))  # traffic still flows


def _add_raw(control: ProxyControl, proxy: str, body: dict[str, Any]) -> None:
    """Send the body as given (the client's add_toxic always sends well-formed fields)."""
    attributes = body.get("attributes", {})
    extra = {k: v for k, v in body.items() if k not in ("type", "attributes")}
    if set(extra) <= {"stream", "toxicity"}:
        control.add_toxic(proxy, body["type"], **extra, **attributes)
    else:
        control._call("POST", f"/proxies/{proxy}/toxics", body)


def test_error_names_the_toxic_and_the_field(
    echo_proxy: tuple[str, int], control: ProxyControl
) -> None:
    with pytest.raises(FaultError) as caught:
        control.add_toxic(echo_proxy[0], "latency", name="slow", latency_ms=-1)
    assert caught.value.what == (
        f"toxic 'slow' on proxy {echo_proxy[0]!r}: attribute 'latency_ms' must be >= 0, got -1"
    )
    assert "latency_ms (number >= 0, required)" in caught.value.checked[0]


def test_duplicate_toxic_name_is_refused(
    echo_proxy: tuple[str, int], control: ProxyControl
) -> None:
    name = echo_proxy[0]
    assert control.add_toxic(name, "latency", latency_ms=10) == "latency_downstream"
    with pytest.raises(FaultError, match="already has a toxic named 'latency_downstream'"):
        control.add_toxic(name, "latency", latency_ms=20)
    assert [t["attributes"]["latency_ms"] for t in control.toxics(name)] == [10]


def test_unknown_proxy_and_unknown_toxic(
    echo_proxy: tuple[str, int], control: ProxyControl
) -> None:
    with pytest.raises(FaultError, match="no proxy named 'nope'"):
        control.add_toxic("nope", "latency", latency_ms=1)
    with pytest.raises(FaultError, match="no proxy named 'nope'"):
        control.toxics("nope")
    with pytest.raises(FaultError, match="no proxy named 'nope'"):
        control.delete("nope")
    with pytest.raises(FaultError, match="has no toxic named 'ghost'"):
        control.remove_toxic(echo_proxy[0], "ghost")


def test_proxy_creation_errors(echo_proxy: tuple[str, int], control: ProxyControl) -> None:
    name, port = echo_proxy
    before = control.proxies()
    with pytest.raises(FaultError, match="exists already"):
        control.create(name, 0, "127.0.0.1", 1)
    with pytest.raises(FaultError, match=r"cannot listen on 127\.0\.0\.1:"):
        control.create("other", port, "127.0.0.1", 1)  # port taken by the first proxy
    with pytest.raises(FaultError, match="does not resolve"):
        control.create("other", 0, "no-such-host.invalid", 1)
    with pytest.raises(FaultError, match="not valid"):
        control.create("bad name!", 0, "127.0.0.1", 1)
    assert control.proxies() == before


def test_create_list_delete(echo_proxy: tuple[str, int], control: ProxyControl) -> None:
    name, port = echo_proxy
    info = control.proxies()[name]
    assert info["listen"] == f"127.0.0.1:{port}"
    assert info["enabled"] is True
    assert control.proxy(name) == info
    control.delete(name)
    assert name not in control.proxies()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


def test_reset_removes_every_toxic_and_reenables(
    echo_server: TcpServer,
    echo_proxy: tuple[str, int],
    make_proxy: MakeProxy,
    connect: Connect,
    control: ProxyControl,
) -> None:
    first, first_port = echo_proxy
    second, second_port = make_proxy(echo_server.port)
    sock = connect(first_port)
    control.add_toxic(first, "latency", latency_ms=200)
    control.add_toxic(first, "timeout", stream="upstream", timeout_ms=0)
    control.add_toxic(second, "down")
    control.reset()
    assert control.toxics(first) == control.toxics(second) == []
    assert control.proxies()[second]["enabled"] is True
    # The open connection flows again (the timeout toxic held it) without the 200 ms latency.
    assert min(round_trip(sock) for _ in range(3)) < 0.200
    round_trip(connect(second_port))  # the proxy that was down accepts again


def test_toxic_listing_shows_what_was_set(
    echo_proxy: tuple[str, int], control: ProxyControl
) -> None:
    name = echo_proxy[0]
    control.add_toxic(name, "slicer", stream="upstream", toxicity=0.5, average_size=10)
    assert control.toxics(name) == [{
        "name": "slicer_upstream",
        "type": "slicer",
        "stream": "upstream",
        "toxicity": 0.5,
        "attributes": {"average_size": 10, "size_variation": 0, "delay_us": 0.0},
        "sources": [],
    }]


def test_raw_http_answers(proxy_server: str) -> None:
    with httpx.Client(base_url=proxy_server) as http:
        assert http.get("/version").status_code == 200
        missing = http.get("/nowhere")
        assert missing.status_code == 404
        assert set(missing.json()) == {"error", "checked", "fix"}
        broken = http.post("/proxies", content=b"{not json",
                           headers={"Content-Type": "application/json"})
        assert broken.status_code == 400
        assert "not JSON" in broken.json()["error"]


def test_wait_ready_fails_clearly_when_nothing_answers() -> None:
    with ProxyControl(f"http://127.0.0.1:{free_port()}") as control, pytest.raises(
        FaultError, match=r"not ready after 0\.2s"
    ):
        control.wait_ready(0.2)


def test_unreachable_server_is_a_fault_error() -> None:
    with ProxyControl(f"http://127.0.0.1:{free_port()}") as control, pytest.raises(
        FaultError, match="did not answer GET /proxies"
    ):
        control.proxies()


def test_parse_toxic_defaults() -> None:
    spec = parse_toxic("p", {"type": "latency", "attributes": {"latency_ms": 5}}, [])
    assert (spec.name, spec.stream, spec.toxicity) == ("latency_downstream", "downstream", 1.0)
    assert dict(spec.attributes) == {"latency_ms": 5.0, "jitter_ms": 0.0}
    down = parse_toxic("p", {"type": "down", "stream": "upstream"}, [])
    assert (down.name, down.stream) == ("down", "both")


def test_parse_toxic_rejects_a_body_that_is_not_an_object() -> None:
    with pytest.raises(FaultError, match="must be a JSON object"):
        parse_toxic("p", ["latency"], [])
