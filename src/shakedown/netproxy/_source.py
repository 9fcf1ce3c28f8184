"""Who is at the other end of an accepted loopback connection: the process that opened it and
the source label shakedown gave that process or an ancestor (``SHAKEDOWN_SOURCE`` in its
environment, which a Patroni member passes on to its postmaster, the parent of its
walreceiver). A link shared by several sources (every peer of a Patroni member reaches it
through one connect address) uses it so a toxic can act on one source's connections only."""

from __future__ import annotations

import os
import socket

import psutil

SOURCE_VARIABLE = "SHAKEDOWN_SOURCE"


def connecting_source(client: socket.socket) -> str | None:
    """The source label of the process whose socket is connected to ``client`` (an accepted
    socket), or None when it cannot be told (not local, gone already, no label, no access)."""
    try:
        theirs, ours = client.getpeername()[:2], client.getsockname()[:2]
    except OSError:
        return None
    inode = _socket_inode(theirs, ours)
    pid = _socket_owner(inode) if inode else None
    return _label(pid) if pid else None


def _socket_inode(local: tuple[str, int], remote: tuple[str, int]) -> str | None:
    """The inode of the TCP socket bound to ``local`` and connected to ``remote``, from the
    kernel's tables (a lookup of one connection: psutil.net_connections lists every socket of
    every process, ~30 ms per accepted connection on a small machine)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as handle:
                next(handle, None)
                for line in handle:
                    fields = line.split()
                    if (len(fields) > 9 and _address(fields[1]) == local
                            and _address(fields[2]) == remote):
                        return fields[9]
        except OSError:
            continue
    return None


def _address(text: str) -> tuple[str, int] | None:
    """``0100007F:1F90`` (the kernel's hex, each 32-bit word in host order) -> (ip, port)."""
    try:
        address, port = text.split(":")
        raw = bytes.fromhex(address)
        raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
        family = socket.AF_INET if len(raw) == 4 else socket.AF_INET6
        ip = socket.inet_ntop(family, raw)
    except (ValueError, OSError):
        return None
    if ip.startswith("::ffff:") and "." in ip:
        ip = ip.removeprefix("::ffff:")
    return ip, int(port, 16)


def _socket_owner(inode: str) -> int | None:
    """A process holding the socket with this inode open; the newest first, since the one
    that just connected (a PostgreSQL backend forked for the query) is most often young."""
    target = f"socket:[{inode}]"
    for pid in sorted((int(n) for n in os.listdir("/proc") if n.isdigit()), reverse=True):
        try:
            for fd in os.scandir(f"/proc/{pid}/fd"):
                if os.readlink(fd.path) == target:
                    return pid
        except OSError:  # gone, or not ours to read
            continue
    return None


def _label(pid: int, generations: int = 4) -> str | None:
    """The label of ``pid`` or of its nearest ancestor that has one: a PostgreSQL backend
    overwrites its environment with its process title, but its postmaster keeps the label."""
    try:
        process: psutil.Process | None = psutil.Process(pid)
        while process is not None and generations > 0:
            label = process.environ().get(SOURCE_VARIABLE)
            if label:
                return label
            process, generations = process.parent(), generations - 1
    except (psutil.Error, OSError):
        pass
    return None
