"""Services that a spec names in its own keys (``etcd = "dcs"``, ``backend = "db"``): a spec
class lists such keys in ``service_fields`` with the kinds each accepts. The loader checks the
name and the kind, and makes the named service a dependency."""

from __future__ import annotations

from ._base import ServiceSpec


def named_services(spec: ServiceSpec) -> dict[str, tuple[str, tuple[str, ...]]]:
    """``{key: (service, accepted kinds)}`` for every such key that is set, and the deeper
    ones the spec names itself (``routes.0.service``); no kinds means any kind."""
    flat = {key: (getattr(spec, key), kinds) for key, kinds in spec.service_fields.items()
            if getattr(spec, key, None)}
    return {**flat, **spec.service_refs()}
