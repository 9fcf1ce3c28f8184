"""Service kinds, one module each, behind one base: ``Service`` (addresses, lifecycle,
persistence) and the optional capabilities ``Killable`` and ``Pausable``."""

from ..topology import ServiceSpec
from ._base import (
    LOOPBACK,
    InternalLink,
    Killable,
    Pausable,
    ProcessService,
    Service,
    ServiceContext,
)
from ._pgbin import PgBinaries, find_binaries
from .aws import AwsFaultable, AwsService
from .etcd import EtcdService
from .external import ExternalService
from .haproxy import HAProxyService
from .patroni import PatroniService
from .pgbouncer import PgBouncerService
from .postgres import PostgresService
from .process import ProcessKindService
from .redis import RedisService

SERVICE_CLASSES: dict[str, type[Service]] = {
    "postgres": PostgresService,
    "redis": RedisService,
    "process": ProcessKindService,
    "etcd": EtcdService,
    "postgres-ha": PatroniService,
    "haproxy": HAProxyService,
    "pgbouncer": PgBouncerService,
    "aws": AwsService,
    "external": ExternalService,
}


def create_service(spec: ServiceSpec, ctx: ServiceContext) -> Service:
    """An instance of the class that implements ``spec.kind``."""
    return SERVICE_CLASSES[spec.kind](spec, ctx)


__all__ = [
    "LOOPBACK",
    "SERVICE_CLASSES",
    "AwsFaultable",
    "AwsService",
    "EtcdService",
    "ExternalService",
    "HAProxyService",
    "InternalLink",
    "Killable",
    "PatroniService",
    "Pausable",
    "PgBinaries",
    "PgBouncerService",
    "PostgresService",
    "ProcessKindService",
    "ProcessService",
    "RedisService",
    "Service",
    "ServiceContext",
    "create_service",
    "find_binaries",
]
