"""Built-in PostgreSQL workloads (psycopg 3, short timeouts, reconnect on connection loss):
``append`` (set of unique ids), ``register`` (one read/write/cas value), ``bank``
(transfers with a constant total), and the transactional ``list_append`` and ``rw_register``
(Elle's workloads, at a chosen isolation level). Each module has ``setup``, a client class,
``generator`` and ``final_read``; ``WORKLOADS`` maps names to their ``Workload`` bundle."""

from shakedown.workloads._workload import Workload
from shakedown.workloads.postgres import append, bank, list_append, register, rw_register
from shakedown.workloads.postgres._session import PgOptions, PgSession
from shakedown.workloads.postgres.append import AppendClient
from shakedown.workloads.postgres.bank import BankClient
from shakedown.workloads.postgres.list_append import ListAppendClient
from shakedown.workloads.postgres.register import RegisterClient
from shakedown.workloads.postgres.rw_register import RwRegisterClient
from shakedown.workloads.postgres.samplers import LagSampler, RoleSampler

WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in (append.WORKLOAD, register.WORKLOAD, bank.WORKLOAD, list_append.WORKLOAD,
              rw_register.WORKLOAD)
}

__all__ = [
    "WORKLOADS",
    "AppendClient",
    "BankClient",
    "LagSampler",
    "ListAppendClient",
    "PgOptions",
    "PgSession",
    "RegisterClient",
    "RoleSampler",
    "RwRegisterClient",
    "Workload",
    "append",
    "bank",
    "list_append",
    "register",
    "rw_register",
]
