"""The PostgreSQL family: the ``postgres`` kind (``server``), the ``postgres-ha`` kind
(``patroni``, with Patroni's configuration and member processes in modules of their own) and
what they share (``_family``: superuser, password, URLs, settings, first-start work;
``_binaries``: binaries, the initdb template cache, init SQL files). A kind of this family
imports the shared modules, never another kind's."""

from ._binaries import PgBinaries, Template, ensure_template, find_binaries
from ._family import SUPERUSER, PostgresFamily
from .patroni import PatroniService
from .server import Database, PostgresService

__all__ = [
    "SUPERUSER",
    "Database",
    "PatroniService",
    "PgBinaries",
    "PostgresFamily",
    "PostgresService",
    "Template",
    "ensure_template",
    "find_binaries",
]
