"""Each toxic, measured on real sockets: what it does, on new and on open connections, and
that removing it restores normal flow."""

from __future__ import annotations

import socket
import statistics
import time
from collections.abc import Callable

import pytest
from netproxy_support import (
    Handler,
    TcpServer,
    closed_by_peer,
    median_round_trip,
    recv_all,
    recv_exact,
    round_trip,
    source,
)

from bounds import hang_bound
from shakedown.netproxy import ProxyControl

Connect = Callable[[int], socket.socket]
MakeProxy = Callable[[int], tuple[str, int]]
MakeServer = Callable[[Handler], TcpServer]


@pytest.mark.parametrize("stream", ["downstream", "upstream"])
def test_latency_delays_each_round_trip(
    echo_proxy: tuple[str, int], connect: Connect, control: ProxyControl, stream: str
) -> None:
    name, port = echo_proxy
    control.add_toxic(name, "latency", stream=stream, latency_ms=100)
    sock = connect(port)
    rtt = median_round_trip(sock, 3)
    assert 0.100 <= rtt < 2 * 0.100, rtt  # the delay, once (not on both legs, not twice)


def test_latency_jitter_stays_in_its_range(
    echo_proxy: tuple[str, int], connect: Connect, control: ProxyControl
) -> None:
    name, port = echo_proxy
    control.add_toxic(name, "latency", latency_ms=60, jitter_ms=30)
    sock = connect(port)
    rtts = [round_trip(sock) for _ in range(12)]
    assert all(0.029 <= rtt < 2 * 0.090 for rtt in rtts), rtts  # within 60 +- 30 ms, once
    assert max(rtts) - min(rtts) > 0.005, rtts  # jitter really varies the delay


def test_stacked_latencies_add_up(
    echo_proxy: tuple[str, int], connect: Connect, control: ProxyControl
) -> None:
    name, port = echo_proxy
    control.add_toxic(name, "latency", name="first", latency_ms=60)
    control.add_toxic(name, "latency", name="second", latency_ms=70)
    sock = connect(port)
    assert 0.130 <= median_round_trip(sock, 3) < 2 * 0.130  # the sum, not the larger one


def test_latency_does_not_cap_throughput(
    echo_proxy: tuple[str, int], connect: Connect, control: ProxyControl
) -> None:
    """Latency delays each chunk from when it was read, like a long pipe, not one at a time."""
    name, port = echo_proxy
    control.add_toxic(name, "latency", latency_ms=50)
    sock = connect(port)
    start = time.monotonic()
    for _ in range(20):
        sock.sendall(b"x" * 100)
        time.sleep(0.005)
    recv_exact(sock, 2000)
    # 20 chunks delayed one after the other would take 20 x 50 ms = 1 s at least.
    assert time.monotonic() - start < 1.0


def test_bandwidth_limits_the_rate(
    make_server: MakeServer, make_proxy: MakeProxy, connect: Connect, control: ProxyControl
) -> None:
    size = 600_000
    name, port = make_proxy(make_server(source(size)).port)
    control.add_toxic(name, "bandwidth", rate_kbps=500)  # 500 KB/s: 1.2 s for 600 KB
    start = time.monotonic()
    data = recv_all(connect(port))
    rate = len(data) / (time.monotonic() - start) / 1000
    assert len(data) == size
    # The limit holds (20% margin); slower than it only by a hang (a loaded machine slows the
    # reader too).
    assert 500 / hang_bound(2.0) <= rate <= 600, f"{rate:.0f} KB/s"


def test_reset_peer_at_once_resets_new_connections(
    echo_proxy: tuple[str, int], connect: Connect, control: ProxyControl
) -> None:
    name, port = echo_proxy
    control.add_toxic(name, "reset_peer", timeout_ms=0)
    with pytest.raises(ConnectionResetError):
        # On loopback the RST can even beat connect() back to us.
        sock = connect(port)
        sock.recv(10)  # the RST arrives without any data sent


def test_reset_peer_after_timeout_on_open_connection(
    echo_proxy: tuple[str, int], connect: Connect, control: ProxyControl
) -> None:
    name, port = echo_proxy
    sock = connect(port)
    round_trip(sock)
    control.add_toxic(name, "reset_peer", timeout_ms=200)
    start = time.monotonic()
    round_trip(sock)  # still flowing before the timeout
    sock.settimeout(5)
    with pytest.raises(ConnectionResetError):
        sock.recv(10)
    assert time.monotonic() - start >= 0.18


def test_timeout_zero_holds_data_until_removed(
    echo_proxy: tuple[str, int], connect: Connect, control: ProxyControl
) -> None:
    name, port = echo_proxy
    sock = connect(port)
    round_trip(sock)
    toxic = control.add_toxic(name, "timeout", stream="upstream", timeout_ms=0)
    sock.sendall(b"held")
    sock.settimeout(0.3)
    with pytest.raises(TimeoutError):
        sock.recv(10)
    control.remove_toxic(name, toxic)
    assert recv_exact(sock, 4) == b"held"  # held bytes flow on once the toxic is gone
    round_trip(sock)  # and new ones too (recv_exact's timeout is the hang bound)


def test_timeout_closes_the_connection_after_timeout_ms(
    echo_proxy: tuple[str, int], connect: Connect, control: ProxyControl
) -> None:
    name, port = echo_proxy
    control.add_toxic(name, "timeout", timeout_ms=200)
    sock = connect(port)
    start = time.monotonic()
    sock.sendall(b"lost")
    sock.settimeout(5)
    assert sock.recv(10) == b""  # no data, then the proxy closes (the 5 s: a hang bound)
    assert time.monotonic() - start >= 0.18


def test_slicer_delivers_every_byte_in_several_pieces(
    make_server: MakeServer, make_proxy: MakeProxy, connect: Connect, control: ProxyControl
) -> None:
    size = 2000
    name, port = make_proxy(make_server(source(size)).port)
    control.add_toxic(name, "slicer", average_size=200, size_variation=50, delay_us=10_000)
    sock = connect(port)
    sock.settimeout(5)
    pieces = []
    while data := sock.recv(65536):
        pieces.append(data)
    assert b"".join(pieces) == source_bytes(size)
    assert len(pieces) >= 5


def source_bytes(size: int) -> bytes:
    pattern = b"0123456789abcdef"
    return (pattern * (size // len(pattern) + 1))[:size]


def test_limit_data_closes_after_that_many_bytes(
    make_server: MakeServer, make_proxy: MakeProxy, connect: Connect, control: ProxyControl
) -> None:
    name, port = make_proxy(make_server(source(50_000)).port)
    control.add_toxic(name, "limit_data", bytes=1234)
    assert recv_all(connect(port)) == source_bytes(1234)


def test_limit_data_on_open_connection_counts_from_when_it_was_added(
    echo_proxy: tuple[str, int], connect: Connect, control: ProxyControl
) -> None:
    name, port = echo_proxy
    sock = connect(port)
    round_trip(sock, b"before")
    control.add_toxic(name, "limit_data", bytes=5)
    sock.sendall(b"0123456789")
    assert recv_all(sock) == b"01234"  # the 6 bytes echoed before the toxic do not count


def test_down_refuses_new_drops_open_and_removal_reopens(
    echo_proxy: tuple[str, int], connect: Connect, control: ProxyControl
) -> None:
    name, port = echo_proxy
    sock = connect(port)
    round_trip(sock)
    toxic = control.add_toxic(name, "down")
    assert toxic == "down"
    assert closed_by_peer(sock)  # dropped
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    assert control.proxies()[name]["enabled"] is False
    control.remove_toxic(name, toxic)
    assert control.proxies()[name]["enabled"] is True
    round_trip(connect(port))  # accepted and echoed again


def test_toxic_added_to_open_connection_acts_at_once_and_removal_restores(
    echo_proxy: tuple[str, int], connect: Connect, control: ProxyControl
) -> None:
    name, port = echo_proxy
    sock = connect(port)
    round_trip(sock)
    toxic = control.add_toxic(name, "latency", latency_ms=150)
    assert median_round_trip(sock) >= 0.150
    control.remove_toxic(name, toxic)
    # Removed: a round trip shorter than the 150 ms the toxic added (best of 3) is not delayed.
    assert min(round_trip(sock) for _ in range(3)) < 0.150
    payload = bytes(range(256)) * 400  # and the stream is still exact afterwards
    sock.sendall(payload)
    assert recv_exact(sock, len(payload)) == payload


def test_toxicity_zero_never_applies_and_one_always(
    echo_proxy: tuple[str, int], connect: Connect, control: ProxyControl
) -> None:
    name, port = echo_proxy
    control.add_toxic(name, "latency", name="never", toxicity=0.0, latency_ms=300)
    # No connection gets the 300 ms: each round trip is shorter than it.
    assert max(median_round_trip(connect(port), 1) for _ in range(5)) < 0.300
    control.remove_toxic(name, "never")
    control.add_toxic(name, "latency", name="always", toxicity=1.0, latency_ms=80)
    assert min(median_round_trip(connect(port), 1) for _ in range(5)) >= 0.080


def test_toxicity_is_decided_per_connection(
    echo_proxy: tuple[str, int], connect: Connect, control: ProxyControl
) -> None:
    name, port = echo_proxy
    # 200 ms: an undelayed connection is told apart from a delayed one even on a loaded
    # machine (a round trip of 200 ms without the toxic would be a hang).
    control.add_toxic(name, "latency", toxicity=0.5, latency_ms=200)
    rtts = [round_trip(connect(port)) for _ in range(24)]
    slow = sum(rtt >= 0.200 for rtt in rtts)
    assert 0 < slow < 24, rtts  # P(all 24 the same) = 2 * 0.5**24
    # A given connection keeps its draw.
    sock = connect(port)
    first = round_trip(sock) >= 0.200
    assert all((rtt >= 0.200) == first for rtt in [round_trip(sock) for _ in range(3)])


def test_toxics_on_one_direction_leave_the_other_alone(
    echo_proxy: tuple[str, int], connect: Connect, control: ProxyControl
) -> None:
    name, port = echo_proxy
    control.add_toxic(name, "latency", stream="upstream", latency_ms=50)
    control.add_toxic(name, "latency", stream="downstream", latency_ms=30)
    rtts = [round_trip(connect(port)) for _ in range(3)]
    assert 0.080 <= statistics.median(rtts) < 2 * 0.080  # 50 + 30 ms, each once
