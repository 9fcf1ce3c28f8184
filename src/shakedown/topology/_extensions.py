"""The ``extensions`` key of the postgres family (``postgres``, ``postgres-ha``, ``citus``):
a list of PostgreSQL extension names, checked for shape here (whether the server has them is
known only at start, in ``services.kinds.postgres._extensions``)."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator

# What CREATE EXTENSION accepts unquoted, plus "-" (uuid-ossp): a control file's base name.
_NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,62}$")

CITUS = "citus"


def _valid_names(names: tuple[str, ...]) -> tuple[str, ...]:
    for name in names:
        if not _NAME.match(name):
            raise ValueError(
                f"{name!r} is not an extension name (lower-case letters, digits, '_' and '-', "
                "as in CREATE EXTENSION; e.g. \"vector\", \"pg_stat_statements\")")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"extensions listed twice: {', '.join(duplicates)}")
    return names


def _not_citus(names: tuple[str, ...]) -> tuple[str, ...]:
    if CITUS in names:
        raise ValueError(
            "citus is not an extension of this kind: a Citus cluster is a kind of its own "
            "(kind = \"citus\", a coordinator and `workers` workers), or Patroni's Citus mode "
            "on a postgres-ha service (citus = { workers = 2 })")
    return names


Extensions = Annotated[tuple[str, ...], AfterValidator(_valid_names)]
"""Extension names for the citus kind (``citus`` itself may be listed, it is always there)."""

PlainExtensions = Annotated[tuple[str, ...], AfterValidator(_valid_names),
                            AfterValidator(_not_citus)]
"""Extension names for a kind that is not a Citus cluster."""
