"""Toxics that act on some sources only: a proxy created with ``identify`` tells which
process opened each connection (its ``SHAKEDOWN_SOURCE``), and a toxic with ``sources`` acts
on those connections alone, also on connections already open. Clients are real processes,
since the label is read from the connecting process's environment."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from netproxy_support import TcpServer

from shakedown.netproxy import SOURCE_VARIABLE, ProxyControl

# Connects once, then answers each line on stdin with the round trip of one echo, in ms.
CLIENT = """
import socket, sys, time
sock = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
print("connected", flush=True)
for _ in sys.stdin:
    began = time.perf_counter()
    sock.sendall(b"ping")
    got = b""
    while len(got) < 4:
        got += sock.recv(4 - len(got))
    print(round((time.perf_counter() - began) * 1000, 1), flush=True)
"""


class Client:
    """A client process with a source label, connected through the proxy."""

    def __init__(self, port: int, label: str | None) -> None:
        env = {k: v for k, v in os.environ.items() if k != SOURCE_VARIABLE}
        if label is not None:
            env[SOURCE_VARIABLE] = label
        self.process = subprocess.Popen([sys.executable, "-c", CLIENT, str(port)], env=env,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        text=True)
        assert self.readline() == "connected"

    def readline(self) -> str:
        assert self.process.stdout is not None
        return self.process.stdout.readline().strip()

    def round_trip_ms(self) -> float:
        assert self.process.stdin is not None
        self.process.stdin.write("go\n")
        self.process.stdin.flush()
        return float(self.readline())

    def close(self) -> None:
        self.process.kill()
        self.process.wait(5)


def undelayed(client: Client, toxic_ms: float = 200) -> bool:
    """The connection is not delayed by the toxic: a round trip (best of 2) shorter than it."""
    return min(client.round_trip_ms() for _ in range(2)) < toxic_ms


@pytest.fixture
def clients() -> Iterator[list[Client]]:
    made: list[Client] = []
    yield made
    for client in made:
        client.close()


def test_a_toxic_with_sources_acts_on_those_connections_only(
    echo_server: TcpServer, control: ProxyControl, clients: list[Client],
) -> None:
    info = control.create("shared", 0, "127.0.0.1", echo_server.port, identify=True)
    assert info["identify"] is True
    port = int(info["listen"].rsplit(":", 1)[1])
    db1, db2, unlabelled = (Client(port, "db1"), Client(port, "db2"), Client(port, None))
    clients += [db1, db2, unlabelled]
    for client in clients:  # the connections are open (and echo) before the toxic
        client.round_trip_ms()

    control.add_toxic("shared", "latency", "downstream", name="slow", sources=["db1"],
                      latency_ms=200)
    assert control.toxics("shared")[0]["sources"] == ["db1"]
    assert db1.round_trip_ms() >= 200
    # Not delayed: shorter than the toxic's 200 ms (best of 2).
    assert undelayed(db2)
    assert undelayed(unlabelled), "a connection of unknown source is not db1"

    late = Client(port, "db1")  # a new connection of the same source
    clients.append(late)
    assert late.round_trip_ms() >= 200

    control.remove_toxic("shared", "slow")
    assert undelayed(db1) and undelayed(late)


def test_a_toxic_without_sources_acts_on_every_connection(
    echo_server: TcpServer, control: ProxyControl, clients: list[Client],
) -> None:
    info = control.create("shared", 0, "127.0.0.1", echo_server.port, identify=True)
    port = int(info["listen"].rsplit(":", 1)[1])
    clients += [Client(port, "db1"), Client(port, None)]
    control.add_toxic("shared", "latency", "downstream", latency_ms=150)
    for client in clients:
        assert client.round_trip_ms() >= 150


def test_sources_on_a_proxy_that_does_not_identify_match_nothing(
    echo_server: TcpServer, control: ProxyControl, clients: list[Client],
) -> None:
    """Without identify no connection has a source: a toxic limited to sources acts on none
    (the environment creates shared links with identify, so this is the unidentified case)."""
    info = control.create("plain", 0, "127.0.0.1", echo_server.port)
    assert info["identify"] is False
    port = int(info["listen"].rsplit(":", 1)[1])
    clients.append(Client(port, "db1"))
    control.add_toxic("plain", "latency", "downstream", sources=["db1"], latency_ms=200)
    assert undelayed(clients[0])
