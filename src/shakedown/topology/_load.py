"""Reading topology files: TOML parsing, overlay merging, schema validation with key paths,
cross-reference checks (dependencies, references, links, replicas) and cycle detection. Every
problem becomes one ``TopologyError`` naming the file and the key path, never a traceback."""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import UnionType
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from ..errors import TopologyError, did_you_mean
from ..names import DEFAULT_FILE as DEFAULT_FILE
from ._base import ServiceSpec
from ._durations import Target
from ._models import KINDS, TopologyModel
from ._named import named_services
from ._refs import Ref, find_refs

OWN_ONLY = ("python",)
"""References a service may make to itself only: ``{python}`` is the interpreter running
shakedown, so a user's Python process gets the same installed packages as the tests."""


@dataclass(frozen=True)
class Topology:
    """A validated topology: services in file order, links, targets and settings."""

    model: TopologyModel
    paths: tuple[Path, ...]

    @property
    def path(self) -> Path:
        return self.paths[0]

    @property
    def base_dir(self) -> Path:
        return self.paths[0].parent

    @property
    def services(self) -> Mapping[str, ServiceSpec]:
        return self.model.services

    @property
    def targets(self) -> dict[str, Target]:
        return self.model.parsed_targets()

    def dependencies(self, name: str) -> set[str]:
        """What ``name`` waits for: declared ``depends_on``, references and replica_of."""
        spec = self.services[name]
        deps = set(spec.depends_on)
        deps.update(r.service for r in _service_refs(spec) if r.service and r.service != name)
        primary = getattr(spec, "replica_of", None)
        if primary:
            deps.add(primary)
        deps.update(service for service, _ in named_services(spec).values())
        return deps

    def front_of(self, name: str) -> str | None:
        """The service that fronts ``name`` (its spec's ``fronts`` key names it), if any."""
        for other, spec in self.services.items():
            if spec.fronts is not None and getattr(spec, spec.fronts) == name:
                return other
        return None

    def start_order(self) -> list[str]:
        """Services sorted so that each comes after what it depends on (file order otherwise)."""
        order: list[str] = []
        placed: set[str] = set()
        while len(order) < len(self.services):
            for name in self.services:
                if name not in placed and self.dependencies(name) <= placed:
                    order.append(name)
                    placed.add(name)
        return order

    def digest(self) -> str:
        """A hash of the validated content: equal for equal topologies, whatever the layout."""
        data = self.model.model_dump(mode="json", by_alias=True)
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]

    def resolve_path(self, relative: str) -> Path:
        path = Path(relative)
        return path if path.is_absolute() else self.base_dir / path


def load_topology(paths: str | Path | Sequence[str | Path]) -> Topology:
    """Read one topology file, or a base file and overlays merged in order."""
    path_list = [Path(p) for p in ([paths] if isinstance(paths, str | Path) else paths)]
    if not path_list:
        raise TopologyError("no topology file given", fix=[f"pass -f {DEFAULT_FILE}"])
    merged: dict[str, Any] = {}
    for path in path_list:
        merged = _merge(merged, _read_toml(path))
    where = path_list[-1] if len(path_list) > 1 else path_list[0]
    label = " + ".join(str(p) for p in path_list)
    _check_kinds(merged, label)
    try:
        model = TopologyModel.model_validate(merged)
    except ValidationError as exc:
        raise _validation_error(exc, merged, label) from None
    topology = Topology(model=model, paths=tuple(p.resolve() for p in path_list))
    _check_cross_references(topology, label, where)
    return topology


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise TopologyError(
            f"{path}: topology file not found",
            checked=[f"{path.resolve()}"],
            fix=[f"create {DEFAULT_FILE} (see README: Topology reference) or pass -f PATH"],
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise TopologyError(
            f"{path}: not valid TOML: {exc}",
            fix=["fix the syntax at the line and column named above"],
        ) from None


def _merge(base: dict[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge ``overlay`` into ``base``; a service whose kind changes is replaced whole."""
    result = dict(base)
    for key, value in overlay.items():
        old = result.get(key)
        kind_changed = (
            isinstance(old, dict) and isinstance(value, dict)
            and "kind" in value and value.get("kind") != old.get("kind")
        )
        if isinstance(old, dict) and isinstance(value, dict) and not kind_changed:
            result[key] = _merge(old, value)
        else:
            result[key] = value
    return result


def _check_kinds(raw: dict[str, Any], label: str) -> None:
    services = raw.get("services")
    if not isinstance(services, dict):
        return  # pydantic reports the missing or mistyped table
    for name, table in services.items():
        if not isinstance(table, dict):
            continue
        kind = table.get("kind")
        if kind is None:
            raise TopologyError(
                f"{label}: services.{name}: missing key 'kind'",
                fix=[f"add kind = one of {', '.join(sorted(KINDS))}"],
            )
        if kind not in KINDS:
            raise TopologyError(
                f"{label}: services.{name}.kind: unknown kind {kind!r}"
                f"{did_you_mean(str(kind), KINDS)}",
                checked=[f"known kinds: {', '.join(sorted(KINDS))}"],
                fix=["use one of the known kinds"],
            )


def _validation_error(exc: ValidationError, raw: dict[str, Any], label: str) -> TopologyError:
    lines = []
    for error in exc.errors():
        loc = _strip_union_tags(error["loc"], raw)
        path = ".".join(str(part) for part in loc) or "(top level)"
        if error["type"] == "extra_forbidden":
            key = str(loc[-1])
            hint = did_you_mean(key, _fields_at(loc[:-1], raw)) or _other_kinds(key, loc)
            lines.append(f"{path}: unknown key {key!r}{hint}")
        elif error["type"] == "missing":
            lines.append(f"{path}: missing required key")
        else:
            given = error.get("input")
            shown = "" if isinstance(given, dict | list) else f" (got {given!r})"
            lines.append(f"{path}: {_clean(error['msg'])}{shown}")
    first, *rest = lines
    return TopologyError(
        f"{label}: {first}",
        fix=["correct the key named above (README: Topology reference lists every key)"],
        details="\n".join(f"also: {line}" for line in rest),
    )


def _other_kinds(key: str, loc: tuple[int | str, ...]) -> str:
    """' (a key of kind citus)' when a service's unknown key belongs to other kinds."""
    if len(loc) != 3 or loc[0] != "services":
        return ""
    owners = sorted(kind for kind, model in KINDS.items() if key in model.model_fields)
    if not owners:
        return ""
    return f" (a key of kind {' or '.join(repr(k) for k in owners)}, not of this one)"


def _clean(message: str) -> str:
    # pydantic speaks of Python types; the user wrote TOML.
    return (
        message.removeprefix("Value error, ")
        .replace("a valid tuple", "a list (e.g. [\"a\", \"b\"])")
        .replace("a valid dictionary", "a table (e.g. { key = \"value\" })")
    )


def _strip_union_tags(loc: tuple[int | str, ...], raw: dict[str, Any]) -> tuple[int | str, ...]:
    """pydantic inserts the discriminator value after a service name; drop it from paths."""
    if len(loc) >= 3 and loc[0] == "services":
        table = raw.get("services", {}).get(loc[1], {})
        if isinstance(table, dict) and loc[2] == table.get("kind"):
            return loc[:2] + loc[3:]
    return loc


def _fields_at(loc: tuple[int | str, ...], raw: dict[str, Any]) -> list[str]:
    """The keys allowed at ``loc``, for a 'did you mean' hint."""
    if len(loc) >= 2 and loc[0] == "services":
        kind = raw.get("services", {}).get(loc[1], {}).get("kind", "")
        model: Any = KINDS.get(kind, ServiceSpec)
        rest = loc[2:]
    else:
        model, rest = TopologyModel, loc
    keyed = False  # True when the next part is a key of a dict of models
    for part in rest:
        if keyed:
            keyed = False
            continue
        field = model.model_fields.get(part) if _is_model(model) else None
        if field is None:
            return []
        model, keyed = _model_in(field.annotation)
        if model is None:
            return []
    if not _is_model(model) or keyed:
        return []
    return [f.alias or name for name, f in model.model_fields.items()]


def _is_model(value: Any) -> bool:
    return isinstance(value, type) and issubclass(value, BaseModel)


def _model_in(annotation: Any) -> tuple[Any, bool]:
    """The model class inside ``Model``, ``Model | None`` or ``dict[str, Model]`` (keyed)."""
    if _is_model(annotation):
        return annotation, False
    origin = get_origin(annotation)
    if origin in (Union, UnionType):
        return next((a for a in get_args(annotation) if _is_model(a)), None), False
    if origin is dict:
        value = get_args(annotation)[1]
        return (value, True) if _is_model(value) else (None, False)
    return None, False


def _service_refs(spec: ServiceSpec) -> Iterator[Ref]:
    for text in spec.templated_strings():
        yield from find_refs(text)


def _check_cross_references(topology: Topology, label: str, where: Path) -> None:
    services = topology.services
    for name, spec in services.items():
        for dep in spec.depends_on:
            _require_service(dep, services, label, f"services.{name}.depends_on")
        primary = getattr(spec, "replica_of", None)
        if primary is not None:
            _require_service(primary, services, label, f"services.{name}.replica_of")
            if services[primary].kind != "postgres":
                raise TopologyError(
                    f"{label}: services.{name}.replica_of: {primary!r} is a "
                    f"{services[primary].kind} service, not postgres",
                    fix=["point replica_of at a postgres service"],
                )
        for key, (named, kinds) in named_services(spec).items():
            _require_service(named, services, label, f"services.{name}.{key}")
            if kinds and services[named].kind not in kinds:
                raise TopologyError(
                    f"{label}: services.{name}.{key}: {named!r} is a {services[named].kind} "
                    f"service, not {' or '.join(kinds)}",
                    fix=[f"point {key} at a {' or '.join(kinds)} service"],
                )
        for ref in _service_refs(spec):
            _check_ref(ref, name, spec, services, label)
    for link_name, link in topology.model.links.items():
        _require_service(link.source, services, label, f"links.{link_name}.from")
        _require_service(link.to, services, label, f"links.{link_name}.to")
    _check_cycles(topology, label)


def _require_service(
    name: str, services: Mapping[str, ServiceSpec], label: str, key: str
) -> None:
    if name not in services:
        raise TopologyError(
            f"{label}: {key}: no service named {name!r}{did_you_mean(name, services)}",
            checked=[f"services declared: {', '.join(services)}"],
            fix=[f"declare [services.{name}] or correct the name"],
        )


def _check_ref(
    ref: Ref, owner: str, spec: ServiceSpec, services: Mapping[str, ServiceSpec], label: str
) -> None:
    key = f"services.{owner}"
    if ref.service is None:
        if ref.attr not in (*spec.exports, *OWN_ONLY):
            raise TopologyError(
                f"{label}: {key}: unknown reference {{{ref.attr}}}"
                f"{did_you_mean(ref.attr, spec.exports)}",
                checked=[f"a service's own attributes: {', '.join((*spec.exports, *OWN_ONLY))}"],
                fix=["use {port} for the service's own port, {NAME.url} for another's URL",
                     "write {{ and }} for literal braces"],
            )
        return
    _require_service(ref.service, services, label, f"{key} reference {{{ref.service}.{ref.attr}}}")
    exports = services[ref.service].exports
    if ref.attr not in exports:
        raise TopologyError(
            f"{label}: {key}: {{{ref.service}.{ref.attr}}}: a {services[ref.service].kind} "
            f"service has no attribute {ref.attr!r}{did_you_mean(ref.attr, exports)}",
            checked=[f"attributes of {ref.service}: {', '.join(exports)}"],
            fix=["reference one of the attributes listed"],
        )


def _check_cycles(topology: Topology, label: str) -> None:
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(name: str) -> None:
        state[name] = 1
        path.append(name)
        for dep in sorted(topology.dependencies(name)):
            if state.get(dep) == 1:
                cycle = [*path[path.index(dep):], dep]
                raise TopologyError(
                    f"{label}: dependency cycle: {' -> '.join(cycle)}",
                    checked=["depends_on, replica_of, etcd, backend and {service.attr} references"],
                    fix=["remove one of these dependencies so that services can start in order"],
                )
            if state.get(dep) is None:
                visit(dep)
        path.pop()
        state[name] = 2

    for name in topology.services:
        if name not in state:
            visit(name)
