"""References inside commands, env and URLs: ``{port}`` (the service's own port),
``{name.attr}`` (an attribute another service exports), ``{{`` / ``}}`` for literal braces."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

_REF = re.compile(r"\{\{|\}\}|\{([A-Za-z_][\w-]*)(?:\.([A-Za-z_]\w*))?\}")


@dataclass(frozen=True)
class Ref:
    """``{service.attr}``; a bare ``{attr}`` (service None) means the service itself."""

    service: str | None
    attr: str


def find_refs(text: str) -> Iterator[Ref]:
    for match in _REF.finditer(text):
        if match.group(1) is None:
            continue  # an escaped brace
        if match.group(2) is None:
            yield Ref(service=None, attr=match.group(1))
        else:
            yield Ref(service=match.group(1), attr=match.group(2))


def expand(text: str, lookup: Callable[[Ref], str]) -> str:
    """Replace every reference in ``text`` with ``lookup(ref)``."""

    def replace(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "{{":
            return "{"
        if token == "}}":
            return "}"
        if match.group(2) is None:
            return lookup(Ref(service=None, attr=match.group(1)))
        return lookup(Ref(service=match.group(1), attr=match.group(2)))

    return _REF.sub(replace, text)


def expand_with(text: str, own: Mapping[str, str], others: Mapping[str, Mapping[str, str]]) -> str:
    """Expand with the service's own attributes and other services' exports."""

    def lookup(ref: Ref) -> str:
        if ref.service is None:
            return own[ref.attr]
        return others[ref.service][ref.attr]

    return expand(text, lookup)
