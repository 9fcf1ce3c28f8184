"""The PostgreSQL family: the ``postgres`` kind (``server``), the ``postgres-ha`` kind
(``patroni``, with Patroni's configuration and member processes in modules of their own, and
its Citus mode in ``_patroni_citus``), the
``citus`` kind (``citus``: a coordinator and workers) and what they share (``_family``:
superuser, password, URLs, settings, first-start work; ``_binaries``: binaries, the initdb
template cache, init SQL files; ``_server``: one PostgreSQL server, the postgres kind's and
each Citus node's; ``_extensions``: extensions and templates with them created). A kind of
this family imports the shared modules, never another kind's."""

from ._binaries import PgBinaries, Template, ensure_template, find_binaries
from ._family import SUPERUSER, PostgresFamily
from ._patroni_citus import PatroniCitusService, PatroniGroup
from .citus import CitusNode, CitusService, ShardPlacement
from .patroni import PatroniService
from .server import Database, PostgresService

__all__ = [
    "SUPERUSER",
    "CitusNode",
    "CitusService",
    "Database",
    "PatroniCitusService",
    "PatroniGroup",
    "PatroniService",
    "PgBinaries",
    "PostgresFamily",
    "PostgresService",
    "ShardPlacement",
    "Template",
    "ensure_template",
    "find_binaries",
]
