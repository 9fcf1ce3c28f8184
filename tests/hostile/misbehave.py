"""A service that misbehaves on purpose, for the hostile-input corpus: ``misbehave.py MODE
PORT``. Every mode either exits or never becomes ready; none listens on PORT except http500."""

from __future__ import annotations

import http.server
import os
import signal
import sys
import time

SECRET = "hunter2-not-in-output"


def _note() -> None:
    """Append this process's pid to $HOSTILE_PIDS: the test checks that each one is gone."""
    target = os.environ.get("HOSTILE_PIDS")
    if target:
        with open(target, "a") as handle:
            handle.write(f"{os.getpid()}\n")


def _forever() -> None:
    while True:
        time.sleep(60)


def _daemon() -> None:
    """Double fork, new session, empty environment: no tag, no process group of ours."""
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            _note()
            os.execve("/bin/sleep", ["sleep", "600"], {})
        os._exit(0)


def main(mode: str, port: int) -> None:
    _note()
    if mode == "markup-exit":
        print("[bold red]boom[/] [/] :x: [link=file:///etc/passwd]click[/link] \x1b[31mred")
        sys.exit(1)
    if mode == "bad-utf8":
        sys.stdout.buffer.write(b"bad bytes: \xff\xfe\xc3( end\n")
        sys.exit(1)
    if mode == "flood":
        line = "x" * 1023 + "\n"
        sys.stdout.write(line * 10240)  # 10 MB
        print("last line of the flood")
        sys.exit(1)
    if mode == "secret-url":
        print(f"connecting to postgresql://app:{SECRET}@127.0.0.1:1/db")
        print(f"dsn: host=127.0.0.1 user=app password={SECRET} dbname=db")
        sys.exit(1)
    if mode == "ignore-term":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        _forever()
    if mode == "daemon":
        _daemon()
        _forever()
    if mode == "setsid-child":
        if os.fork() == 0:
            os.setsid()
            _note()
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            _forever()
        time.sleep(0.2)
        sys.exit(1)
    if mode == "orphan":
        if os.fork() == 0:
            if os.fork() == 0:
                _note()
                _forever()
            os._exit(0)
        time.sleep(0.2)
        sys.exit(1)
    if mode == "http500":
        class Failing(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_error(500, "[bold]not ready[/bold]")

        http.server.HTTPServer(("127.0.0.1", port), Failing).serve_forever()
    raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
