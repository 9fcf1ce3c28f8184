"""Port allocation that is safe when several runs start at once (pytest-xdist workers, two
terminals): a port is taken by creating a lock file ``ports/PORT`` exclusively, and only then
checked free by binding it. Ports come from a range below Linux's ephemeral range so that
outgoing connections never collide with them. Runs that keep separate runtime roots (so separate
lock directories) can still share the machine by giving each its own slice of that range in
``SHAKEDOWN_PORTS`` (``LOW-HIGH``, inclusive), as the test suite does per xdist worker."""

from __future__ import annotations

import errno
import os
import random
import socket
from pathlib import Path

from ..errors import PortInUseError, ShakedownError

PORT_RANGE = range(20000, 32000)
PORTS_VARIABLE = "SHAKEDOWN_PORTS"


def port_range() -> range:
    """The range ports are taken from: ``SHAKEDOWN_PORTS`` if set, else ``PORT_RANGE``."""
    text = os.environ.get(PORTS_VARIABLE, "").strip()
    if not text:
        return PORT_RANGE
    low, _, high = text.partition("-")
    try:
        chosen = range(int(low), int(high) + 1)
    except ValueError:
        chosen = range(0)
    if not chosen or chosen.start < 1024 or chosen.stop > 65536:
        raise ShakedownError(
            f"{PORTS_VARIABLE}={text!r} is not a port range",
            checked=[f"{PORTS_VARIABLE} read as LOW-HIGH with 1024 <= LOW <= HIGH <= 65535"],
            fix=[f"set it like {PORTS_VARIABLE}=20000-25999, or unset it for "
                 f"{PORT_RANGE.start}-{PORT_RANGE.stop - 1}"],
        )
    return chosen


class PortAllocator:
    """Takes and releases ports for one environment; locks name the environment id."""

    def __init__(self, root: Path, env_id: str) -> None:
        self.lock_dir = root / "ports"
        self.lock_dir.mkdir(parents=True, exist_ok=True)
        self.env_id = env_id
        self.records_root = root

    def allocate(self) -> int:
        ports = port_range()
        for port in random.sample(ports, min(400, len(ports))):
            if self._lock(port):
                if port_is_free(port):
                    return port
                self.release(port)
        raise ShakedownError(
            "no free port found for a service",
            checked=[f"{min(400, len(ports))} random ports in {ports.start}-{ports.stop - 1}"],
            fix=["stop leftover servers: shakedown reap", "free some ports in that range"],
        )

    def claim(self, port: int, service: str) -> int:
        """Take a fixed port that the topology asks for, or fail saying who holds it."""
        if not self._lock(port) or not port_is_free(port):
            raise PortInUseError(
                f"port {port} asked for by service {service!r} is in use",
                checked=[f"bind 127.0.0.1:{port}", f"lock file {self.lock_dir / str(port)}"],
                fix=[f"find the holder: ss -ltnp 'sport = :{port}'",
                     f"or remove 'port = {port}' from the service to get a free port"],
            )
        return port

    def release(self, port: int) -> None:
        lock = self.lock_dir / str(port)
        try:
            if lock.read_text().strip() == self.env_id:
                lock.unlink()
        except FileNotFoundError:
            pass

    def release_all(self) -> None:
        for lock in self.lock_dir.iterdir():
            try:
                if lock.read_text().strip() == self.env_id:
                    lock.unlink(missing_ok=True)
            except FileNotFoundError:
                continue

    def _lock(self, port: int) -> bool:
        lock = self.lock_dir / str(port)
        for _ in range(2):
            try:
                fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if not self._reclaim_stale(lock):
                    return False
                continue
            with os.fdopen(fd, "w") as handle:
                handle.write(self.env_id)
            return True
        return False

    def _reclaim_stale(self, lock: Path) -> bool:
        """A lock whose environment record is gone belongs to nobody: remove it."""
        try:
            holder = lock.read_text().strip()
        except FileNotFoundError:
            return True
        if holder and (self.records_root / holder / "env.json").exists():
            return False
        lock.unlink(missing_ok=True)
        return True


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Servers set SO_REUSEADDR, so a port in TIME_WAIT is usable by them: test the same way.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True
