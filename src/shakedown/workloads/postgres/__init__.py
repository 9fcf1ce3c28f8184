"""Built-in PostgreSQL workloads (psycopg 3, short timeouts, reconnect on connection loss):
``append`` (set of unique ids), ``register`` (one read/write/cas value) and ``bank``
(transfers with a constant total). Each module has ``setup``, a client class, ``generator``
and ``final_read``; ``WORKLOADS`` maps names to their ``Workload`` bundle."""

from shakedown.workloads._workload import Workload
from shakedown.workloads.postgres import append, bank, register
from shakedown.workloads.postgres._session import PgOptions, PgSession
from shakedown.workloads.postgres.append import AppendClient
from shakedown.workloads.postgres.bank import BankClient
from shakedown.workloads.postgres.register import RegisterClient
from shakedown.workloads.postgres.samplers import LagSampler, RoleSampler

WORKLOADS: dict[str, Workload] = {
    w.name: w for w in (append.WORKLOAD, register.WORKLOAD, bank.WORKLOAD)
}

__all__ = [
    "WORKLOADS",
    "AppendClient",
    "BankClient",
    "LagSampler",
    "PgOptions",
    "PgSession",
    "RegisterClient",
    "RoleSampler",
    "Workload",
    "append",
    "bank",
    "register",
]
