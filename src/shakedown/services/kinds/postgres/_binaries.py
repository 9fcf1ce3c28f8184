"""Finding PostgreSQL's binaries and their version, and the initdb template cache: ``initdb``
runs once per (server version, initdb options) into the cache, under a file lock so that
concurrent runs share one; every service then copies the stopped template (~10x cheaper than
initdb). A random bootstrap password is set in each template; a service replaces it with its
own generated password the first time it is ready."""

from __future__ import annotations

import fcntl
import functools
import glob
import hashlib
import os
import secrets
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ....errors import MissingBinaryError, ServiceStartError, ShakedownError
from ....process import RunAs, cache_root

INSTALL_HINT = "apt-get install -y postgresql"
# 1 MB WAL segments instead of 16 MB: a template copy and a replica start move 15 MB less.
BASE_INITDB_OPTIONS = ("-U", "postgres", "--auth-local=trust", "--auth-host=scram-sha-256",
                       "-E", "UTF8", "--locale=C.UTF-8", "--no-sync", "--wal-segsize=1",
                       "--no-instructions")


@dataclass(frozen=True)
class PgBinaries:
    bin_dir: Path
    version: str  # e.g. "15.18"

    def tool(self, name: str) -> str:
        return str(self.bin_dir / name)

    @property
    def major(self) -> str:
        return self.version.split(".")[0]


def find_binaries(bin_dir: str | None) -> PgBinaries:
    """``bin_dir`` if given; else ``pg_config --bindir``; else the newest
    /usr/lib/postgresql/*/bin; else ``postgres`` on PATH."""
    candidates, searched = _candidate_dirs(bin_dir)
    for directory in candidates:
        if (directory / "postgres").is_file() and (directory / "initdb").is_file():
            return PgBinaries(bin_dir=directory, version=_version(str(directory / "postgres")))
    raise MissingBinaryError("postgres", kind="postgres", searched=searched, install=INSTALL_HINT)


def _candidate_dirs(bin_dir: str | None) -> tuple[list[Path], list[str]]:
    if bin_dir:
        return [Path(bin_dir)], [f"bin_dir = {bin_dir!r} (postgres and initdb in it)"]
    dirs: list[Path] = []
    searched: list[str] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        dirs.append(Path(out.stdout.strip()))
    searched.append(f"pg_config --bindir ({'found' if pg_config else 'pg_config not on PATH'})")
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                      key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit()
                      else 0, reverse=True)
    dirs.extend(Path(p) for p in versions)
    searched.append("/usr/lib/postgresql/*/bin")
    on_path = shutil.which("postgres")
    if on_path:
        dirs.append(Path(os.path.realpath(on_path)).parent)
    searched.append("postgres on PATH")
    return dirs, searched


@functools.cache
def _version(postgres: str) -> str:
    out = subprocess.run([postgres, "--version"], capture_output=True, text=True, check=False)
    # "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"
    parts = out.stdout.split()
    return parts[2] if len(parts) > 2 else out.stdout.strip()


@dataclass(frozen=True)
class Template:
    """A stopped, initialized data directory and the bootstrap password of its superuser."""

    data_dir: Path
    bootstrap_password: str
    key: str


def ensure_template(binaries: PgBinaries, options: Sequence[str], run_as: RunAs | None) -> Template:
    """The cached template for these binaries and initdb options, created if missing."""
    all_options = (*BASE_INITDB_OPTIONS, *options)
    key_source = "\0".join([str(binaries.bin_dir), binaries.version, *all_options])
    key = f"pg{binaries.major}-{hashlib.sha256(key_source.encode()).hexdigest()[:12]}"
    root = cache_root() / "templates"
    root.mkdir(parents=True, exist_ok=True)
    target = root / key
    with (root / f"{key}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a concurrent run waits for our initdb, then reuses it
        if not (target / "data" / "PG_VERSION").exists():
            _initdb(binaries, all_options, target, run_as)
    return Template(data_dir=target / "data",
                    bootstrap_password=(target / "bootstrap-password").read_text().strip(),
                    key=key)


def _initdb(binaries: PgBinaries, options: Sequence[str], target: Path,
            run_as: RunAs | None) -> None:
    work = target.with_name(target.name + ".building")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    password = secrets.token_urlsafe(24)
    pwfile = work / "pwfile"
    pwfile.write_text(password + "\n")
    if run_as:
        run_as.chown(work)
        run_as.chown(pwfile)
    command = [binaries.tool("initdb"), "-D", str(work / "data"), f"--pwfile={pwfile}", *options]
    result = subprocess.run(command, capture_output=True, text=True, check=False,
                            user=run_as.uid if run_as else None,
                            group=run_as.gid if run_as else None,
                            extra_groups=[] if run_as else None,
                            env={"PATH": os.environ.get("PATH", ""), "LANG": "C.UTF-8"})
    pwfile.unlink()
    if result.returncode != 0:
        shutil.rmtree(work, ignore_errors=True)
        raise ShakedownError(
            f"initdb failed with exit code {result.returncode}",
            checked=[" ".join(command)],
            fix=["check initdb_options in shakedown.toml", "read initdb's message below"],
            details=(result.stderr or result.stdout)[-2000:],
        )
    (work / "bootstrap-password").write_text(password)
    (work / "bootstrap-password").chmod(0o600)
    shutil.rmtree(target, ignore_errors=True)
    os.rename(work, target)


def run_sql_file(binaries: PgBinaries, *, service: str, host: str, port: int, password: str,
                 database: str, path: str, where: str = "") -> None:
    """Run an init file with psql (so pg_dump output and ``COPY ... FROM stdin`` work too),
    stopping at the first error, with flushed commits so that replicas see it all."""
    command = [binaries.tool("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", host,
               "-p", str(port), "-U", "postgres", "-d", database, "-f", path]
    result = subprocess.run(command, capture_output=True, text=True, check=False,
                            env={"PGPASSWORD": password, "PATH": "/usr/bin:/bin",
                                 "PGOPTIONS": "-c synchronous_commit=on"})
    if result.returncode != 0:
        raise ServiceStartError(
            f"service {service!r}: init file {path} failed",
            checked=[f"psql -v ON_ERROR_STOP=1 -d {database} -f {path}{where} "
                     f"-> exit {result.returncode}"],
            fix=["fix the SQL at the line psql names below",
                 "init files run once, against the service's first database"],
            details=(result.stderr or result.stdout)[-2000:],
        )
