"""Network faults in the kernel (nftables on cgroup2 groups), between services with no link
declared, against real servers: a partition between two PostgreSQL services stalls the open
replication connection (the replica falls behind) and healing lets it catch up; a one-way cut
seen from both sides; loss measured as TCP retransmissions on a real connection; a partition
made before a connection opens stops it opening; and no table left after heal, down, or a
SIGKILL of the owner followed by reap."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from bounds import hang_bound
from shakedown import Environment, eventually
from shakedown.errors import FaultError
from shakedown.faults._kernel import offered
from shakedown.process import nft

pytestmark = pytest.mark.skipif(not offered()[0], reason=f"kernel faults: {offered()[1]}")

# An echo server; with "client PORT" it connects to PORT and echoes forever, reporting on
# its own port (GET-less: a line "ok N" per answered echo, "timeout" per missed one).
ECHO = r'''
import socket, sys, threading, time

def serve(port):
    with socket.create_server(("127.0.0.1", port)) as server:
        while True:
            conn, _ = server.accept()
            threading.Thread(target=echo, args=(conn,), daemon=True).start()

def echo(conn):
    with conn:
        while data := conn.recv(65536):
            conn.sendall(data)

serve(int(sys.argv[1]))
'''

TOPOLOGY = """
[services.primary]
kind = "postgres"
databases = ["app"]

[services.replica]
kind = "postgres"
replica_of = "primary"

[services.left]
kind = "process"
command = ["{python}", "echo.py", "{port}"]

[services.right]
kind = "process"
command = ["{python}", "echo.py", "{port}"]
"""


def write_project(directory: Path) -> Path:
    (directory / "shakedown.toml").write_text(TOPOLOGY.replace("{python}", sys.executable))
    (directory / "echo.py").write_text(ECHO)
    return directory / "shakedown.toml"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Environment]:
    with Environment.from_file(write_project(tmp_path_factory.mktemp("kernel"))) as environment:
        yield environment


@pytest.fixture(autouse=True)
def healed(env: Environment) -> Iterator[None]:
    yield
    env.faults.heal()
    assert nft.tables(f"{nft.PREFIX}{env.env_id}") == [], "heal left kernel rules"


def run_in(env: Environment, service: str, code: str) -> subprocess.CompletedProcess[str]:
    """Run Python ``code`` as a process of ``service`` (in its cgroup2 group), as the
    service's own client would."""
    group = env.faults._kernel._group(service)[0]  # type: ignore[union-attr]
    procs = Path("/sys/fs/cgroup") / group / "cgroup.procs"
    wrapper = f"import os; open({str(procs)!r}, 'w').write(str(os.getpid()))\n" + code
    return subprocess.run([sys.executable, "-c", wrapper], capture_output=True, text=True,
                          timeout=hang_bound(60), check=False)


def test_a_partition_stalls_replication_and_heal_catches_up(env: Environment) -> None:
    url = env["primary"].url
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS marks (n int)")
        eventually(lambda: replica_count(env) is not None, timeout=hang_bound(20))
        cut = env.faults.partition(["primary"], ["replica"])
        assert cut.params["kernel"] == ["primary->replica", "replica->primary"]
        assert cut.params["links"] == []
        conn.execute("INSERT INTO marks SELECT generate_series(1, 100)")
        time.sleep(1.5)  # the replica would replay this in milliseconds if it could
        assert replica_count(env) == 0, "the replica received WAL through the partition"
        cut.heal()
        assert eventually(lambda: replica_count(env) == 100, timeout=hang_bound(30))


def replica_count(env: Environment) -> int | None:
    with psycopg.connect(env["replica"].url, autocommit=True, connect_timeout=5) as conn:
        row = conn.execute("SELECT count(*) FROM marks").fetchone()
    return None if row is None else int(row[0])


CONNECT = """
import socket, sys
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=1.5).close()
    print("connected")
except OSError as exc:
    print(type(exc).__name__)
"""


ECHO_ONCE = """
import socket
conn = socket.create_connection(("127.0.0.1", {port}), timeout=1.5)
print("connected", end=" ")
conn.sendall(b"ping")
try:
    print(conn.recv(4).decode())
except TimeoutError:
    print("TimeoutError")
"""


def test_a_one_way_cut_is_seen_from_both_sides(env: Environment) -> None:
    left, right = env["left"].port, env["right"].port
    with env.faults.cut(["left"], ["right"]):
        # left as the client: its SYN never reaches right.
        assert run_in(env, "left", CONNECT.format(port=right)).stdout.strip() == "TimeoutError"
        # right as the client: the handshake completes (the SYN-ACK is the kernel's answer
        # for left's listener, not a packet of a socket in left's group) and right's ping
        # arrives, but left's echo, sent by left's socket, is dropped.
        assert run_in(env, "right", ECHO_ONCE.format(port=left)).stdout.split() == \
            ["connected", "TimeoutError"]
    assert run_in(env, "right", ECHO_ONCE.format(port=left)).stdout.split() == \
        ["connected", "ping"]
    assert run_in(env, "left", CONNECT.format(port=right)).stdout.strip() == "connected"


def test_a_partition_made_before_a_connection_stops_it(env: Environment) -> None:
    with env.faults.partition(["left"], ["right"]):
        out = run_in(env, "left", CONNECT.format(port=env["right"].port)).stdout.strip()
        assert out == "TimeoutError"
    assert run_in(env, "left", CONNECT.format(port=env["right"].port)).stdout == "connected\n"


LOSSY = """
import socket, struct, time
conn = socket.create_connection(("127.0.0.1", {port}))
conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
for _ in range({n}):
    conn.sendall(b"x" * 100)
    got = b""
    while len(got) < 100:
        got += conn.recv(100)
info = conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
# struct tcp_info: tcpi_total_retrans is the u32 after 24 bytes of u8 and 21 u32 (offset 100)
print(struct.unpack_from("I", info, 100)[0])
"""


def test_loss_shows_as_retransmissions_near_the_set_rate(env: Environment) -> None:
    n = 400
    with env.faults.loss(["left"], ["right"], 20, direction="a_to_b") as fault:
        assert fault.params["percent"] == 20
        done = run_in(env, "left", LOSSY.format(port=env["right"].port, n=n))
    assert done.returncode == 0, done.stderr
    retransmitted = int(done.stdout.strip())
    # Each echo sends one data segment left -> right; a fifth of them dropped comes back as
    # one retransmission each (a retransmission dropped again counts once more).
    assert 0.8 * 0.2 * n <= retransmitted <= 1.2 * 0.25 * n, retransmitted


def test_bad_kernel_faults_are_refused(env: Environment) -> None:
    with pytest.raises(FaultError, match="no service named"):
        env.faults.cut(["left"], ["nowhere"])
    with pytest.raises(FaultError, match="out of range"):
        env.faults.loss(["left"], ["right"], 0)
    with pytest.raises(FaultError, match="no pair of distinct services"):
        env.faults.cut(["left"], ["left"])
    assert env.faults.active() == []


OWNER = """
import sys, time
from shakedown import Environment
env = Environment.from_file(sys.argv[1])
env.up()
env.faults.partition(["left"], ["right"])
print(env.env_id, flush=True)
time.sleep(600)
"""


def test_no_table_left_after_down_or_owner_kill_and_reap(tmp_path: Path) -> None:
    topology = write_project(tmp_path)
    with Environment.from_file(topology, name="downed") as env:
        env.faults.cut(["left"], ["right"])
        assert nft.tables(f"{nft.PREFIX}{env.env_id}")
        env_id = env.env_id
    assert nft.tables(f"{nft.PREFIX}{env_id}") == []
    owner = subprocess.Popen([sys.executable, "-c", textwrap.dedent(OWNER), str(topology)],
                             stdout=subprocess.PIPE, text=True)
    assert owner.stdout is not None
    killed_id = owner.stdout.readline().strip()
    assert nft.tables(f"{nft.PREFIX}{killed_id}"), "the owner's partition is in the kernel"
    os.kill(owner.pid, signal.SIGKILL)
    owner.wait()
    subprocess.run([sys.executable, "-m", "shakedown", "reap"], cwd=tmp_path, check=True,
                   capture_output=True, timeout=hang_bound(60))
    assert eventually(lambda: nft.tables(f"{nft.PREFIX}{killed_id}") == [],
                      timeout=hang_bound(30))


def test_healthy_traffic_is_untouched_by_other_pairs_faults(env: Environment) -> None:
    """A cut between left and right leaves primary <-> replica and the test's own client."""
    with env.faults.cut(["left"], ["right"]), \
            psycopg.connect(env["primary"].url, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS healthy (n int)")
        conn.execute("INSERT INTO healthy VALUES (1)")
        assert eventually(lambda: _healthy(env) == 1, timeout=hang_bound(20))
    with socket.create_connection(("127.0.0.1", env["right"].port), timeout=2) as sock:
        sock.sendall(b"hi")
        assert sock.recv(2) == b"hi"


def _healthy(env: Environment) -> int:
    with psycopg.connect(env["replica"].url, autocommit=True, connect_timeout=5) as conn:
        row = conn.execute("SELECT count(*) FROM healthy").fetchone()
    return int(row[0]) if row else 0
