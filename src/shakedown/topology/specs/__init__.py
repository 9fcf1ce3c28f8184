"""One spec module per service kind. The kind table and the discriminated union of the
topology's ``services`` are built from the modules found here, so adding a kind means adding its
module: nothing is listed by hand. A kind's spec is the ``ServiceSpec`` subclass its module
defines whose ``kind`` is a literal (``kind: Literal["redis"] = "redis"``)."""

from __future__ import annotations

import importlib
import pkgutil
from typing import TYPE_CHECKING, Annotated, Union

from pydantic import Field

from .._base import ServiceSpec


def _discover() -> dict[str, type[ServiceSpec]]:
    kinds: dict[str, type[ServiceSpec]] = {}
    for module_info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if module_info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        for value in vars(module).values():
            if (isinstance(value, type) and issubclass(value, ServiceSpec)
                    and value.__module__ == module.__name__):
                kind = value.model_fields["kind"].default
                if isinstance(kind, str) and kind:
                    if kind in kinds:
                        raise TypeError(f"two specs for kind {kind!r}: {kinds[kind].__module__}"
                                        f" and {module.__name__}")
                    kinds[kind] = value
    return kinds


KINDS: dict[str, type[ServiceSpec]] = _discover()
"""Every kind's spec class, by kind name."""

if TYPE_CHECKING:
    AnyServiceSpec = ServiceSpec
else:
    AnyServiceSpec = Annotated[Union[tuple(KINDS.values())],  # noqa: UP007
                               Field(discriminator="kind")]


def spec_class(kind: str) -> type[ServiceSpec]:
    """The spec of ``kind``; the common base for an unknown kind (the loader reports it)."""
    return KINDS.get(kind, ServiceSpec)


__all__ = ["KINDS", "AnyServiceSpec", "spec_class"]

