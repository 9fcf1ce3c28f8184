"""Toxic specifications: the catalogue of toxic types, their attributes, and the strict
validation that turns a JSON request into a ``ToxicSpec`` (or a ``FaultError`` that names the
toxic and the bad field). Pure data: nothing here touches a socket."""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Literal, TypedDict

from shakedown.errors import did_you_mean

from ._errors import BadRequestError, ConflictError

Stream = Literal["upstream", "downstream", "both"]
STREAMS: tuple[str, ...] = ("upstream", "downstream")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")


@dataclass(frozen=True)
class Attr:
    """One attribute of a toxic type: its kind, its lower bound and its default."""

    kind: Literal["int", "number"]
    minimum: float = 0.0
    exclusive_minimum: bool = False
    default: float | None = None  # None = required

    def describe(self, name: str) -> str:
        bound = f"> {self.minimum:g}" if self.exclusive_minimum else f">= {self.minimum:g}"
        need = "required" if self.default is None else f"default {self.default:g}"
        return f"{name} ({'integer' if self.kind == 'int' else 'number'} {bound}, {need})"


# The catalogue. ``down`` acts on the whole proxy (both directions) and has no attributes.
TOXIC_TYPES: dict[str, dict[str, Attr]] = {
    "latency": {"latency_ms": Attr("number"), "jitter_ms": Attr("number", default=0)},
    "bandwidth": {"rate_kbps": Attr("number", exclusive_minimum=True)},
    "timeout": {"timeout_ms": Attr("number", default=0)},
    "reset_peer": {"timeout_ms": Attr("number", default=0)},
    "slicer": {
        "average_size": Attr("int", minimum=1),
        "size_variation": Attr("int", default=0),
        "delay_us": Attr("number", default=0),
    },
    "limit_data": {"bytes": Attr("int")},
    "down": {},
}


class ToxicInfo(TypedDict):
    """A toxic as the control API shows it."""

    name: str
    type: str
    stream: str
    toxicity: float
    attributes: dict[str, float]
    sources: list[str]


@dataclass(frozen=True)
class ToxicSpec:
    """A validated toxic, as stored on a proxy."""

    name: str
    type: str
    stream: Stream
    toxicity: float
    attributes: Mapping[str, float] = field(default_factory=dict)
    sources: tuple[str, ...] = ()  # empty: every connection; else only those from these

    def info(self) -> ToxicInfo:
        return {
            "name": self.name,
            "type": self.type,
            "stream": self.stream,
            "toxicity": self.toxicity,
            "attributes": dict(self.attributes),
            "sources": list(self.sources),
        }

    def acts_on(self, source: str | None) -> bool:
        """Whether the toxic acts on a connection from ``source`` (None: not known)."""
        return not self.sources or source in self.sources

    def applies_to(self, direction: str) -> bool:
        return self.stream in (direction, "both")


def parse_toxic(proxy: str, payload: object, taken: Collection[str]) -> ToxicSpec:
    """Validate a toxic request (``{type, name?, stream?, toxicity?, attributes?,
    sources?}``) for
    ``proxy``; ``taken`` holds the toxic names already on it. Raises FaultError naming the
    toxic and the bad field; never returns a half-valid spec."""
    if not isinstance(payload, Mapping):
        raise _bad(proxy, "?", "the request body must be a JSON object", [_usage()])
    unknown = sorted(set(payload) - {"type", "name", "stream", "toxicity", "attributes",
                                     "sources"})
    toxic_type = payload.get("type")
    if not isinstance(toxic_type, str) or toxic_type not in TOXIC_TYPES:
        hint = did_you_mean(toxic_type, TOXIC_TYPES) if isinstance(toxic_type, str) else ""
        raise BadRequestError(
            f"toxic {toxic_type!r} on proxy {proxy!r}: unknown toxic type{hint}",
            checked=[f"known types: {', '.join(TOXIC_TYPES)}"],
            fix=["use one of the known toxic types"],
        )
    stream = _parse_stream(proxy, toxic_type, payload.get("stream", "downstream"))
    name = _parse_name(proxy, toxic_type, stream, payload.get("name"), taken)
    if unknown:
        raise _bad(proxy, name, f"unknown field(s) {', '.join(unknown)}", [_usage()])
    toxicity = _parse_toxicity(proxy, name, toxic_type, payload.get("toxicity", 1.0))
    attributes = _parse_attributes(proxy, name, toxic_type, payload.get("attributes", {}))
    sources = _parse_sources(proxy, name, toxic_type, payload.get("sources", []))
    return ToxicSpec(name, toxic_type, stream, toxicity, attributes, sources)


def _parse_sources(proxy: str, name: str, toxic_type: str, sources: object) -> tuple[str, ...]:
    usage = ["sources: a list of source labels (the connecting processes' SHAKEDOWN_SOURCE)"]
    if not isinstance(sources, list) or not all(isinstance(s, str) and s for s in sources):
        raise _bad(proxy, name, f"sources must be a list of names, got {sources!r}", usage)
    if sources and toxic_type == "down":
        # down closes the listener: it cannot apply to some connections only.
        raise _bad(proxy, name, "'down' acts on every connection: it takes no sources", usage)
    return tuple(sources)


def _parse_stream(proxy: str, toxic_type: str, stream: object) -> Stream:
    if toxic_type == "down":
        # down acts on the whole proxy: any stream is accepted and recorded as both.
        if stream in (*STREAMS, "both", None):
            return "both"
    elif stream == "upstream" or stream == "downstream":
        return stream
    raise _bad(
        proxy,
        toxic_type,
        f"stream must be 'upstream' (client to server) or 'downstream' (server to client), "
        f"got {stream!r}",
        ["stream: upstream | downstream"],
    )


def _parse_name(
    proxy: str, toxic_type: str, stream: str, name: object, taken: Collection[str]
) -> str:
    if name is None or name == "":
        # Toxiproxy's default name, so two toxics of one type need explicit names.
        name = toxic_type if stream == "both" else f"{toxic_type}_{stream}"
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise _bad(
            proxy, toxic_type, f"toxic name {name!r} is not valid",
            [f"pattern {NAME_PATTERN.pattern}"],
        )
    if name in taken:
        raise ConflictError(
            f"proxy {proxy!r} already has a toxic named {name!r}",
            checked=[f"toxics on {proxy!r}: {', '.join(sorted(taken))}"],
            fix=["give the new toxic another name", f"or remove {name!r} first"],
        )
    return name


def _parse_toxicity(proxy: str, name: str, toxic_type: str, value: object) -> float:
    toxicity = _as_number(value)
    if toxicity is None or not 0.0 <= toxicity <= 1.0:
        raise _bad(
            proxy, name, f"toxicity must be a number from 0 to 1, got {value!r}", ["toxicity"]
        )
    if toxic_type == "down" and toxicity != 1.0:
        # down closes the listener: it cannot apply to some connections only.
        raise _bad(proxy, name, "toxicity of 'down' must be 1", ["toxicity"])
    return toxicity


def _parse_attributes(
    proxy: str, name: str, toxic_type: str, attributes: object
) -> dict[str, float]:
    schema = TOXIC_TYPES[toxic_type]
    described = [f"attributes of {toxic_type}: " + (
        ", ".join(attr.describe(key) for key, attr in schema.items()) or "none"
    )]
    if not isinstance(attributes, Mapping):
        raise _bad(proxy, name, "attributes must be a JSON object", described)
    for key in attributes:
        if key not in schema:
            hint = did_you_mean(str(key), schema)
            raise _bad(proxy, name, f"unknown attribute {key!r}{hint}", described)
    parsed: dict[str, float] = {}
    for key, attr in schema.items():
        value = attributes.get(key, attr.default)
        if value is None:
            raise _bad(proxy, name, f"attribute {key!r} is required", described)
        parsed[key] = _check_value(proxy, name, key, attr, value, described)
    if toxic_type == "slicer" and parsed["size_variation"] >= parsed["average_size"]:
        raise _bad(
            proxy, name, "attribute 'size_variation' must be smaller than 'average_size'", described
        )
    return parsed


def _check_value(
    proxy: str, name: str, key: str, attr: Attr, value: object, described: list[str]
) -> float:
    number = _as_number(value)
    if number is None or (attr.kind == "int" and not isinstance(value, int)):
        kind = "an integer" if attr.kind == "int" else "a number"
        raise _bad(proxy, name, f"attribute {key!r} must be {kind}, got {value!r}", described)
    too_low = number <= attr.minimum if attr.exclusive_minimum else number < attr.minimum
    if too_low:
        bound = ">" if attr.exclusive_minimum else ">="
        raise _bad(
            proxy, name, f"attribute {key!r} must be {bound} {attr.minimum:g}, got {value!r}",
            described,
        )
    return int(number) if attr.kind == "int" else number


def _as_number(value: object) -> float | None:
    """The value as a float when it is a finite JSON number (not a boolean), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _bad(proxy: str, toxic: str, problem: str, checked: list[str]) -> BadRequestError:
    return BadRequestError(
        f"toxic {toxic!r} on proxy {proxy!r}: {problem}",
        checked=checked,
        fix=["correct the toxic request; nothing was changed"],
    )


def _usage() -> str:
    return "body: {type, name?, stream?, toxicity?, attributes?, sources?}"
