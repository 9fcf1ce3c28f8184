"""The ``postgres`` kind: a PostgreSQL server started directly (not through ``pg_ctl -w``,
which polls every 100 ms) from a copy of the cached initdb template, with test-friendly
settings unless ``durable = true``. A ``replica_of`` service is a streaming replica: it is
also a copy of the template (same system identifier as its primary, so no base backup is
needed) that streams the primary's WAL from a replication slot, and it is ready only when it
is in recovery and has replayed the primary's current LSN."""

from __future__ import annotations

from ._server import Database, PostgresServer, slot_name


class PostgresService(PostgresServer, kind="postgres"):
    """The ``postgres`` kind (its mechanics are the family's, in ``_server``)."""


__all__ = ["Database", "PostgresService", "slot_name"]
