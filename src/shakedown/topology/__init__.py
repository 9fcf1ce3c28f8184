"""Topology: frozen models of services, links and targets, loaded and validated from
``shakedown.toml`` (and overlays), with references between services."""

from ._durations import Target, parse_duration, parse_target
from ._load import DEFAULT_FILE, Topology, load_topology
from ._models import (
    KINDS,
    EnvironmentSettings,
    LinkSpec,
    PostgresSpec,
    ProcessSpec,
    ReadySpec,
    RedisSpec,
    ServiceSpec,
)
from ._refs import Ref, expand, expand_with, find_refs

__all__ = [
    "DEFAULT_FILE",
    "KINDS",
    "EnvironmentSettings",
    "LinkSpec",
    "PostgresSpec",
    "ProcessSpec",
    "ReadySpec",
    "RedisSpec",
    "Ref",
    "ServiceSpec",
    "Target",
    "Topology",
    "expand",
    "expand_with",
    "find_refs",
    "load_topology",
    "parse_duration",
    "parse_target",
]
