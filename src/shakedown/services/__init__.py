"""Service kinds, one module each, behind one base: ``Service`` (addresses, lifecycle,
persistence) and the optional capabilities ``Killable`` and ``Pausable``."""

from ..topology import ServiceSpec
from ._base import LOOPBACK, Killable, Pausable, ProcessService, Service, ServiceContext
from ._pgbin import PgBinaries, find_binaries
from .postgres import PostgresService
from .process import ProcessKindService
from .redis import RedisService

SERVICE_CLASSES: dict[str, type[Service]] = {
    "postgres": PostgresService,
    "redis": RedisService,
    "process": ProcessKindService,
}


def create_service(spec: ServiceSpec, ctx: ServiceContext) -> Service:
    """An instance of the class that implements ``spec.kind``."""
    return SERVICE_CLASSES[spec.kind](spec, ctx)


__all__ = [
    "LOOPBACK",
    "SERVICE_CLASSES",
    "Killable",
    "Pausable",
    "PgBinaries",
    "PostgresService",
    "ProcessKindService",
    "ProcessService",
    "RedisService",
    "Service",
    "ServiceContext",
    "create_service",
    "find_binaries",
]
