"""Frozen models of the topology file as a whole: services (one spec per kind, from ``specs``),
links, targets and environment settings. Validation of types and keys is pydantic's;
cross-references are checked in ``_load``."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, ConfigDict, Field

from ._base import Spec
from ._durations import Target, parse_target
from .specs import KINDS, AnyServiceSpec

__all__ = ["KINDS", "EnvironmentSettings", "LinkSpec", "TopologyModel"]


class LinkSpec(Spec):
    """Traffic from one service to another that goes through a fault proxy."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    source: str = Field(alias="from")
    to: str


def _valid_target(text: str) -> str:
    parse_target(text)
    return text


TargetText = Annotated[str, AfterValidator(_valid_target)]


class EnvironmentSettings(Spec):
    """``[environment]``: where data lives and how long things may take."""

    tmpfs: bool | Literal["auto"] = "auto"


class TopologyModel(Spec):
    """The whole file, as validated by pydantic (before cross-reference checks)."""

    environment: EnvironmentSettings = EnvironmentSettings()
    services: dict[str, AnyServiceSpec] = Field(min_length=1)
    links: dict[str, LinkSpec] = {}
    targets: dict[str, TargetText] = {}

    def parsed_targets(self) -> dict[str, Target]:
        return {name: parse_target(text) for name, text in self.targets.items()}
