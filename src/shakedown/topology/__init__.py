"""Topology: frozen models of services, links and targets, loaded and validated from
``shakedown.toml`` (and overlays), with references between services.
Each kind's spec is in ``specs/<kind>.py``; the kind table is built from them."""

from ._base import PostgresServerKeys, Scalar, ServiceSpec, Spec, Starter, seconds
from ._durations import Target, parse_duration, parse_target
from ._load import DEFAULT_FILE, Topology, load_topology
from ._models import KINDS, EnvironmentSettings, LinkSpec, TopologyModel
from ._refs import Ref, expand, expand_with, find_refs

__all__ = [
    "DEFAULT_FILE",
    "KINDS",
    "EnvironmentSettings",
    "LinkSpec",
    "PostgresServerKeys",
    "Ref",
    "Scalar",
    "ServiceSpec",
    "Spec",
    "Starter",
    "Target",
    "Topology",
    "TopologyModel",
    "expand",
    "expand_with",
    "find_refs",
    "load_topology",
    "parse_duration",
    "parse_target",
    "seconds",
]
