"""The checkers' verdicts in the HTML report: those ``shakedown check RUN_DIR`` stored in the
run's checks.json and those a test kept in its environment's history (``record_check``), each
under the test whose part of the history it judged. An isolation result shows every anomaly it
found, forbidden or allowed by its model, each example cycle drawn as a graph (``_cycle_svg``)
beside its transactions and the reason for each dependency."""

from __future__ import annotations

import html
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from itertools import count
from typing import Any

from ..checkers import CHECK_RESULT
from ..history import FINAL, History
from ..store import read_checks
from ._cycle_svg import cycle_svg, legend, txn_text
from ._run import StoredRun

CYCLES_DRAWN = 3  # per anomaly: the checker keeps up to 3 examples by default


@dataclass(frozen=True)
class ShownCheck:
    """One verdict to show: which checker, on which history, from where, and the result."""

    checker: str
    history: str
    source: str  # "shakedown check" | "recorded by the test"
    result: Mapping[str, Any]


def checks_by_test(run: StoredRun) -> dict[str, list[ShownCheck]]:
    """nodeid → the verdicts on that test's part of the histories ("" for a history without
    test marks)."""
    found: dict[str, list[ShownCheck]] = {}
    for env, history in run.histories.items():
        for test, shown in _recorded(env, history):
            found.setdefault(test, []).append(shown)
    for record in read_checks(run.paths):
        found.setdefault(record.test, []).append(
            ShownCheck(record.checker, record.history, "shakedown check", record.result))
    return found


def _recorded(env: str, history: History) -> Iterator[tuple[str, ShownCheck]]:
    current = ""
    for op in history.ops():
        mark = op.test_mark()
        if mark is not None:
            current = mark.nodeid if mark.event == "start" else ""
        elif op.process == FINAL and op.f == CHECK_RESULT and isinstance(op.value, dict):
            checker = str(op.extra.get("checker") or "check")
            yield current, ShownCheck(checker, env, "recorded by the test", op.value)


def checks_html(shown: list[ShownCheck]) -> str:
    """The block of one test's verdicts ("" when it has none)."""
    if not shown:
        return ""
    ids = count()
    blocks = [_check(item, ids) for item in shown]
    return f'<div class="checks"><h4>Checks</h4>{"".join(blocks)}</div>'


def untested_section(shown: list[ShownCheck]) -> str:
    """Verdicts on histories (or parts) that belong to no test of the run."""
    if not shown:
        return ""
    return (f'<section id="checks"><h2>Checks of whole histories</h2>{checks_html(shown)}'
            "</section>")


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _check(item: ShownCheck, ids: Iterator[int]) -> str:
    validity = str(item.result.get("validity", "unknown"))
    explanation = str(item.result.get("explanation", ""))
    head, _, rest = explanation.partition("\n\n")
    parts = [f'<div class="check validity-{_e(validity)}" data-checker="{_e(item.checker)}" '
             f'data-validity="{_e(validity)}"><p><b>{_e(item.checker)}</b> '
             f'<span class="badge {_badge(validity)}">{_e(validity.upper())}</span> '
             f'<span class="muted">{_e(item.source)}, history {_e(item.history)}</span></p>'
             f'<p class="check-head">{_e(head)}</p>']
    for name, nested in _results(item.checker, item.result):
        parts.append(_anomalies(name, nested, ids))
    if rest:
        parts.append(f'<details><summary>full explanation</summary><pre>{_e(rest)}</pre>'
                     "</details>")
    parts.append("</div>")
    return "".join(parts)


def _badge(validity: str) -> str:
    return {"valid": "passed", "invalid": "failed"}.get(validity, "skipped")


def _results(name: str, result: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """The result and, for a composed one (``compose``), each named result inside it."""
    details = result.get("details") or {}
    yield name, result
    if "cycles" not in details:
        for key, value in details.items():
            if isinstance(value, Mapping) and value.get("validity") in ("valid", "invalid",
                                                                          "unknown"):
                yield from _results(f"{name}.{key}", value)


def _anomalies(name: str, result: Mapping[str, Any], ids: Iterator[int]) -> str:
    details = result.get("details") or {}
    anomalies = [str(a) for a in details.get("anomalies") or []]
    if not anomalies:
        return ""
    forbidden = set(details.get("forbidden_found") or [])
    cycles: Mapping[str, list[Any]] = details.get("cycles") or {}
    examples: Mapping[str, list[Any]] = details.get("examples") or {}
    model = details.get("model", "?")
    parts = []
    for anomaly in anomalies:
        verdict = (f'<span class="bad">forbidden by {_e(model)}</span>' if anomaly in forbidden
                   else f'<span class="muted">allowed by {_e(model)}</span>')
        drawn = [_figure(c, f"c{next(ids)}") for c in cycles.get(anomaly, [])[:CYCLES_DRAWN]
                 if isinstance(c, Mapping)]
        seen = "" if drawn else "".join(f"<pre>{_e(text)}</pre>"
                                        for text in examples.get(anomaly, [])[:CYCLES_DRAWN])
        parts.append(f'<div class="anomaly" data-anomaly="{_e(anomaly)}"><h5>{_e(anomaly)} — '
                     f'{verdict}</h5><div class="cycles">{"".join(drawn)}</div>{seen}</div>')
    return f'<div class="anomalies" data-result="{_e(name)}">{"".join(parts)}</div>'


def _figure(cycle: Mapping[str, Any], ident: str) -> str:
    txns: Mapping[str, Any] = cycle.get("txns") or {}
    steps: list[Mapping[str, Any]] = list(cycle.get("steps") or [])
    rows = "".join(f"<tr><td><b>{_e(n)}</b></td><td><code>{_e(txn_text(t))}</code></td></tr>"
                   for n, t in txns.items())
    edges = "".join(f'<li><b>{_e(s.get("from"))} → {_e(s.get("to"))}</b> '
                    f'<span class="kind">{_e(s.get("kind"))}</span>: {_e(s.get("why", ""))}</li>'
                    for s in steps)
    kinds = list(dict.fromkeys(str(s.get("kind", "")) for s in steps))
    return (f'<figure class="cycle">{cycle_svg(cycle, ident)}<figcaption>{legend(kinds)}'
            f'<table class="cycle-txns">{rows}</table><ul class="cycle-steps">{edges}</ul>'
            "</figcaption></figure>")


CSS = """
.checks{margin:8px 0}.checks h4{margin:6px 0;font-size:14px}
.check{border:1px solid #e2e2e2;border-radius:6px;padding:4px 10px;margin:6px 0;background:#fff}
.check.validity-invalid{border-left:4px solid #d62728}.check.validity-valid{border-left:4px solid
 #2ca02c}.check.validity-unknown{border-left:4px solid #8a99b0}.check-head{color:#333}
.anomaly h5{font-size:13px;margin:8px 0 2px}
figure.cycle{display:flex;gap:12px;align-items:flex-start;margin:4px 0 10px;flex-wrap:wrap}
figure.cycle figcaption{flex:1;min-width:320px;font-size:12.5px}
.cycle-steps{margin:4px 0;padding-left:18px}.cycle-steps .kind{font-weight:600}
.cycle-legend{margin:2px 0;color:#555}.edge-kind{margin-right:10px;white-space:nowrap}
"""
