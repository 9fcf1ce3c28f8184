"""Kernel network faults as shakedown makes them (issue 19): how long ``faults.cut`` and its
heal take (target < 10 ms each), and the echo round trip between two services with a fault on
*another* pair in place, beside no fault at all (target >= 0.95 of it; with no fault active
there is no rule at all, so that case is direct by construction). Needs root and nftables.

    .venv/bin/python bench/kernel_faults.py [--runs 30] [--round-trips 3000]
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import repeat, timed, verdict
from shakedown import Environment

ECHO = """
import socket, sys, threading
def echo(conn):
    with conn:
        while data := conn.recv(65536):
            conn.sendall(data)
with socket.create_server(("127.0.0.1", int(sys.argv[1]))) as server:
    while True:
        threading.Thread(target=echo, args=(server.accept()[0],), daemon=True).start()
"""
TOPOLOGY = "".join(f'[services.{name}]\nkind = "process"\ncommand = ["{sys.executable}", '
                   f'"echo.py", "{{port}}"]\n\n' for name in ("a", "b", "c"))


def round_trips(port: int, count: int) -> float:
    """Seconds per echo round trip from this process (outside every service's group)."""
    with socket.create_connection(("127.0.0.1", port)) as conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        began = time.perf_counter()
        for _ in range(count):
            conn.sendall(b"x" * 64)
            conn.recv(64)
        return (time.perf_counter() - began) / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--round-trips", type=int, default=20000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "echo.py").write_text(ECHO)
        (Path(tmp) / "shakedown.toml").write_text(TOPOLOGY)
        with Environment.from_file(Path(tmp) / "shakedown.toml") as env:
            faults = env.faults
            held: list = []
            apply = repeat("cut a -> b (apply)", args.runs,
                           lambda: timed(lambda: held.append(faults.cut(["a"], ["b"]))))
            heal = repeat("heal of that cut", args.runs,
                          lambda: timed(lambda: held.pop().heal()) if held else 0.0)
            port = env["c"].port
            plain, with_fault = [], []
            for _ in range(5):  # alternate, so load changes hit both alike
                plain.append(round_trips(port, args.round_trips))
                with faults.cut(["a"], ["b"]):
                    with_fault.append(round_trips(port, args.round_trips))
    for label, samples in (("no fault", plain), ("a -> b cut in place", with_fault)):
        print(f"echo round trip from the test, {label}: "
              + ", ".join(f"{s * 1e6:.1f}" for s in samples) + " us")
    print(verdict("apply: median seconds", apply.median, 0.010))
    print(verdict("heal: median seconds", heal.median, 0.010))
    ratio = sorted(plain)[2] / sorted(with_fault)[2]
    print(verdict("healthy path with another pair's fault: ratio to no fault", ratio, 0.95,
                  higher_is_better=True))


if __name__ == "__main__":
    main()
