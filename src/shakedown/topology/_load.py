"""Reading topology files: TOML parsing, overlay merging, schema validation with key paths,
cross-reference checks (dependencies, references, links, replicas) and cycle detection. Every
problem becomes one ``TopologyError`` naming the file and the key path, never a traceback."""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from types import UnionType
from typing import TYPE_CHECKING, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from ..errors import TopologyError, did_you_mean
from ..names import DEFAULT_FILE as DEFAULT_FILE
from ._base import ServiceSpec
from ._durations import Target
from ._models import KINDS, TopologyModel
from ._named import named_services
from ._names import check_names
from ._refs import Ref, find_refs

if TYPE_CHECKING:
    import networkx as nx

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
        return set(self._dependencies[name])

    @cached_property
    def _dependencies(self) -> dict[str, frozenset[str]]:
        return {name: _dependencies_of(name, spec) for name, spec in self.services.items()}

    def front_of(self, name: str) -> str | None:
        """The service that fronts ``name`` (its spec's ``fronts`` key names it), if any."""
        for other, spec in self.services.items():
            if spec.fronts is not None and getattr(spec, spec.fronts) == name:
                return other
        return None

    @cached_property
    def graph(self) -> nx.DiGraph[str]:
        """The dependency graph: an edge from each dependency to its dependent."""
        import networkx as nx

        graph: nx.DiGraph[str] = nx.DiGraph()
        graph.add_nodes_from(self.services)
        for name in self.services:
            graph.add_edges_from((dep, name) for dep in self.dependencies(name))
        return graph

    def start_order(self) -> list[str]:
        """Services sorted so that each comes after what it depends on (file order otherwise),
        in time linear in the graph (a loaded topology has no cycle)."""
        import networkx as nx

        position = {name: index for index, name in enumerate(self.services)}
        return list(nx.lexicographical_topological_sort(self.graph, key=position.__getitem__))

    def digest(self) -> str:
        """A hash of the validated content: equal for equal topologies, whatever the layout."""
        data = self.model.model_dump(mode="json", by_alias=True)
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]

    def resolve_path(self, relative: str) -> Path:
        path = Path(relative)
        return path if path.is_absolute() else self.base_dir / path


def _dependencies_of(name: str, spec: ServiceSpec) -> frozenset[str]:
    deps = set(spec.depends_on)
    deps.update(r.service for r in _service_refs(spec) if r.service and r.service != name)
    primary = getattr(spec, "replica_of", None)
    if primary:
        deps.add(primary)
    deps.update(service for service, _ in named_services(spec).values())
    return frozenset(deps)


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
    _check_text(merged, label)
    check_names(merged, label, (k for k, spec in KINDS.items() if spec.parts_named_after_service))
    _check_kinds(merged, label)
    try:
        model = TopologyModel.model_validate(merged)
    except ValidationError as exc:
        raise _validation_error(exc, merged, label) from None
    topology = Topology(model=model, paths=tuple(p.resolve() for p in path_list))
    _check_cross_references(topology, label, where)
    return topology


MAX_FILE_BYTES = 8 << 20
"""A topology is a few kilobytes; beyond this it is not one (a log, an image) and is refused
before being read whole."""


def _read_toml(path: Path) -> dict[str, Any]:
    """The file's TOML table; any file that is not a readable UTF-8 TOML text of sane size
    (a directory, binary bytes, another encoding, no permission, nesting without end) is one
    TopologyError naming the file."""
    text = _read_text(path)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TopologyError(
            f"{path}: not valid TOML: {exc}",
            checked=[f"{path.resolve()} parsed as TOML 1.0"],
            fix=["fix the syntax at the line and column named above"],
        ) from None
    except RecursionError:
        raise TopologyError(
            f"{path}: not valid TOML: arrays or tables nested too deeply to be a topology",
            checked=[f"{path.resolve()} parsed as TOML 1.0"],
            fix=["a topology nests a few levels: flatten the values"],
        ) from None


def _read_text(path: Path) -> str:
    def refuse(what: str, fix: str) -> TopologyError:
        return TopologyError(f"{path}: {what}", checked=[str(path.resolve())], fix=[fix])

    try:
        if path.is_dir():
            raise refuse("is a directory, not a topology file",
                         f"pass the file inside it: -f {path / DEFAULT_FILE}")
        if path.exists() and not path.is_file():
            # A FIFO would block the read forever, a device never ends.
            raise refuse("is not a regular file (a FIFO, socket or device)",
                         "pass a regular TOML file with -f PATH")
        with path.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise TopologyError(
            f"{path}: topology file not found",
            checked=[f"{path.resolve()}"],
            fix=[f"create {DEFAULT_FILE} (see README: Topology reference) or pass -f PATH"],
        ) from None
    except PermissionError:
        raise refuse("cannot be read: permission denied",
                     f"make it readable by this user (chmod u+r {path})") from None
    except OSError as exc:
        raise refuse(f"cannot be read: {exc.strerror or exc}",
                     "pass a regular TOML file with -f PATH") from None
    if len(data) > MAX_FILE_BYTES:
        raise refuse(f"larger than {MAX_FILE_BYTES >> 20} MiB: not a topology file",
                     "pass the topology file (a few kilobytes of TOML)")
    nul = data.find(0)
    if nul >= 0:
        raise refuse(f"binary data (a NUL byte at offset {nul}), not TOML text",
                     "pass the topology file, a UTF-8 TOML text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise refuse(f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})",
                     f"save the file as UTF-8 (e.g. iconv -t UTF-8 {path})") from None


def _check_text(raw: dict[str, Any], label: str) -> None:
    """Refuse a NUL character in any key or string (no command line, environment variable
    or file name can hold one). Iterative: a value may nest deeply."""
    stack: list[tuple[str, Any]] = [("", raw)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                where = f"{path}.{key}" if path else str(key)
                if "\0" in str(key):
                    raise _nul_error(label, where)
                stack.append((where, item))
        elif isinstance(value, list):
            stack.extend((f"{path}.{index}", item) for index, item in enumerate(value))
        elif isinstance(value, str) and "\0" in value:
            raise _nul_error(label, path)


def _nul_error(label: str, where: str) -> TopologyError:
    shown = where.replace(chr(0), "\\0")
    return TopologyError(
        f"{label}: {shown}: a NUL character (\\u0000) in a key or value",
        checked=["every key and string of the topology"],
        fix=["remove the \\u0000 escape: no command, variable or path can hold a NUL"],
    )


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
        if not isinstance(kind, str) or kind not in KINDS:
            raise TopologyError(
                f"{label}: services.{name}.kind: unknown kind {_short(kind)}"
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
            shown = "" if isinstance(given, dict | list) else f" (got {_short(given)})"
            lines.append(f"{path}: {_clean(error['msg'])}{shown}")
    first, *rest = lines
    more = [f"also: {line}" for line in rest[:MAX_ALSO]]
    if len(rest) > MAX_ALSO:
        more.append(f"... and {len(rest) - MAX_ALSO} more problems")
    return TopologyError(
        f"{label}: {first}",
        fix=["correct the key named above (README: Topology reference lists every key)"],
        details="\n".join(more),
    )


MAX_ALSO = 20
"""Further validation problems listed after the first (a generated topology can have
thousands)."""


def _short(value: object, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters: a value from the file may be megabytes."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _listing(names: Sequence[str], limit: int = 20) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


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
            checked=[f"services declared: {_listing(list(services))}"],
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
    graph = topology.graph
    import networkx as nx

    if nx.is_directed_acyclic_graph(graph):
        return
    # An edge runs from a dependency to its dependent; the message reads dependent -> dependency.
    edges = nx.find_cycle(graph)
    cycle = [edges[0][0], *(source for source, _ in reversed(edges))]
    shown = cycle if len(cycle) <= 12 else [*cycle[:6], f"... ({len(cycle) - 1} services)",
                                            *cycle[-3:]]
    raise TopologyError(
        f"{label}: dependency cycle: {' -> '.join(shown)}",
        checked=["depends_on, replica_of, etcd, backend and {service.attr} references"],
        fix=["remove one of these dependencies so that services can start in order"],
    )
