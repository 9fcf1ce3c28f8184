"""Benchmark of the netproxy idle (no-toxic) path against a direct connection, in one run.

    python bench/proxy_bulk.py [--repeat N] [--bulk-mib M] [--round-trips K]

Measures, each several times (min / median / max):
  - control API answering after spawn (ms)
  - bulk transfer MB/s, direct vs through a proxy without toxics
  - request/response: median round trip of small messages on one persistent connection, and
    round trips per second, direct vs proxied (a Python echo server; and redis-server PING
    with redis-benchmark when installed)
then prints the ratios against the targets. Servers run in their own processes so the
measuring client shares its GIL with nobody; every process started here is stopped at exit.
Sections are functions returning rows, so more workloads (e.g. pgbench) slot in.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

TARGETS = {
    "startup_ms": 150.0,  # control API answering after spawn, at most
    "bulk_mb_s": 500.0,  # bulk transfer through the proxy, at least
    "added_latency_us": 150.0,  # added median round trip, at most
    "throughput_ratio": 0.85,  # request/response round trips per second vs direct, at least
}


# -- servers (run in child processes: `proxy_bulk.py --serve KIND PORT`) ------------------------


def serve(kind: str, port: int) -> None:
    listener = socket.create_server(("127.0.0.1", port), backlog=64)
    handler = _echo if kind == "echo" else _source
    while True:
        conn, _ = listener.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=handler, args=(conn,), daemon=True).start()


def _echo(conn: socket.socket) -> None:
    with contextlib.suppress(OSError), conn:
        while data := conn.recv(65536):
            conn.sendall(data)


def _source(conn: socket.socket) -> None:
    """Read a decimal byte count, send that many bytes, close."""
    block = memoryview(b"\x5a" * (1 << 20))
    with contextlib.suppress(OSError), conn:
        remaining = int(conn.recv(64))
        while remaining > 0:
            remaining -= conn.send(block[: min(remaining, len(block))])


# -- process handling ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def child(command: list[str], ready_port: int) -> Iterator[subprocess.Popen[bytes]]:
    """Run command in its own process group until the block ends; wait for ready_port."""
    process = subprocess.Popen(
        command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", ready_port)):
                break
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"{command[0]} did not start")
            time.sleep(0.01)
        yield process
    finally:
        stop(process)


def stop(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(5)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)


# -- measurements --------------------------------------------------------------------------------


def bulk_mb_s(port: int, size: int) -> float:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        buffer = bytearray(1 << 20)
        start = time.perf_counter()
        sock.sendall(str(size).encode())
        received = 0
        while received < size:
            got = sock.recv_into(buffer)
            if not got:
                raise RuntimeError(f"EOF after {received} of {size} bytes")
            received += got
        return size / (time.perf_counter() - start) / 1e6


def round_trips(port: int, count: int, message: bytes, answer_size: int) -> tuple[float, float]:
    """(median round trip in µs, round trips per second) on one persistent connection."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(200):  # warm up
            sock.sendall(message)
            _recv_exact(sock, answer_size)
        times = []
        clock = time.perf_counter
        begin = clock()
        for _ in range(count):
            start = clock()
            sock.sendall(message)
            _recv_exact(sock, answer_size)
            times.append(clock() - start)
        total = clock() - begin
    return statistics.median(times) * 1e6, count / total


def _recv_exact(sock: socket.socket, size: int) -> None:
    got = 0
    while got < size:
        data = sock.recv(size - got)
        if not data:
            raise RuntimeError("connection closed")
        got += len(data)


def startup_ms(repeat: int, log_dir: Path, module_entry: bool = False) -> list[float]:
    """Milliseconds from spawn to the first 200 answer of GET /version (raw socket polling):
    through spawn_proxy_server, or with ``python -m shakedown.netproxy`` when module_entry."""
    from shakedown.netproxy import spawn_proxy_server

    results = []
    for index in range(repeat):
        port = free_port()
        start = time.perf_counter()
        if module_entry:
            process = subprocess.Popen(
                [sys.executable, "-m", "shakedown.netproxy", "--control-port", str(port)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
            )
        else:
            process = spawn_proxy_server(port, log_dir / f"startup-{index}.log")
        try:
            while not _version_answers(port):
                if process.poll() is not None:
                    raise RuntimeError("proxy server exited at start")
                time.sleep(0.001)
            results.append((time.perf_counter() - start) * 1000)
        finally:
            stop(process)
    return results


def _version_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"GET /version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            return sock.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def redis_benchmark(port: int, clients: int, requests: int) -> float:
    """Requests per second of redis-benchmark PING_INLINE against port."""
    out = subprocess.run(
        ["redis-benchmark", "-p", str(port), "-c", str(clients), "-n", str(requests),
         "-t", "ping_inline", "--csv"],
        capture_output=True, text=True, check=True, timeout=120,
    ).stdout.strip().splitlines()[-1]
    return float(out.split(",")[1].strip('"'))


# -- report --------------------------------------------------------------------------------------


def spread(values: list[float], fmt: str = "{:.0f}") -> str:
    ordered = sorted(values)
    return " / ".join(fmt.format(v) for v in (ordered[0], statistics.median(ordered), ordered[-1]))


def verdict(ok: bool) -> str:
    return "meets target" if ok else "MISSES target"


def interleaved(
    repeat: int, direct: Callable[[], T], proxied: Callable[[], T]
) -> tuple[list[T], list[T]]:
    """Alternate direct and proxied runs so machine noise hits both alike."""
    a: list[T] = []
    b: list[T] = []
    for _ in range(repeat):
        a.append(direct())
        b.append(proxied())
    return a, b


class Bench:
    """The servers and proxies of one benchmark run; everything stops when the stack closes."""

    def __init__(self, stack: contextlib.ExitStack, log_dir: Path, args: argparse.Namespace):
        from shakedown.netproxy import ProxyControl, spawn_proxy_server

        self.args = args
        me = [sys.executable, __file__, "--serve"]
        self.echo_port, self.source_port, control_port = free_port(), free_port(), free_port()
        stack.enter_context(child([*me, "echo", str(self.echo_port)], self.echo_port))
        stack.enter_context(child([*me, "source", str(self.source_port)], self.source_port))
        server = spawn_proxy_server(control_port, log_dir / "server.log")
        stack.callback(stop, server)
        self.control = stack.enter_context(ProxyControl(f"http://127.0.0.1:{control_port}"))
        self.control.wait_ready(10)
        self._proxies: dict[int, int] = {}
        self.redis_port: int | None = None
        redis = shutil.which("redis-server")
        if redis:
            self.redis_port = free_port()
            stack.enter_context(child(
                [redis, "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no"], self.redis_port))

    def proxy_to(self, port: int) -> int:
        """The proxy without toxics towards port (made on first use); its listen port."""
        if port not in self._proxies:
            info = self.control.create(f"to{port}", 0, "127.0.0.1", port)
            self._proxies[port] = int(info["listen"].rsplit(":", 1)[1])
        return self._proxies[port]


def section_startup(args: argparse.Namespace, log_dir: Path) -> None:
    starts = startup_ms(args.repeat, log_dir)
    ok = statistics.median(starts) < TARGETS["startup_ms"]
    print(f"control API answering after spawn: {spread(starts)} ms   "
          f"target < {TARGETS['startup_ms']:.0f} ms: {verdict(ok)}")
    module = startup_ms(args.repeat, log_dir, module_entry=True)
    print(f"  (python -m shakedown.netproxy, which first imports the whole shakedown package: "
          f"{spread(module)} ms)")


def section_bulk(bench: Bench) -> None:
    size = bench.args.bulk_mib << 20
    via = bench.proxy_to(bench.source_port)
    direct, proxied = interleaved(
        bench.args.repeat,
        functools.partial(bulk_mb_s, bench.source_port, size),
        functools.partial(bulk_mb_s, via, size),
    )
    ratio = statistics.median(proxied) / statistics.median(direct)
    ok = statistics.median(proxied) >= TARGETS["bulk_mb_s"]
    print(f"\nbulk transfer, {bench.args.bulk_mib} MiB per run (MB/s)")
    print(f"  direct   {spread(direct)}")
    print(f"  proxied  {spread(proxied)}   ratio {ratio:.2f}   "
          f"target >= {TARGETS['bulk_mb_s']:.0f} MB/s: {verdict(ok)}")


def section_round_trips(bench: Bench) -> None:
    workloads = [("echo server (Python), 32-byte messages", bench.echo_port, b"x" * 32, 32)]
    if bench.redis_port is not None:
        workloads.append(("redis-server PING", bench.redis_port, b"PING\r\n", 7))
    count = bench.args.round_trips
    for title, port, message, answer in workloads:
        via = bench.proxy_to(port)
        direct, proxied = interleaved(
            bench.args.repeat,
            functools.partial(round_trips, port, count, message, answer),
            functools.partial(round_trips, via, count, message, answer),
        )
        report_round_trips(title, count, direct, proxied)


def section_redis_benchmark(bench: Bench) -> None:
    if bench.redis_port is None or not shutil.which("redis-benchmark"):
        return
    via = bench.proxy_to(bench.redis_port)
    print("\nredis-benchmark PING_INLINE, 50000 requests (requests/s; C client, no target)")
    for clients in (1, 16):
        direct, proxied = interleaved(
            max(3, bench.args.repeat // 2),
            functools.partial(redis_benchmark, bench.redis_port, clients, 50000),
            functools.partial(redis_benchmark, via, clients, 50000),
        )
        ratio = statistics.median(proxied) / statistics.median(direct)
        print(f"  {clients:2d} connection(s): direct {spread(direct)}   "
              f"proxied {spread(proxied)}   ratio {ratio:.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--bulk-mib", type=int, default=1024)
    parser.add_argument("--round-trips", type=int, default=20000)
    parser.add_argument("--serve", nargs=2, metavar=("KIND", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], int(args.serve[1]))
        return 0
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
    print(f"netproxy idle-path benchmark: {os.cpu_count()} CPUs, "
          f"Python {sys.version.split()[0]}, {args.repeat} repetitions (min / median / max)\n")
    with tempfile.TemporaryDirectory(prefix="netproxy-bench-") as tmp, \
            contextlib.ExitStack() as stack:
        section_startup(args, Path(tmp))
        bench = Bench(stack, Path(tmp), args)
        section_bulk(bench)
        section_round_trips(bench)
        section_redis_benchmark(bench)
    return 0


def report_round_trips(
    title: str, count: int, direct: list[tuple[float, float]], proxied: list[tuple[float, float]]
) -> None:
    lat_d, lat_p = [r[0] for r in direct], [r[0] for r in proxied]
    rps_d, rps_p = [r[1] for r in direct], [r[1] for r in proxied]
    added = statistics.median(lat_p) - statistics.median(lat_d)
    ratio = statistics.median(rps_p) / statistics.median(rps_d)
    print(f"\nrequest/response, {title}, {count} round trips on one connection")
    print(f"  median round trip (µs)  direct {spread(lat_d, '{:.1f}')}   "
          f"proxied {spread(lat_p, '{:.1f}')}")
    print(f"  round trips/s           direct {spread(rps_d)}   proxied {spread(rps_p)}")
    print(f"  added median latency {added:.1f} µs   target <= "
          f"{TARGETS['added_latency_us']:.0f} µs: {verdict(added <= TARGETS['added_latency_us'])}")
    print(f"  throughput ratio {ratio:.2f}          target >= "
          f"{TARGETS['throughput_ratio']:.2f}: {verdict(ratio >= TARGETS['throughput_ratio'])}")
    # ratio = R / (R + added) for a workload whose direct round trip is R: where it crosses
    # the target tells which real workloads the proxy leaves (nearly) unchanged.
    target = TARGETS["throughput_ratio"]
    print(f"  -> with this added latency the ratio is >= {target:.2f} for workloads whose "
          f"direct round trip is >= {max(added, 0) * target / (1 - target):.0f} µs")


if __name__ == "__main__":
    sys.exit(main())
