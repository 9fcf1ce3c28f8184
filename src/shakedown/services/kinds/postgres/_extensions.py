"""PostgreSQL extensions for the postgres family (``postgres``, ``postgres-ha``, ``citus``):
which extensions a server has (its control files), which must be preloaded and in what order,
the error that says how to get a missing one, and templates with extensions created.

An extension is installed when ``<sharedir>/extension/<name>.control`` exists and the library
its ``module_pathname`` names is in ``<pkglibdir>``; both directories come from the server's
own ``pg_config``.

``CREATE EXTENSION`` changes the data directory, so extensions are part of the template cache
key: ``ensure_template_with`` derives, once per machine, a template from the initdb one in
which the extensions exist in ``postgres`` and ``template1`` (every database created later
starts from it). A service then copies that template and creates nothing at start: Citus's
``CREATE EXTENSION`` alone takes ~0.5 s per database on this kind of machine."""

from __future__ import annotations

import fcntl
import functools
import hashlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from ....errors import MissingBinaryError, ShakedownError, did_you_mean
from ....process import RunAs, cache_root, copy_tree
from ..._base import DoctorLine
from ._binaries import PgBinaries, Template, ensure_template, find_binaries

CITUS = "citus"
# Extensions whose library must be in shared_preload_libraries for CREATE EXTENSION (or their
# hooks) to work. Citus must come first: it refuses to load after another hooking library.
NEEDS_PRELOAD = ("citus", "pg_stat_statements", "pg_cron", "pgaudit", "timescaledb",
                 "pg_stat_monitor", "pg_wait_sampling", "pg_qualstats", "pg_stat_kcache")
FIRST = ("citus",)

SOURCES_NOTE = ("or build it from a source tarball: put it in ../shared/vendor/ beside the "
                "checkout (or point SHAKEDOWN_EXTENSION_SOURCES at its directory) and run "
                "bash scripts/extensions.sh")


def install_command(name: str, major: str) -> str | None:
    """The one command that installs ``name`` for PostgreSQL ``major`` from a package
    repository (its project's own where Debian does not package it), or None if unknown."""
    debian = {"postgis": f"postgresql-{major}-postgis-3", "pg_cron": f"postgresql-{major}-cron",
              "pgaudit": f"postgresql-{major}-pgaudit", "pg_repack": f"postgresql-{major}-repack",
              "hypopg": f"postgresql-{major}-hypopg"}
    if name == CITUS:
        return ("curl -fsSL https://install.citusdata.com/community/deb.sh | sudo bash && "
                f"sudo apt-get install -y postgresql-{major}-citus-13.2")
    if name == "vector":
        return ("sudo /usr/share/postgresql-common/pgdg/apt.postgresql.org.sh -y && "
                f"sudo apt-get install -y postgresql-{major}-pgvector")
    if name in debian:
        return f"apt-get install -y {debian[name]}"
    return None


class MissingExtensionError(MissingBinaryError):
    """An extension a service asks for is known but not installed on this machine: a skip
    locally, an error under strict mode and CI=true (like a missing server binary)."""

    def __init__(self, name: str, *, kind: str, searched: Sequence[str], install: str,
                 fix: Sequence[str]) -> None:
        self.binary = name
        self.kind = kind
        self.install = install
        ShakedownError.__init__(
            self, f"PostgreSQL extension {name!r} is not installed: the {kind!r} service "
                  f"asks for it", checked=searched, fix=fix)


@dataclass(frozen=True)
class Extension:
    """An installed extension: its name, default version and control file."""

    name: str
    version: str
    control: Path


@dataclass(frozen=True)
class ServerDirs:
    """Where the server looks for extensions (from its ``pg_config``)."""

    share: Path
    lib: Path

    @property
    def extension(self) -> Path:
        return self.share / "extension"


@functools.cache
def server_dirs(binaries: PgBinaries) -> ServerDirs:
    """The server's share and library directories: its own ``pg_config``, else Debian's
    layout (``/usr/share/postgresql/MAJOR``, ``/usr/lib/postgresql/MAJOR/lib``)."""
    pg_config = binaries.bin_dir / "pg_config"
    if pg_config.is_file():
        out = subprocess.run([str(pg_config), "--sharedir", "--pkglibdir"], capture_output=True,
                             text=True, check=False).stdout.split("\n")
        if len(out) >= 2 and out[0] and out[1]:
            return ServerDirs(share=Path(out[0]), lib=Path(out[1]))
    return ServerDirs(share=Path(f"/usr/share/postgresql/{binaries.major}"),
                      lib=binaries.bin_dir.parent / "lib")


def _control(path: Path) -> dict[str, str]:
    """The ``key = 'value'`` lines of a control file."""
    values = {}
    for line in path.read_text(errors="replace").splitlines():
        match = re.match(r"\s*(\w+)\s*=\s*'?([^'#]*)'?", line)
        if match:
            values[match.group(1)] = match.group(2).strip()
    return values


def installed(binaries: PgBinaries) -> dict[str, Extension]:
    """Every extension the server has a control file for."""
    found = {}
    for control in sorted(server_dirs(binaries).extension.glob("*.control")):
        found[control.stem] = Extension(control.stem, _control(control).get("default_version",
                                                                            "?"), control)
    return found


def _library_missing(binaries: PgBinaries, extension: Extension) -> Path | None:
    """The library the control file names, when it is not where the server looks for it."""
    module = _control(extension.control).get("module_pathname", "")
    if not module.startswith("$libdir/"):
        return None
    library = server_dirs(binaries).lib / (module.removeprefix("$libdir/") + ".so")
    return None if library.is_file() else library


def require(binaries: PgBinaries, names: Iterable[str], *, service: str,
            kind: str) -> list[Extension]:
    """The installed extensions ``names``, or the error that says what is missing and how to
    get it (a name shakedown does not know and the server does not have is a plain error:
    most likely a typo)."""
    have = installed(binaries)
    dirs = server_dirs(binaries)
    chosen = []
    for name in names:
        extension = have.get(name)
        library = _library_missing(binaries, extension) if extension else None
        if extension is not None and library is None:
            chosen.append(extension)
            continue
        searched = [f"{dirs.extension / (name + '.control')}: "
                    f"{'found' if extension else 'not found'}"]
        if library is not None:
            searched.append(f"{library}: not found (the control file names it)")
        command = install_command(name, binaries.major)
        where = f"service {service!r}: extensions"
        if command is None:
            raise ShakedownError(
                f"{where}: PostgreSQL {binaries.version} has no extension {name!r}"
                f"{did_you_mean(name, have)}",
                checked=[*searched, f"extensions this server has: {', '.join(sorted(have))}"],
                fix=["correct the name (it is the one CREATE EXTENSION takes)",
                     f"or install the extension so that {name}.control is in {dirs.extension}"])
        raise MissingExtensionError(
            name, kind=kind, searched=searched, install=command,
            fix=[f"install it: {command}", SOURCES_NOTE if name in (CITUS, "vector") else
                 f"then check: ls {dirs.extension}/{name}.control"])
    return chosen


def preload(extensions: Sequence[str], settings: Mapping[str, Any]) -> str | None:
    """The ``shared_preload_libraries`` value for these extensions and the user's own
    setting: Citus first, then the other extensions that need preloading in the order given,
    then the libraries the user listed; None when nothing is to be preloaded."""
    given = str(settings.get("shared_preload_libraries", "") or "")
    user = [lib.strip() for lib in given.split(",") if lib.strip()]
    wanted = [e for e in extensions if e in NEEDS_PRELOAD]
    ordered = [e for e in FIRST if e in wanted or e in user]
    ordered += [e for e in [*wanted, *user] if e not in ordered]
    unique = list(dict.fromkeys(ordered))
    return ",".join(unique) if unique else None


def own_settings(names: Iterable[str], settings: Mapping[str, Any]) -> dict[str, Any]:
    """The settings of these extensions' own namespaces (``citus.node_conninfo``): those
    their creation may depend on."""
    prefixes = tuple(f"{name}." for name in names)
    return {k: v for k, v in settings.items() if k.startswith(prefixes)}


def create(conn: Any, names: Iterable[str]) -> None:
    """``CREATE EXTENSION IF NOT EXISTS`` each one (with what it requires) in the connection's
    database."""
    for name in names:
        conn.execute(sql.SQL("CREATE EXTENSION IF NOT EXISTS {} CASCADE").format(
            sql.Identifier(name)))


def doctor_lines() -> list[DoctorLine]:
    """For ``shakedown doctor``: whether Citus and pgvector are usable on the server
    shakedown would run, and how to get them."""
    try:
        binaries = find_binaries(None)
    except ShakedownError:
        return []
    have = installed(binaries)
    lines = []
    for name, label in ((CITUS, "citus (citus kind)"), ("vector", "pgvector (extension)")):
        extension = have.get(name)
        if extension is not None and _library_missing(binaries, extension) is None:
            lines.append(DoctorLine(label, True, f"version {extension.version} in "
                                    f"{extension.control.parent}"))
        else:
            command = install_command(name, binaries.major) or ""
            lines.append(DoctorLine(label, False,
                                    f"not installed for PostgreSQL {binaries.version}",
                                    f"bash scripts/extensions.sh (builds it from "
                                    f"../shared/vendor/) or {command}"))
    return lines


def ensure_template_with(binaries: PgBinaries, options: Sequence[str], run_as: RunAs | None,
                         names: Sequence[str] = (), settings: Mapping[str, str] | None = None,
                         ) -> Template:
    """The cached template for these binaries and initdb options with the extensions
    ``names`` created in ``postgres`` and ``template1`` (the plain initdb template when there
    are none), built once under a file lock. ``settings`` (already quoted for
    postgresql.conf) are the ones the extensions' creation depends on, such as
    ``citus.node_conninfo``: they are part of the key."""
    base = ensure_template(binaries, options, run_as)
    if not names:
        return base
    have = installed(binaries)
    settings = dict(settings or {})
    libraries = preload(names, {})
    if libraries:
        settings["shared_preload_libraries"] = f"'{libraries}'"
    described = [f"{n}={have[n].version if n in have else '?'}" for n in names]
    described += [f"{k}={v}" for k, v in sorted(settings.items())]
    key = f"{base.key}-x{hashlib.sha256(chr(0).join(described).encode()).hexdigest()[:10]}"
    root = cache_root() / "templates"
    target = root / key
    with (root / f"{key}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / "data" / "PG_VERSION").exists():
            _build(binaries, base, target, run_as, names, settings)
    return Template(data_dir=target / "data", bootstrap_password=base.bootstrap_password,
                    key=key)


def _build(binaries: PgBinaries, base: Template, target: Path, run_as: RunAs | None,
           names: Sequence[str], settings: Mapping[str, str]) -> None:
    """Copy the base template, start it on a private Unix socket, create the extensions,
    stop it cleanly (a shutdown checkpoint: copies start without recovery)."""
    work = target.with_name(target.name + ".building")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    if run_as:
        run_as.chown(work)
    data = work / "data"
    copy_tree(base.data_dir, data, run_as)
    data.chmod(0o700)
    # A socket directory of its own, short (the path of a Unix socket is limited to ~100
    # bytes) and reachable by the service user: no port to allocate, nothing on the network.
    socket_dir = Path(tempfile.mkdtemp(prefix="shakedown-tpl-"))
    socket_dir.chmod(0o755)
    if run_as:
        run_as.chown(socket_dir)
    conf = {"listen_addresses": "''", "unix_socket_directories": f"'{socket_dir}'",
            "fsync": "off", "dynamic_shared_memory_type": "mmap", **settings}
    original = (data / "postgresql.conf").read_text()
    (data / "postgresql.conf").write_text(
        original + "".join(f"{k} = {v}\n" for k, v in conf.items()))
    log = work / "build.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [binaries.tool("postgres"), "-D", str(data)], stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, cwd="/", start_new_session=True,
            user=run_as.uid if run_as else None, group=run_as.gid if run_as else None,
            extra_groups=[] if run_as else None, env={"LANG": "C.UTF-8", "PATH": "/usr/bin:/bin"})
    try:
        for database in ("postgres", "template1"):
            with _connect_when_up(socket_dir, database, server, log) as conn:
                create(conn, names)
    except psycopg.Error as exc:
        raise ShakedownError(
            f"creating the extensions {', '.join(names)} in a template failed: {exc}",
            checked=[f"CREATE EXTENSION in postgres and template1 of a copy of {base.data_dir}"],
            fix=["read the server's log below"], details=log.read_text()[-2000:]) from None
    finally:
        server.send_signal(signal.SIGINT)  # fast shutdown, with its checkpoint
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        shutil.rmtree(socket_dir, ignore_errors=True)
    if server.returncode != 0:
        raise ShakedownError(f"the template server with {', '.join(names)} did not stop cleanly",
                             checked=[str(log)], details=log.read_text()[-2000:])
    (data / "postgresql.conf").write_text(original)  # services append their own settings
    (data / "postmaster.opts").unlink(missing_ok=True)
    log.unlink()
    shutil.rmtree(target, ignore_errors=True)
    os.rename(work, target)


def _connect_when_up(socket_dir: Path, database: str, server: subprocess.Popen[bytes],
                     log: Path) -> psycopg.Connection[Any]:
    deadline = time.monotonic() + 30
    while True:
        try:
            return psycopg.connect(host=str(socket_dir), user="postgres", dbname=database,
                                   autocommit=True, connect_timeout=2)
        except psycopg.OperationalError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise ShakedownError(
                    "the template server for the extensions did not start",
                    checked=[f"postgres on {socket_dir}: exit {server.poll()}"],
                    fix=["read the server's log below"],
                    details=log.read_text()[-2000:]) from None
            time.sleep(0.01)
