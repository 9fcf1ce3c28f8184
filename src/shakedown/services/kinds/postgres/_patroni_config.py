"""Patroni's side of the ``postgres-ha`` kind: finding a Patroni the service user can run, the
fast "initdb" script, the server parameters, each member's ``patroni.yml``, and the links
the cluster's own traffic takes (member to etcd, peers to member)."""

from __future__ import annotations

import os
import re
import shlex
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ....errors import MissingBinaryError
from ....topology import Scalar
from ....topology.specs.postgres_ha import PatroniSpec
from ..._base import LOOPBACK, InternalLink, ServiceContext
from ..._protocols import ClusterMember
from . import _extensions
from ._binaries import PgBinaries
from ._family import COMMON_SETTINGS, SUPERUSER, parameter_value

REPLICATION_USER = "replicator"
DEFAULT_VENV = "/opt/shakedown/patroni-venv"
VENV_VARIABLE = "SHAKEDOWN_PATRONI"
NAMESPACE = "/shakedown/"
"""Patroni's DCS namespace; the scope (``ENV_ID-SERVICE``) keeps clusters apart inside it."""
INSTALL_HINT = (f"/usr/bin/python3 -m venv {DEFAULT_VENV} && "
                f"{DEFAULT_VENV}/bin/pip install 'patroni[etcd3]>=4,<5' 'psycopg[binary]'")

BASE_PARAMETERS: dict[str, Scalar] = {
    **COMMON_SETTINGS,
    "wal_retrieve_retry_interval": "100ms",  # its 5 s default delays replicas' first stream
    "wal_log_hints": True,  # pg_rewind of a former leader
    # A leader demoted while cut from its replicas stops only once its walsenders have their
    # shutdown checkpoint acknowledged, or give up after this long: with the default 60 s, a
    # heal can find the former leader still "stopping" past the readiness bound.
    "wal_sender_timeout": "10s",
}
# Fewer than the postgres kind's, so that a killed member behaves as in production:
# - synchronous_commit stays on: with it off, a commit is acknowledged before its WAL leaves
#   the server's memory, and a SIGKILLed leader loses it (and so do replicas, which are sent
#   flushed WAL only);
# - full_page_writes stays on: pg_rewind needs it;
# - fsync off only skips flushes to disk: a killed process loses nothing the OS already has.
FAST_PARAMETERS: dict[str, Scalar] = {
    "fsync": False,
    "shared_buffers": "16MB",
}

INITDB_SCRIPT = """#!/bin/sh
# Written by shakedown: Patroni's "initdb" for this cluster. Instead of running initdb, it
# moves the copy of shakedown's initdb template that was made next to the data directory into
# place, and sets the superuser's password (from Patroni's --pwfile) in single-user mode.
set -eu
pwfile=""
for arg; do
  case "$arg" in --pwfile=*) pwfile="${{arg#--pwfile=}}" ;; esac
  data="$arg"
done
rmdir "$data" 2>/dev/null || true
mv "${{data%/*}}/staged" "$data"
if [ -n "$pwfile" ]; then
  IFS= read -r password < "$pwfile" || true
  case "$password" in *"'"*) password=$(printf '%s' "$password" | sed "s/'/''/g") ;; esac
  printf "ALTER ROLE {superuser} PASSWORD '%s';\\n" "$password" \\
    | {postgres} --single -D "$data" -c wal_keep_size=64MB -c log_min_messages=warning \\
      postgres >/dev/null
fi
"""


def find_patroni() -> str:
    """The ``patroni`` executable of a Python environment the service user can run:
    ``SHAKEDOWN_PATRONI`` (a venv or the executable) when set, else the default venv."""
    configured = os.environ.get(VENV_VARIABLE)
    if configured:
        path = Path(configured)
        candidate = path if path.name == "patroni" else path / "bin" / "patroni"
        searched = [f"{VENV_VARIABLE}={configured} -> {candidate}"]
    else:
        candidate = Path(DEFAULT_VENV) / "bin" / "patroni"
        searched = [f"{candidate} ({VENV_VARIABLE} not set)"]
    if not candidate.is_file():
        raise _missing_patroni(searched)
    problem = _not_runnable_by_others(candidate) if os.geteuid() == 0 else ""
    if problem:
        raise _missing_patroni([*searched, problem])
    return str(candidate)


def _missing_patroni(searched: list[str]) -> MissingBinaryError:
    error = MissingBinaryError("patroni", kind="postgres-ha", searched=searched,
                               install=INSTALL_HINT)
    error.fix = [
        f"create its environment: {INSTALL_HINT}",
        "or run: bash scripts/bootstrap.sh (it does the same)",
        "from Debian's /usr/bin/python3 and at a system path: Patroni runs as the unprivileged "
        "service user, which cannot run a Python kept under /root",
        f"or point {VENV_VARIABLE} at another such environment",
    ]
    error.args = (error.render(),)
    return error


def _not_runnable_by_others(patroni: Path) -> str:
    """Why another user could not run this Patroni script and its interpreter ('' if it can)."""
    targets = [patroni]
    first = patroni.read_bytes()[:256].split(b"\n", 1)[0]
    if first.startswith(b"#!"):
        interpreter = first[2:].decode(errors="replace").split()
        if interpreter:
            targets.append(Path(os.path.realpath(interpreter[0])))
    for target in targets:
        for directory in reversed(target.parents):
            if not directory.stat().st_mode & stat.S_IXOTH:
                mode = stat.S_IMODE(directory.stat().st_mode)
                return f"{target}: other users cannot enter {directory} (mode {mode:o})"
        if not target.stat().st_mode & stat.S_IXOTH:
            return f"{target} is not executable by other users"
    return ""


def slot_name(member: str) -> str:
    """Patroni's ``slot_name_from_member_name``."""
    return re.sub("[^a-z0-9_]", lambda m: "_" if m.group(0) in "-." else f"u{ord(m.group(0)):04d}",
                  member.lower())[:63]


def inbound_links(member: ClusterMember, peers: Sequence[str],
                  api_peers: Sequence[str]) -> list[InternalLink]:
    """A member's inbound links, each shared by the members that use it: its postgres
    (``NAME-in``: replication, pg_rewind, Citus's queries) by ``peers``, its REST API
    (``NAME-api``: the leader race) by ``api_peers``."""
    links = []
    for suffix, sources, port in (("in", peers, member.port),
                                  ("api", api_peers, member.rest_port)):
        if sources:
            links.append(InternalLink(name=f"{member.name}-{suffix}", source=sources[0],
                                      to=member.name, upstream=(member.host, port),
                                      peers=tuple(sources[1:])))
    return links


class PatroniConfig:
    """Mixed into the kind's class: the members' configuration and the cluster's links."""

    spec: PatroniSpec
    ctx: ServiceContext
    name: str
    password: str
    replication_password: str

    if TYPE_CHECKING:
        @property
        def members(self) -> list[ClusterMember]: ...

        def member(self, which: int | str) -> ClusterMember: ...

        def member_dir(self, index: int) -> Path: ...

        def pgdata(self, index: int) -> Path: ...

        @property
        def binaries(self) -> PgBinaries: ...

        def settings_over(self, base: Any, fast: Any, *extra: Any) -> dict[str, Scalar]: ...

    def _parameters(self) -> dict[str, Scalar]:
        settings = self.settings_over(BASE_PARAMETERS, FAST_PARAMETERS)
        libraries = _extensions.preload(self.spec.extensions, self.spec.settings)
        if libraries:
            settings["shared_preload_libraries"] = libraries
        return {key: parameter_value(value) for key, value in settings.items()}

    @property
    def scope(self) -> str:
        """The cluster's name in the DCS (patronictl's ``scope``)."""
        return f"{self.ctx.env_id}-{self.name}"

    def _config(self, index: int, initdb: Path) -> dict[str, Any]:
        member = self.member(index)
        directory = self.member_dir(index)
        etcd_hosts = self._etcd_hosts(index)
        staged_copy = shlex.join(["/bin/sh", "-c", 'rmdir "$1" 2>/dev/null; exec mv "$0" "$1"',
                                  str(directory / "staged"), str(self.pgdata(index))])
        return {
            "scope": self.scope,
            "namespace": NAMESPACE,
            "name": member.name,
            "log": {"level": "INFO",
                    "format": f"%(asctime)s {member.name} %(levelname)s: %(message)s"},
            "restapi": {"listen": f"{member.host}:{member.rest_port}",
                        "connect_address": self._rest_address(member)},
            # use_proxies: Patroni talks to exactly these addresses (a fault proxy's, once
            # links exist) instead of discovering the etcd members' own client URLs.
            "etcd3": {"hosts": etcd_hosts, "use_proxies": True},
            "bootstrap": {
                "dcs": {
                    "ttl": self.spec.ttl,
                    "loop_wait": self.spec.loop_wait,
                    "retry_timeout": self.spec.retry_timeout,
                    "maximum_lag_on_failover": 1048576,
                    "synchronous_mode": self.spec.synchronous_mode,
                    "postgresql": {
                        "use_pg_rewind": True,
                        "use_slots": True,
                        "remove_data_directory_on_rewind_failure": True,
                        "remove_data_directory_on_diverged_timelines": True,
                        "parameters": self._parameters(),
                    },
                },
            },
            "postgresql": {
                "listen": f"{member.host}:{member.port}",
                "connect_address": self._connect_address(member),
                "data_dir": str(self.pgdata(index)),
                "bin_dir": str(self.binaries.bin_dir),
                "bin_name": {"initdb": str(initdb)},
                "pgpass": str(directory / "pgpass"),
                "authentication": {
                    "superuser": {"username": SUPERUSER, "password": self.password},
                    "replication": {"username": REPLICATION_USER,
                                    "password": self.replication_password},
                },
                "parameters": {"log_line_prefix": f"%m {member.name} [%p] "},
                "pg_hba": [
                    f"host replication {REPLICATION_USER} 127.0.0.1/32 scram-sha-256",
                    "host all all 127.0.0.1/32 scram-sha-256",
                ],
                "create_replica_methods": ["shakedown_copy", "basebackup"],
                "shakedown_copy": {"command": staged_copy, "no_params": True},
                "basebackup": {"checkpoint": "fast"},
            },
            "watchdog": {"mode": "off"},
        }

    def internal_links(self) -> list[InternalLink]:
        """Each member reaches etcd through a link of its own (``db0-dcs``), and its peers
        reach its postgres (replication, pg_rewind) through another (``db0-in``, its Patroni
        ``connect_address``) and its REST API through a third (``db0-api``: in a leader race a
        candidate asks its peers how far they are, and one cut off must not answer), so
        faults can cut one member from the DCS or from its peers: ``faults.partition(["db0"],
        ["dcs"])``, ``faults.partition(["db0"], ["db1", "db2"])``.
        A member's inbound link tells which peer each connection comes from (the proxy reads
        the connecting process's SHAKEDOWN_SOURCE), so ``faults.partition(["db0", "db1"],
        ["db2"])`` cuts db2's connections into db0 and db1 and leaves db0 <-> db1 alone.
        Clients reach the members directly; HAProxy has links of its own (see haproxy.py)."""
        links = [InternalLink(name=f"{member.name}-{self.spec.etcd}", source=member.name,
                              to=self.spec.etcd) for member in self.members]
        for member in self.members:
            peers = [m.name for m in self.members if m.name != member.name]
            links += inbound_links(member, peers, peers)
        return links

    def _rest_address(self, member: ClusterMember) -> str:
        """Where peers reach this member's REST API: its API link, when there is one (clients,
        HAProxy's checks and shakedown's probes use the member's own port)."""
        port = self.ctx.link_port(f"{member.name}-api")
        return f"{LOOPBACK}:{port}" if port is not None else f"{member.host}:{member.rest_port}"

    def _connect_address(self, member: ClusterMember) -> str:
        """Where peers reach this member's postgres: its inbound link, when there is one."""
        port = self.ctx.link_port(f"{member.name}-in")
        return f"{LOOPBACK}:{port}" if port is not None else f"{member.host}:{member.port}"

    def _etcd_hosts(self, index: int) -> list[str]:
        port = self.ctx.link_port(f"{self.member(index).name}-{self.spec.etcd}")
        if port is not None:
            return [f"127.0.0.1:{port}"]
        etcd = self.ctx.peer_exports(self.spec.etcd)  # as this service sees it (links)
        return etcd["endpoints"].split(",")

