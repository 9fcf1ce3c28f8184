"""Workloads (Jepsen's client/generator/recorder model): a ``Client`` performs operations,
generators say which operations to perform and how fast, the ``Runner`` drives worker
threads and records every operation into a ``History`` for the checkers. Built-in PostgreSQL
workloads live in ``shakedown.workloads.postgres``."""

from shakedown.workloads._client import (
    Classifier,
    Client,
    Completion,
    DefiniteFailure,
    IndeterminateFailure,
    default_classifier,
)
from shakedown.workloads._generators import (
    Generator,
    Operation,
    Phases,
    each,
    limit,
    mix,
    once,
    phases,
    rate_limit,
    repeat,
    sequential,
    time_limit,
)
from shakedown.workloads._recorder import record, record_failure
from shakedown.workloads._runner import ClientFactory, Runner, RunSummary
from shakedown.workloads._workload import Workload

__all__ = [
    "Classifier",
    "Client",
    "ClientFactory",
    "Completion",
    "DefiniteFailure",
    "Generator",
    "IndeterminateFailure",
    "Operation",
    "Phases",
    "RunSummary",
    "Runner",
    "Workload",
    "default_classifier",
    "each",
    "limit",
    "mix",
    "once",
    "phases",
    "rate_limit",
    "record",
    "record_failure",
    "repeat",
    "sequential",
    "time_limit",
]
