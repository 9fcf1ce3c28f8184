"""Checking a stored history offline (``shakedown check RUN_DIR``): the checkers that apply are
found from the operations the history holds, and their inputs (final reads, the bank total)
from the ``final`` process's operations recorded with ``history.record_final``:

- ``add`` operations and a ``final-read`` → ``set_full``
- ``transfer``/``read`` operations and ``final-balances`` (extra ``total``) → ``bank``
- ``roles`` samples → ``single_leader``
- ``lag`` samples, with a bound → ``replication_lag``
- ``txn`` operations (list-append or register transactions) → ``isolation``, against the
  model given, else the one recorded as ``record_final(h, "isolation-model", MODEL)``, else
  serializable
- ``cache-write``/``cache-read`` operations → ``stale_reads``, each key's version before the
  workload from ``record_final(h, "cache-initial", [[KEY, VERSION], ...])`` if recorded
  (pairs, not a JSON object, so integer keys stay integers), else every key starts absent

A test that runs a checker itself keeps its verdict for the report with ``record_check``: a
``final`` operation ``f="check-result"`` holding the ``Result`` as data.
"""

from __future__ import annotations

from typing import Any

from ..errors import ShakedownError
from ..history import FINAL, History, Op, record_final
from ._bank import bank
from ._cache import stale_reads
from ._histories import hashable
from ._isolation import isolation
from ._lag import replication_lag
from ._leader import single_leader
from ._result import Result, unknown
from ._set import set_full


def check_history(history: History, *, lag_bound_s: float | None = None,
                  isolation_model: str | None = None) -> dict[str, Result]:
    """Every checker that applies to the history, by name."""
    ops = history.ops()
    client_fs = {op.f for op in ops if not op.is_nemesis and op.process != FINAL}
    finals = {op.f: op for op in ops if op.process == FINAL}
    results: dict[str, Result] = {}
    if "add" in client_fs:
        final = finals.get("final-read")
        results["set"] = set_full(history, final.value if final else None)
    if "transfer" in client_fs:
        results["bank"] = _bank(history, finals.get("final-balances"))
    if "txn" in client_fs:
        recorded = finals.get("isolation-model")
        model = isolation_model or (str(recorded.value) if recorded else "serializable")
        results["isolation"] = isolation(history, model=model)
    if client_fs & {"cache-write", "cache-read"}:
        results["stale_reads"] = stale_reads(history, initial=_cache_initial(finals))
    if any(op.f == "roles" for op in ops):
        results["single_leader"] = single_leader(history)
    if any(op.f == "lag" for op in ops):
        results["replication_lag"] = (
            replication_lag(history, lag_bound_s) if lag_bound_s is not None
            else unknown("lag samples recorded but no bound given (--lag-bound)"))
    return results


CHECK_RESULT = "check-result"


def record_check(history: History, checker: str, result: Result) -> Op:
    """Keep a checker's verdict in ``history`` (the environment's, so that it is stored with
    the run): the HTML report shows it in the test's section, an isolation anomaly's cycles
    drawn as graphs."""
    return record_final(history, CHECK_RESULT, result.to_dict(), checker=checker)


def split_by_test(history: History) -> dict[str, History]:
    """The history cut per test, from the pytest plugin's ``f="test"`` marks (start/end):
    each test's operations, faults and final reads, checked on their own. A history without
    marks is one segment named ``""``."""
    segments: dict[str, list[Op]] = {}
    current: str | None = None
    for op in history.ops():
        mark = op.test_mark()
        if mark is not None:
            current = mark.nodeid if mark.event == "start" else None
            continue
        if current is not None:
            segments.setdefault(current, []).append(op)
    if not segments:
        return {"": history}
    return {name: History(ops=ops) for name, ops in segments.items()}


def _bank(history: History, final: Any) -> Result:
    if final is None or "total" not in final.extra:
        return unknown("no final-balances with a total recorded: cannot check the bank")
    return bank(history, final.value, int(final.extra["total"]))


def _cache_initial(finals: dict[str, Op]) -> dict[Any, int] | None:
    """The recorded ``cache-initial`` versions: ``[[key, version], ...]`` (or an object)."""
    final = finals.get("cache-initial")
    if final is None:
        return None
    value = final.value
    if isinstance(value, dict):
        value = list(value.items())
    try:
        return {hashable(key): int(version) for key, version in value}
    except (TypeError, ValueError):
        raise ShakedownError(
            f"the recorded cache-initial is not a list of [key, version] pairs: {value!r}",
            checked=["the history's final operation f=\"cache-initial\""],
            fix=['record it as record_final(history, "cache-initial", [[key, version], ...]) '
                 "with integer versions"]) from None
