"""Checkers: pure functions from a history (and final reads or samples) to a ``Result`` that is
valid, invalid or unknown with a readable explanation. They can run offline on a stored
history (``History.load``). ``tables_equal``/``table_summary`` read PostgreSQL and
``no_orphans`` reads the process table; ``isolation`` names transactional anomalies
(Elle's method); everything else only reads its arguments."""

from shakedown.checkers._bank import bank
from shakedown.checkers._cache import StaleRead, stale_reads
from shakedown.checkers._isolation import MODELS as ISOLATION_MODELS
from shakedown.checkers._isolation import isolation
from shakedown.checkers._lag import replication_lag
from shakedown.checkers._leader import single_leader
from shakedown.checkers._offline import CHECK_RESULT, check_history, record_check, split_by_test
from shakedown.checkers._orphans import ENV_TAG, no_orphans
from shakedown.checkers._result import Result, Validity, compose
from shakedown.checkers._set import set_full
from shakedown.checkers._tables import (
    DatabaseSummary,
    HasUrl,
    TableSummary,
    compare_tables,
    table_summary,
    tables_equal,
)

__all__ = [
    "CHECK_RESULT",
    "ENV_TAG",
    "ISOLATION_MODELS",
    "DatabaseSummary",
    "HasUrl",
    "Result",
    "StaleRead",
    "TableSummary",
    "Validity",
    "bank",
    "check_history",
    "compare_tables",
    "compose",
    "isolation",
    "no_orphans",
    "record_check",
    "replication_lag",
    "set_full",
    "single_leader",
    "split_by_test",
    "stale_reads",
    "table_summary",
    "tables_equal",
]
