"""The one rule for service and link names, checked before anything else of a topology.

A service name becomes an environment variable (``NAME_URL`` in ``shakedown env``), a
reference (``{name.attr}``), a directory (``data/NAME``), a process role, a link name and a
fault target. The rule keeps each of those unique and spellable:

- 1 to 48 characters: lowercase ASCII letters, digits and ``-``; a letter first, no ``-`` at
  the end, no ``--``. Upper case and ``_`` are refused because ``API``/``api`` and ``a_b``/``a-b``
  would become the same ``NAME_URL`` variable.
- A kind that names its own parts after the service (``parts_named_after_service``:
  postgres-ha members ``db0``, citus nodes ``db-worker1``, HAProxy and router links
  ``lb-db0``) reserves its name followed by a digit or ``-``: no other service or link may
  take such a name.
Link names of ``[links]`` follow the same rule.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from ..errors import TopologyError

MAX_NAME = 48
NAME_RULE = (f"1-{MAX_NAME} characters: lowercase letters, digits and '-', starting with a "
             "letter, no '-' at the end and no '--'")
_NAME = re.compile(r"[a-z](?:[a-z0-9]|-(?!-))*")


def name_problem(name: object) -> str | None:
    """Why ``name`` breaks the rule, or None when it is a good name."""
    if not isinstance(name, str):
        return f"a name must be text, got {type(name).__name__}"
    if not 1 <= len(name) <= MAX_NAME:
        return f"{len(name)} characters (1-{MAX_NAME} allowed)"
    if not _NAME.fullmatch(name) or name.endswith("-"):
        return f"does not follow the name rule ({NAME_RULE})"
    return None


def suggest(name: str) -> str:
    """A name that follows the rule, close to ``name``, for the fix line."""
    text = re.sub(r"[^a-z0-9-]+", "-", name.lower())
    text = re.sub(r"-{2,}", "-", text).strip("-")
    if not text or not text[0].isalpha():
        text = "s-" + text if text else "service"
    return text[:MAX_NAME].rstrip("-")


def env_variable(name: str) -> str:
    """The ``shakedown env`` variable of a service's URL: ``shared-db`` → ``SHARED_DB_URL``."""
    return name.upper().replace("-", "_") + "_URL"


def check_names(raw: Mapping[str, Any], label: str, parts_named: Iterable[str]) -> None:
    """Refuse a service or link name that breaks the rule or takes another's derived name.
    ``parts_named`` lists the kinds that name their parts after their service."""
    services = raw.get("services")
    service_names = list(services) if isinstance(services, dict) else []
    links = raw.get("links")
    link_names = list(links) if isinstance(links, dict) else []
    for table, names in (("services", service_names), ("links", link_names)):
        for name in names:
            problem = name_problem(name)
            if problem is not None:
                shown = name if len(name) <= 60 else name[:57] + "..."
                raise TopologyError(
                    f"{label}: {table}.{shown!r}: bad {table[:-1]} name: {problem}",
                    checked=[f"the name rule: {NAME_RULE}"],
                    fix=[f"rename it, e.g. [{table}.{suggest(name)}]"],
                )
    _check_reserved(services if isinstance(services, dict) else {}, link_names, label,
                    set(parts_named))


def _check_reserved(services: Mapping[str, Any], link_names: list[str], label: str,
                    parts_named: set[str]) -> None:
    """One pass over the names: each is split at its first digit-or-dash boundaries and every
    prefix looked up, so the check is linear in the number of names (times their length)."""
    owners = {name: table.get("kind") for name, table in services.items()
              if isinstance(table, dict) and isinstance(table.get("kind"), str)
              and table.get("kind") in parts_named}
    if not owners:
        return
    for table, names in (("services", list(services)), ("links", link_names)):
        for name in names:
            for cut in range(1, len(name)):
                if name[cut] != "-" and not name[cut].isdigit():
                    continue
                owner = name[:cut]
                if owner in owners and owner != name:
                    raise TopologyError(
                        f"{label}: {table}.{name}: the name is taken: {owner!r} is a "
                        f"{owners[owner]} service, which names its parts {owner}0, "
                        f"{owner}-...",
                        checked=[f"names reserved by {owner!r}: {owner} followed by a digit "
                                 "or '-'"],
                        fix=[f"rename {name!r} (or {owner!r}) so that neither begins with the "
                             "other followed by a digit or '-'"],
                    )
