"""List-append transactions against the Patroni cluster through HAProxy's primary port while a
fault hits the leader (killed, or partitioned from its replicas and etcd), then a final read
of every key on the new leader, checked two ways: ``checkers.isolation`` against the model a
single-primary SERIALIZABLE cluster with durable failover promises (strict serializability),
and the acknowledged appends missing from the final read (lost appends). Shared by
test_isolation_faults.py and bench/isolation_ha.py; service names are read from the topology
(by kind), never assumed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shakedown import eventually
from shakedown.checkers import Result, isolation, record_check
from shakedown.environment import Environment
from shakedown.history import History, record_final
from shakedown.workloads import Runner
from shakedown.workloads.postgres import ListAppendClient, PgOptions, list_append

PROMISED = "strict-serializable"
LEVEL = "serializable"
FINAL_PROCESS = 1000  # the final read's process: after every worker, in real time too
FAST = PgOptions(connect_timeout_s=1, statement_timeout_s=2.0, op_timeout_s=3.0)
FAULTS = ("kill", "partition")


@dataclass(frozen=True)
class Names:
    """The topology's services this needs, found by kind."""

    db: str  # postgres-ha
    lb: str  # haproxy
    dcs: str  # etcd

    @classmethod
    def of(cls, env: Environment) -> Names:
        kinds = {env[name].kind: name for name in env}
        missing = [k for k in ("postgres-ha", "haproxy", "etcd") if k not in kinds]
        if missing:
            raise ValueError(f"the topology has no service of kind {', '.join(missing)}")
        return cls(kinds["postgres-ha"], kinds["haproxy"], kinds["etcd"])


@dataclass(frozen=True)
class Outcome:
    """One scenario's verdicts."""

    fault: str
    synchronous: bool
    isolation: Result
    lost: Result

    @property
    def anomalies(self) -> list[str]:
        return list(self.isolation.details.get("anomalies", []))

    @property
    def lost_appends(self) -> int:
        return self.lost.counts["lost"]

    def line(self) -> str:
        mode = "sync" if self.synchronous else "async"
        counts = self.isolation.counts
        return (f"{mode:5} {self.fault:9} txns ok/fail/info {counts.get('ok', 0)}/"
                f"{counts.get('fail', 0)}/{counts.get('info', 0)}  {PROMISED}: "
                f"{self.isolation.validity} anomalies: {', '.join(self.anomalies) or 'none'}  "
                f"lost appends: {self.lost_appends} of {self.lost.counts['acknowledged']}")


def synchronous(env: Environment, names: Names) -> bool:
    return bool(getattr(env[names.db].spec, "synchronous_mode", False))


def run(env: Environment, fault: str, *, before: int = 50, after: int = 50,
        keys: int = 5, workers: int = 4, rate: float = 150.0) -> Outcome:
    """Run the workload, inject ``fault`` on the leader once ``before`` transactions
    committed, keep it until another member leads and ``after`` more committed, heal, read
    every key on the new leader, check, and keep both verdicts in the environment's history
    (``record_check``: the report shows them)."""
    if fault not in FAULTS:
        raise ValueError(f"fault must be one of {FAULTS}, got {fault!r}")
    names = Names.of(env)
    cluster, url, log = env[names.db], env[names.lb].primary_url, env.history
    start = len(log)
    list_append.setup(url)
    record_final(log, "isolation-model", PROMISED)
    clients = lambda _w: ListAppendClient(url, options=FAST, isolation=LEVEL)  # noqa: E731
    runner = Runner(clients, list_append.generator(keys=keys, rate=rate), concurrency=workers,
                    history=log)
    with runner:
        eventually(lambda: _committed(log, start) >= before, timeout=60)
        old = cluster.leader()
        assert old is not None, "no leader before the fault"
        if fault == "kill":
            env.faults.kill(names.db, process=old.name)
        else:  # cut from its replicas and etcd; HAProxy still reaches it
            env.faults.partition([old.name], [*(m.name for m in cluster.replicas()), names.dcs])
        cluster.wait_leader(timeout=60, exclude=old.name)
        since = len(log)
        eventually(lambda: _committed(log, since) >= after, timeout=90,
                   description="transactions commit on the new leader")
        runner.stop()
    runner.join()
    env.faults.heal()
    final_read(url, log, start)
    mine = History(ops=[op for op in log.ops() if op.index >= start])
    checked = isolation(mine, model=PROMISED)
    lost = lost_appends(mine)
    record_check(log, "isolation", checked)
    record_check(log, "lost-appends", lost)
    return Outcome(fault, synchronous(env, names), checked, lost)


def _committed(log: History, since: int) -> int:
    return sum(1 for op in log.ops()[since:] if op.f == "txn" and op.type == "ok")


def final_read(url: str, log: History, start: int) -> None:
    """Read every key the run touched in one transaction on the current primary (retried
    until the cluster serves it), recorded as a transaction of its own."""
    keys = sorted({op[1] for op in log.ops()[start:] if op.f == "txn" and op.type == "invoke"
                   for op in op.value})
    value = [["r", key, None] for key in keys]
    client = ListAppendClient(url, options=FAST, isolation=LEVEL)

    def read() -> list[Any]:
        log.append(FINAL_PROCESS, "invoke", "txn", value)
        outcome, done = client.invoke("txn", value)
        log.append(FINAL_PROCESS, outcome, "txn", done if outcome == "ok" else value)
        assert outcome == "ok", done
        return list(done)

    try:
        eventually(read, timeout=60, interval=0.5, description="a final read on the primary")
    finally:
        client.close()


def lost_appends(history: History) -> Result:
    """Appends of committed transactions that the final read does not hold."""
    finals = [op for op in history.ops() if op.process == FINAL_PROCESS and op.type == "ok"
              and op.f == "txn"]
    if not finals:
        return Result("unknown", "no final read: cannot tell lost appends", {"lost": 0,
                                                                            "acknowledged": 0})
    seen = {key: set(values or []) for _f, key, values in finals[-1].value}
    acked = [(key, value) for op in history.ops() if op.f == "txn" and op.type == "ok"
             and op.process != FINAL_PROCESS for f, key, value in op.value if f == "append"]
    lost = [(key, value) for key, value in acked if value not in seen.get(key, set())]
    counts = {"lost": len(lost), "acknowledged": len(acked)}
    text = (f"{len(lost)} of {len(acked)} acknowledged appends missing from the final read"
            + (f" (first: {lost[:5]})" if lost else ""))
    return Result("invalid" if lost else "valid", text, counts, {"lost": lost[:100]})
