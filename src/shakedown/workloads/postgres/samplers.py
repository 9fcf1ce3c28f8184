"""Samplers that watch a PostgreSQL cluster while a workload runs and record what they see in
the history, for the ``single_leader`` and ``replication_lag`` checkers:

- ``RoleSampler``: every interval, asks each member directly whether it is in recovery; a
  member that answers ``false`` is a writable primary. Recorded as ``f="roles"`` with value
  ``{member: {"role": "primary"|"replica"|"unknown", "writable": bool}}``, all members at the
  same time, so two writable primaries in one sample is a split brain. With ``groups``
  (member → group, e.g. Patroni's Citus groups) each member's value carries its ``"group"``
  and the checker wants one primary per group.
- ``LagSampler``: every interval, reads ``pg_stat_replication`` on whichever member is the
  primary now and records ``f="lag"`` with ``{replica: seconds}`` (the time its replay is
  behind; 0 when it has replayed everything the primary wrote).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

import psycopg

from shakedown.history import NEMESIS, History


class _Sampler:
    def __init__(self, history: History, interval: float) -> None:
        self.history = history
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True,
                                        name=type(self).__name__)
        self.samples = 0

    def __enter__(self) -> _Sampler:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> _Sampler:
        return self.__enter__()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self.samples += 1
            self._stop.wait(self.interval)

    def sample(self) -> None:
        raise NotImplementedError


def _query(url: str, query: str, timeout: float) -> list[tuple[Any, ...]] | None:
    """Rows of ``query``, or None when the member does not answer in time."""
    try:
        with psycopg.connect(url, connect_timeout=max(1, int(timeout)), autocommit=True,
                             options=f"-c statement_timeout={int(timeout * 1000)}") as conn:
            return conn.execute(query).fetchall()
    except psycopg.Error:
        return None


class RoleSampler(_Sampler):
    """Which members are writable primaries, sampled together."""

    def __init__(self, members: Mapping[str, str], history: History, interval: float = 0.1,
                 timeout: float = 0.5, groups: Mapping[str, str] | None = None) -> None:
        super().__init__(history, interval)
        self.members = dict(members)
        self.timeout = timeout
        self.groups = dict(groups or {})

    def sample(self) -> None:
        at = self.history.now()
        roles: dict[str, dict[str, Any]] = {}
        for name, url in self.members.items():
            rows = _query(url, "SELECT pg_is_in_recovery()", self.timeout)
            if rows is None:
                roles[name] = {"role": "unknown", "writable": False}
            else:
                primary = not rows[0][0]
                roles[name] = {"role": "primary" if primary else "replica", "writable": primary}
            if name in self.groups:
                roles[name]["group"] = self.groups[name]
        self.history.append(NEMESIS, "info", "roles", roles, at=at)


class LagSampler(_Sampler):
    """Replay lag of every replica, read on the current primary."""

    def __init__(self, primary_url: Callable[[], str | None], history: History,
                 interval: float = 0.2, timeout: float = 0.5) -> None:
        super().__init__(history, interval)
        self.primary_url = primary_url
        self.timeout = timeout

    def sample(self) -> None:
        url = self.primary_url()
        rows = _query(url, "SELECT application_name, "
                           "COALESCE(EXTRACT(EPOCH FROM replay_lag), 0)::float8 "
                           "FROM pg_stat_replication", self.timeout) if url else None
        if rows is not None:
            self.history.append(NEMESIS, "info", "lag", {name: lag for name, lag in rows})
