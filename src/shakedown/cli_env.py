"""What ``shakedown env`` hands to clients: every attribute of every service as variables (the
naming rule below), libpq's ``PG*`` for one chosen PostgreSQL service (``--libpq``), the AWS
SDK's variables for one emulator (``--aws``), a patronictl config file per Patroni cluster,
in shell, dotenv or JSON form, and the one list of variable names that well-known tools read by
themselves, with the warning given when a generated name matches one (``up`` and ``env``).

Naming rule: ``PREFIX`` + the service name upper-cased with ``-`` and ``.`` as ``_`` + ``_`` +
the export upper-cased: service ``kv``'s ``endpoints`` is ``KV_ENDPOINTS``, with ``--prefix SD_``
``SD_KV_ENDPOINTS``. Only ``--libpq``, ``--aws`` and ``PATRONICTL_CONFIG_FILE`` emit a tool's own
names, because the user asked for them.

Reads the state file only (through ``cli_state``): no services are built, so this answers in
the time Python takes to start."""

from __future__ import annotations

import json
import os
import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from ._cli_support import BadOption, err_console, friendly
from .cli_state import EnvironmentView, ServiceView
from .errors import did_you_mean
from .store import StateStore

TOOL_VARIABLES: tuple[tuple[str, str], ...] = (
    # (name, or prefix ending in "*"; who reads it without being told)
    ("DCS_URL", "patronictl (its --dcs-url)"),
    ("PATRONI_*", "Patroni and patronictl (configuration overrides)"),
    ("PATRONICTL_*", "patronictl"),
    ("PGHOST", "libpq (psql, pgbench, psycopg...)"), ("PGHOSTADDR", "libpq"),
    ("PGPORT", "libpq"), ("PGUSER", "libpq"), ("PGPASSWORD", "libpq"),
    ("PGDATABASE", "libpq"), ("PGPASSFILE", "libpq"), ("PGSERVICE", "libpq"),
    ("PGSERVICEFILE", "libpq"), ("PGOPTIONS", "libpq"), ("PGAPPNAME", "libpq"),
    ("PGSSLMODE", "libpq"), ("PGCONNECT_TIMEOUT", "libpq"),
    ("PGTARGETSESSIONATTRS", "libpq"), ("PGDATA", "PostgreSQL's tools (pg_ctl, initdb)"),
    ("AWS_*", "boto3, the AWS CLI and the AWS SDKs"),
    ("BOTO_*", "boto"),
    ("ETCDCTL_*", "etcdctl (a flag per variable)"),
    ("ETCD_*", "etcd (a flag per variable; it warns about unknown ones)"),
    ("REDISCLI_*", "redis-cli (REDISCLI_AUTH is its password)"),
    ("REDIS_URL", "redis clients, Celery, Sidekiq and most frameworks"),
    ("DATABASE_URL", "Django, Rails, SQLAlchemy-based and Heroku-style apps"),
    ("SQLALCHEMY_DATABASE_URI", "Flask-SQLAlchemy"),
    ("CELERY_BROKER_URL", "Celery"),
    ("HTTP_PROXY", "curl, requests, httpx"), ("HTTPS_PROXY", "curl, requests, httpx"),
    ("NO_PROXY", "curl, requests, httpx"), ("ALL_PROXY", "curl"),
    ("SHAKEDOWN_*", "shakedown itself"),
)
"""The one list of names a known tool reads from the environment. A generated name on it (a
service called ``dcs`` exports ``DCS_URL``, which patronictl takes for its DCS) gets a warning."""

FORMATS = ("shell", "dotenv", "json")
_NAME = re.compile(r"[^A-Za-z0-9_]")
_BARE = re.compile(r"[A-Za-z0-9_./:@,+=%-]*")


def variable_name(prefix: str, service: str, attribute: str) -> str:
    """The naming rule: ``PREFIX`` + ``SERVICE`` + ``_`` + ``ATTRIBUTE``, upper-cased, every
    character a shell name cannot hold as ``_``."""
    return _NAME.sub("_", f"{prefix}{service}_{attribute}").upper()


def tool_reading(name: str) -> str | None:
    """Which tool reads ``name`` by itself, or None."""
    for pattern, tool in TOOL_VARIABLES:
        if name == pattern or (pattern.endswith("*") and name.startswith(pattern[:-1])):
            return tool
    return None


def service_variables(prefix: str, service: str, exports: Mapping[str, str]) -> dict[str, str]:
    return {variable_name(prefix, service, key): value for key, value in exports.items()}


def clash_warnings(prefix: str, exports: Mapping[str, Mapping[str, str]]) -> list[str]:
    """One line per service whose generated names a known tool reads (``exports``: service →
    exports)."""
    lines = []
    for service, attrs in exports.items():
        hits: dict[str, list[str]] = {}
        for name in service_variables(prefix, service, attrs):
            tool = tool_reading(name)
            if tool is not None:
                hits.setdefault(tool, []).append(name)
        for tool, names in hits.items():
            lines.append(f"service {service!r} exports {', '.join(names)}: names that {tool} "
                         "read(s) by themselves; rename the service or use "
                         "`shakedown env --prefix SD_`")
    return lines


@dataclass
class EnvOutput:
    """What ``env`` prints and ``status --json`` carries."""

    name: str
    env_id: str
    variables: dict[str, str] = field(default_factory=dict)
    services: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"environment": self.name, "env_id": self.env_id, "variables": self.variables,
                "services": self.services, "notes": self.notes, "warnings": self.warnings}


@dataclass(frozen=True)
class EnvOptions:
    prefix: str = ""
    libpq: str | None = None
    aws: str | None = None
    patronictl: str | None = None


def collect(view: EnvironmentView, state_root: Path, options: EnvOptions) -> EnvOutput:
    """Every service's variables, the chosen tools' variables and the files clients need."""
    _check_prefix(options.prefix)
    out = EnvOutput(name=view.name, env_id=view.env_id)
    for service in view.services.values():
        exports = {"url": service.url, **service.exports} if service.url else service.exports
        variables = service_variables(options.prefix, service.name, exports)
        entry: dict[str, Any] = {"kind": service.kind, "url": service.url, "exports": exports}
        if service.kind == "postgres-ha" and "scope" in exports:
            config = _patronictl_config(view, service, state_root)
            entry["patronictl_config"] = str(config)
            variables[variable_name(options.prefix, service.name, "patronictl_config")] = \
                str(config)
        entry["variables"] = variables
        out.services[service.name] = entry
        out.variables.update(variables)
    out.warnings = clash_warnings(options.prefix, {s: e["exports"]
                                                   for s, e in out.services.items()})
    out.notes = _shared_addresses(view)
    out.variables.update(_chosen_tools(view, out, options))
    return out


def _check_prefix(prefix: str) -> None:
    if prefix and (_NAME.search(prefix) or prefix[0].isdigit()):
        raise BadOption(f"--prefix {prefix!r} cannot start a shell variable name",
                             checked=["letters, digits and _, not starting with a digit"],
                             fix=["e.g. --prefix SD_"])


def _chosen_tools(view: EnvironmentView, out: EnvOutput, options: EnvOptions) -> dict[str, str]:
    chosen: dict[str, str] = {}
    if options.libpq:
        chosen.update(libpq_variables(view, options.libpq))
    if options.aws:
        chosen.update(aws_variables(_named(view, "--aws", options.aws)))
    patroni = [s for s, e in out.services.items() if "patronictl_config" in e]
    pick = options.patronictl or (patroni[0] if len(patroni) == 1 else None)
    if pick is not None:
        if pick not in patroni:
            raise _not_a(_named(view, "--patronictl", pick), "--patronictl",
                         "a postgres-ha service", patroni)
        chosen["PATRONICTL_CONFIG_FILE"] = out.services[pick]["patronictl_config"]
    return chosen


def _named(view: EnvironmentView, option: str, name: str) -> ServiceView:
    if name not in view.services:
        raise BadOption(f"{option} {name}: no service named {name!r} in environment "
                        f"{view.name!r}{did_you_mean(name, view.services)}",
                        checked=[f"services: {', '.join(view.services)}"],
                        fix=["name one of the services listed"])
    return view.services[name]


def _not_a(service: ServiceView, option: str, what: str, fits: Iterable[str]) -> BadOption:
    fitting = ", ".join(fits) or "none in this environment"
    return BadOption(f"{option} {service.name}: service {service.name!r} ({service.kind}) "
                          f"is not {what}",
                          checked=[f"its exports: {', '.join(service.exports) or 'none'}"],
                          fix=[f"name one that is: {fitting}"])


def libpq_variables(view: EnvironmentView, choice: str) -> dict[str, str]:
    """``PGHOST`` ... ``PGDATABASE`` from a PostgreSQL URL: ``SERVICE`` (its url) or
    ``SERVICE.ATTR`` (e.g. ``lb.replica_url``), so that bare ``psql`` connects there."""
    name, _, attribute = choice.partition(".")
    service = _named(view, "--libpq", name)
    url = service.exports.get(attribute or "url", service.url if not attribute else "")
    fits = [s.name for s in view.services.values() if s.url.startswith("postgresql://")]
    if not url.startswith(("postgresql://", "postgres://")):
        raise _not_a(service, "--libpq", "reached with a postgresql:// URL" +
                     (f" in {attribute!r}" if attribute else ""), fits)
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(url)
    found = {"PGHOST": parts.hostname or "", "PGPORT": str(parts.port or ""),
             "PGUSER": unquote(parts.username or ""), "PGPASSWORD": unquote(parts.password or ""),
             "PGDATABASE": unquote(parts.path.lstrip("/"))}
    return {key: value for key, value in found.items() if value}


def aws_variables(service: ServiceView) -> dict[str, str]:
    """What boto3, the AWS CLI and the SDKs read to talk to the emulator instead of AWS."""
    exports = service.exports
    if "endpoint" not in exports or "region" not in exports:
        raise _not_a(service, "--aws", "an aws service", [])
    return {"AWS_ENDPOINT_URL": exports["endpoint"], "AWS_REGION": exports["region"],
            "AWS_DEFAULT_REGION": exports["region"],
            "AWS_ACCESS_KEY_ID": exports.get("access_key_id", ""),
            "AWS_SECRET_ACCESS_KEY": exports.get("secret_access_key", "")}


def _patronictl_config(view: EnvironmentView, service: ServiceView, state_root: Path) -> Path:
    """``patronictl-SERVICE.yml`` in the environment's directory, owned by and readable only by
    whoever runs ``env`` (the members' patroni.yml is the service user's alone). JSON is YAML,
    so no YAML library is imported. The DCS is the etcd service's own address, not a link's:
    a fault on the cluster's links should not blind the operator's patronictl."""
    etcd = view.services.get(str(service.spec.get("etcd", "")))
    hosts = etcd.exports.get("endpoints", "").split(",") if etcd is not None else []
    config = {"scope": service.exports["scope"],
              "namespace": service.exports.get("namespace", "/service/"),
              "etcd3": {"hosts": [h.split("://")[-1] for h in hosts if h], "protocol": "http"}}
    path = StateStore(state_root).env(view.name).client_file(f"patronictl-{service.name}.yml")
    text = json.dumps(config, indent=2) + "\n"
    if not path.exists() or path.read_text() != text:
        tmp = path.with_suffix(".tmp")
        tmp.touch(mode=0o600)
        tmp.chmod(0o600)
        tmp.write_text(text)
        os.replace(tmp, path)
    return path


def _shared_addresses(view: EnvironmentView) -> list[str]:
    """Services reached at the same address: a postgres-ha cluster fronted by HAProxy has the
    HAProxy's URL, which ``env`` should say rather than leave the user to guess."""
    by_address: dict[str, list[str]] = {}
    for service in view.services.values():
        host, port = service.exports.get("host"), service.exports.get("port")
        if host and port:
            by_address.setdefault(f"{host}:{port}", []).append(service.name)
    return [f"{' and '.join(names)} are reached at the same address ({address})"
            for address, names in by_address.items() if len(names) > 1]


def render(out: EnvOutput, form: str) -> str:
    """The variables as ``export`` lines (shell), ``NAME=value`` lines (dotenv) or JSON."""
    if form == "json":
        return json.dumps(out.as_json(), indent=2)
    lines = [f"# {note}" for note in out.notes]
    for name, value in out.variables.items():
        line = f"{name}={_dotenv_quote(value)}" if form == "dotenv" \
            else f"export {name}={shlex.quote(value)}"
        lines.append(line)
    return "\n".join(lines)


def _dotenv_quote(value: str) -> str:
    """Bare when safe; single quotes (literal in python-dotenv and docker compose) else;
    double quotes with escapes for a value holding a single quote."""
    if _BARE.fullmatch(value):
        return value
    if "'" not in value:
        return f"'{value}'"
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')  # python-dotenv leaves \$ as is
    return f'"{escaped}"'


def status_data(view: EnvironmentView, state_root: Path) -> dict[str, Any]:
    """``status --json``: env's data (unmasked: it is for scripts) plus each service's state,
    pids and restarts."""
    from .cli_state import uptime

    data = collect(view, state_root, EnvOptions()).as_json()
    for name, entry in data["services"].items():
        service = view.services[name]
        pids = service.pids
        entry.update(state=service.status(), pids=pids, restarts=service.restarts(),
                     uptime=uptime(pids[0]) if pids else None)
    return data


def warn(lines: Iterable[str]) -> None:
    """Clash warnings on stderr (stdout stays fit for ``eval``)."""
    for line in lines:
        err_console.print(f"[yellow]warning:[/] {line}", markup=True, highlight=False,
                          soft_wrap=True)


def register(main: click.Group) -> None:
    """Add ``env`` to the ``shakedown`` command."""
    from .cli import _state_root, file_option, name_option

    @main.command("env")
    @file_option
    @name_option
    @click.option("--format", "form", type=click.Choice(FORMATS), default="shell",
                  show_default=True, help="shell: export lines for eval; dotenv: NAME=value "
                  "for .env readers; json: for scripts.")
    @click.option("--prefix", default="", help="Put before every generated name, e.g. SD_.")
    @click.option("--libpq", metavar="SERVICE[.ATTR]", default=None,
                  help="Also PGHOST/PGPORT/PGUSER/PGPASSWORD/PGDATABASE for this service's "
                  "URL (or its ATTR, e.g. lb.replica_url): bare psql connects there.")
    @click.option("--aws", metavar="SERVICE", default=None,
                  help="Also AWS_ENDPOINT_URL, AWS_REGION, AWS_DEFAULT_REGION and the keys "
                  "of this aws service, for boto3 and the AWS CLI.")
    @click.option("--patronictl", metavar="SERVICE", default=None,
                  help="The postgres-ha service PATRONICTL_CONFIG_FILE points at (default: "
                  "the only one).")
    @friendly
    def env_command(files: tuple[str, ...], name: str, form: str, prefix: str,
                    libpq: str | None, aws: str | None, patronictl: str | None) -> None:
        """Print every service's attributes as variables: `eval "$(shakedown env)"`."""
        root = _state_root(files)
        view = EnvironmentView.load(name, root)
        out = collect(view, root, EnvOptions(prefix=prefix, libpq=libpq, aws=aws,
                                             patronictl=patronictl))
        warn(out.warnings)
        click.echo(render(out, form))
