"""Service kinds, one module (or family package) each under ``kinds/``, behind one base
(``_base``): every kind's class registers itself for its kind (``class RedisService(
ServerService, kind="redis")``), so the kind table is ``Service.registry``, filled by importing
the modules found in ``kinds/`` — nothing lists the kinds by hand. Optional abilities are
protocols (``_protocols``); kinds never import each other.

``from shakedown.services import RedisService`` works for every kind's class (looked up by
name in the registry)."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from ..topology import ServiceSpec
from ._base import (
    LOOPBACK,
    Binary,
    DoctorLine,
    InternalLink,
    ServerService,
    Service,
    ServiceContext,
    SpawnedService,
    Volume,
)
from ._protocols import (
    AwsFaultable,
    ClusterMember,
    Front,
    HasLogParts,
    HasMembers,
    HasPrimary,
    HasProcesses,
    Killable,
    Pausable,
    ResetsPerTest,
    Restartable,
    RoutesTasks,
    Supervised,
    TaskTarget,
)


def _import_kinds() -> dict[str, type[Service]]:
    kinds = importlib.import_module(f"{__name__}.kinds")
    for module_info in sorted(pkgutil.iter_modules(kinds.__path__), key=lambda m: m.name):
        if not module_info.name.startswith("_"):
            importlib.import_module(f"{kinds.__name__}.{module_info.name}")
    return Service.registry


SERVICE_CLASSES: dict[str, type[Service]] = _import_kinds()
"""Every kind's class, by kind name."""


def create_service(spec: ServiceSpec, ctx: ServiceContext) -> Service:
    """An instance of the class that implements ``spec.kind``."""
    return SERVICE_CLASSES[spec.kind].class_for(spec)(spec, ctx)


def doctor_lines() -> list[DoctorLine]:
    """What every kind says about this machine, for ``shakedown doctor``."""
    return [line for cls in SERVICE_CLASSES.values() for line in cls.doctor()]


def __getattr__(name: str) -> Any:
    for cls in SERVICE_CLASSES.values():
        if cls.__name__ == name:
            return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "LOOPBACK",
    "SERVICE_CLASSES",
    "AwsFaultable",
    "Binary",
    "ClusterMember",
    "DoctorLine",
    "Front",
    "HasLogParts",
    "HasMembers",
    "HasPrimary",
    "HasProcesses",
    "InternalLink",
    "Killable",
    "Pausable",
    "ResetsPerTest",
    "Restartable",
    "RoutesTasks",
    "ServerService",
    "Service",
    "ServiceContext",
    "SpawnedService",
    "Supervised",
    "TaskTarget",
    "Volume",
    "create_service",
    "doctor_lines",
]
