"""Who is at the other end of an accepted loopback connection: the process that opened it and
the source label shakedown gave that process or an ancestor (``SHAKEDOWN_SOURCE`` in its
environment, which a Patroni member passes on to its postmaster, the parent of its
walreceiver). A link shared by several sources (every peer of a Patroni member reaches it
through one connect address) uses it so a toxic can act on one source's connections only."""

from __future__ import annotations

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
    for conn in psutil.net_connections(kind="tcp"):
        if conn.pid and tuple(conn.laddr) == theirs and tuple(conn.raddr or ()) == ours:
            return _label(conn.pid)
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
