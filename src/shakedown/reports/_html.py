"""The HTML report of a stored run: one self-contained file (Bokeh's JavaScript inlined, no
external fetch) with the summary (passed, failed, errors, skipped with reasons: never folded
together), regressions, environments, targets, and every test with its outcome, duration,
measurements against targets and their recent trend, failure text, service log tails and a
timeline of its operations and faults."""

from __future__ import annotations

import html
import time
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from ..store import TestRecord
from . import _format
from ._checks_html import CSS as CHECKS_CSS
from ._checks_html import checks_by_test, checks_html, untested_section
from ._historydb import HistoryDB, Point, TestTrend
from ._regressions import Comparison
from ._run import StoredRun
from ._timeline import TestTimeline, timelines

SPARK_POINTS = 20
LABELS = {"passed": "passed", "failed": "failed", "error": "errors", "skipped": "skipped",
          "xfailed": "xfailed", "xpassed": "xpassed", "not run": "not run"}
ALWAYS = ("passed", "failed", "error", "skipped")


@dataclass
class _Plots:
    """Bokeh models to embed, each rendered into the div with its name."""

    models: dict[str, Any] = field(default_factory=dict)

    def add(self, key: str, model: Any) -> str:
        self.models[key] = model
        return f"{{{{plot:{key}}}}}"


def render(run: StoredRun, *, comparisons: list[Comparison], db: HistoryDB | None = None,
           fail_on_regression: bool = False, history_runs: int = 5) -> str:
    from ._plots import timeline_figure

    plots = _Plots()
    by_test: dict[str, dict[str, Comparison]] = {}
    for comparison in comparisons:
        by_test.setdefault(comparison.nodeid, {})[comparison.metric] = comparison
    cuts = timelines(run.histories)
    trends = {t.nodeid: t for t in db.test_trends(last=10, until=run.started)} \
        if db is not None else {}
    sections = []
    checks = checks_by_test(run)
    for number, test in enumerate(run.tests):
        timeline = cuts.get(test.nodeid)
        plot_html = ""
        if timeline is not None and (timeline.has_workload or timeline.faults):
            layout, dropped = timeline_figure(timeline)
            plot_html = _timeline_block(number, timeline, plots.add(f"t{number}", layout),
                                        dropped)
        sparks: dict[str, str] = {}
        for metric, comparison in by_test.get(test.nodeid, {}).items():
            points = _points(db, run, test, metric, comparison.topology)
            if len(points) >= 2:
                sparks[metric] = sparkline_svg(points, current=run.run_id,
                                               regressed=comparison.regressed,
                                               median=comparison.median)
        plot_html += checks_html(checks.pop(test.nodeid, []))
        sections.append(_test_block(number, run, test, by_test.get(test.nodeid, {}), sparks,
                                    plot_html, history_runs, trends.get(test.nodeid)))
    regressed = [c for c in comparisons if c.regressed]
    body = "\n".join([
        _header(run),
        _summary(run, regressed, fail_on_regression),
        _environments(run),
        _targets(run),
        untested_section([c for shown in checks.values() for c in shown]),
        '<section id="tests"><h2>Tests</h2>' + "\n".join(sections) + "</section>",
        _footer(run),
    ])
    return _embed(body, plots, run)


def _points(db: HistoryDB | None, run: StoredRun, test: TestRecord, metric: str,
            topology: str) -> list[Point]:
    earlier = db.series(test.nodeid, metric, topology, before=run.started,
                        limit=SPARK_POINTS - 1) if db is not None else []
    earlier = [p for p in earlier if p.run_id != run.run_id]
    return [*earlier, Point(run.run_id, run.started, test.measurements[metric])]


def sparkline_svg(points: list[Point], *, current: str, regressed: bool,
                  median: float | None, width: int = 150, height: int = 34) -> str:
    """A metric's recent values as a small inline SVG line (oldest left; the run's own value
    is the last dot, red when it regressed; dotted: the median it was compared with). Drawn
    here rather than by the plotting library: dozens of them cost nothing this way."""
    values = [p.value for p in points]
    low, high = min([*values, *([median] if median is not None else [])]), \
        max([*values, *([median] if median is not None else [])])
    span = (high - low) or 1.0
    pad = 4.0

    def x(i: int) -> float:
        return pad + i * (width - 2 * pad) / max(1, len(values) - 1)

    def y(v: float) -> float:
        return height - pad - (v - low) / span * (height - 2 * pad)

    line = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(values))
    dots = "".join(
        f'<circle cx="{x(i):.1f}" cy="{y(p.value):.1f}" r="{3.5 if p.run_id == current else 1.8}"'
        f' fill="{("#d62728" if regressed else "#222") if p.run_id == current else "#4a6fa5"}">'
        f"<title>{_e(p.run_id)}: {_e(_format.seconds(p.value))}</title></circle>"
        for i, p in enumerate(points))
    guide = (f'<line x1="{pad}" x2="{width - pad}" y1="{y(median):.1f}" y2="{y(median):.1f}" '
             f'stroke="#999" stroke-dasharray="2,2"/>' if median is not None else "")
    return (f'<svg class="sparkline" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="recent values">{guide}'
            f'<polyline points="{line}" fill="none" stroke="#4a6fa5" stroke-width="1.5"/>'
            f"{dots}</svg>")


def _embed(body: str, plots: _Plots, run: StoredRun) -> str:
    script = ""
    if plots.models:
        from bokeh.embed import components
        from bokeh.resources import Resources

        script, divs = components(plots.models)
        for key, div in divs.items():
            body = body.replace(f"{{{{plot:{key}}}}}", div)
        bokeh_js = Resources(mode="inline", components=["bokeh"]).render_js()
    else:
        bokeh_js = ""
    title = html.escape(f"shakedown report {run.run_id}")
    return (f"<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{title}</title><style>{_CSS}{CHECKS_CSS}</style>\n{bokeh_js}\n</head>\n"
            f"<body>\n{body}\n{script}\n</body></html>\n")


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _header(run: StoredRun) -> str:
    took = run.finished - run.started if run.finished and run.started else None
    commit = run.data.get("git_commit")
    facts = [f"started {_format.when(run.started)}", f"took {_format.seconds(took)}",
             f"host {run.data.get('host', '?')}", f"Python {run.data.get('python', '?')}"]
    if commit:
        facts.append(f"commit {str(commit)[:12]}")
    return (f'<header><h1>shakedown run <code>{_e(run.run_id)}</code></h1>'
            f'<p class="facts">{" · ".join(_e(f) for f in facts)}</p></header>')


def _summary(run: StoredRun, regressed: list[Comparison], fail_on_regression: bool) -> str:
    counts = run.counts()
    bad = counts["failed"] + counts["error"] + counts["not run"]
    verdict = "failed" if bad or (regressed and fail_on_regression) else "passed"
    cards = "".join(
        f'<div class="count {k.replace(" ", "-")}" data-outcome="{_e(k)}">'
        f'<b>{counts.get(k, 0)}</b><span>{LABELS[k]}</span></div>'
        for k in LABELS if k in ALWAYS or counts.get(k))
    parts = [f'<section id="summary" class="summary verdict-{verdict}"><h2>Summary</h2>'
             f'<div class="counts">{cards}</div>']
    listed = [("failed", "Failed"), ("error", "Errors (setup or teardown failed)"),
              ("skipped", "Skipped"), ("xpassed", "Unexpectedly passed"),
              ("not run", "Not run")]
    for outcome, title in listed:
        tests = [(i, t) for i, t in enumerate(run.tests) if t.outcome == outcome]
        if tests:
            items = "".join(
                f'<li><a href="#test-{i}">{_e(t.nodeid)}</a>'
                + (f' — <span class="reason">{_e(t.reason)}</span>' if t.reason else "")
                + (f' — <span class="reason">{_e(_first_line(t.longrepr))}</span>'
                   if outcome in ("failed", "error") and t.longrepr else "")
                + "</li>" for i, t in tests)
            parts.append(f'<div class="list {outcome.replace(" ", "-")}"><h3>{title} '
                         f'({len(tests)})</h3><ul>{items}</ul></div>')
    if regressed:
        effect = ("the run fails (--shakedown-fail-on-regression)" if fail_on_regression
                  else "flagged only; --shakedown-fail-on-regression makes them fail the run")
        items = "".join(f"<li>{_e(c.describe())}</li>" for c in regressed)
        parts.append(f'<div class="list regressions" id="regressions"><h3>Regressions '
                     f'({len(regressed)}): {_e(effect)}</h3><ul>{items}</ul></div>')
    parts.append("</section>")
    return "".join(parts)


def _first_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.startswith("E ")]
    line = lines[0][1:].strip() if lines else (text.strip().splitlines() or [""])[-1]
    return line if len(line) <= 160 else line[:159] + "…"


def _environments(run: StoredRun) -> str:
    if not run.environments:
        return ""
    rows = []
    for env in run.environments:
        for service in env.get("services", []):
            rows.append(
                f"<tr><td>{_e(env.get('name', ''))}</td><td>{_e(service.get('name', ''))}</td>"
                f"<td>{_e(service.get('kind', ''))}</td>"
                f"<td>{_e(service.get('version') or '')}</td>"
                f"<td class=num>{_e(_format.seconds(service.get('ready_s')))}</td>"
                f"<td><code>{_e(service.get('url', ''))}</code></td></tr>")
    topologies = ", ".join(f"{_e(e.get('topology', ''))} (digest {_e(e.get('digest', ''))}"
                           + (f", shard {_e(e['shard'])}" if e.get("shard") else "") + ")"
                           for e in run.environments)
    return (f'<section id="environments"><h2>Environments</h2><p class="facts">{topologies}</p>'
            f"<table><tr><th>environment</th><th>service</th><th>kind</th><th>version</th>"
            f"<th>ready in</th><th>url</th></tr>{''.join(rows)}</table></section>")


def _targets(run: StoredRun) -> str:
    if not run.targets:
        return ""
    rows = []
    for name, target in run.targets.items():
        measured = [(t, t.measurements[name]) for t in run.tests if name in t.measurements]
        missed = sum(1 for t, _ in measured if t.missed(name))
        if not measured:
            verdict = '<span class="bad">NOT MEASURED</span>'
        elif missed:
            verdict = f'<span class="bad">MISSED {missed} of {len(measured)}</span>'
        else:
            verdict = f'<span class="good">met ({len(measured)})</span>'
        worst = max((v for _, v in measured), default=None)
        rows.append(f"<tr><td>{_e(name)}</td><td>{_e(target)}</td>"
                    f"<td class=num>{_e(_format.seconds(worst))}</td><td>{verdict}</td></tr>")
    return (f'<section id="targets"><h2>Targets</h2><table><tr><th>metric</th><th>target</th>'
            f"<th>worst</th><th>verdict</th></tr>{''.join(rows)}</table></section>")


def _test_block(number: int, run: StoredRun, test: TestRecord,
                comparisons: dict[str, Comparison], sparks: dict[str, str], plot_html: str,
                history_runs: int, trend: TestTrend | None) -> str:
    outcome = test.outcome
    parts = [f'<article class="test outcome-{outcome.replace(" ", "-")}" id="test-{number}" '
             f'data-nodeid="{_e(test.nodeid)}" data-outcome="{_e(outcome)}">'
             f'<h3><span class="badge {outcome.replace(" ", "-")}">{_e(outcome.upper())}</span> '
             f'<code>{_e(test.nodeid)}</code> '
             f'<span class="duration">{_e(_format.seconds(test.duration))}</span>'
             + (f' <span class="shard">shard {_e(test.shard)}</span>' if test.shard else "")
             + f"{_recent(trend)}</h3>"]
    if test.reason:
        parts.append(f'<p class="reason">{_e(outcome)}: {_e(test.reason)}</p>')
    if test.measurements:
        parts.append(_measurements(run, test, comparisons, sparks, history_runs))
    parts.append(plot_html)
    if test.longrepr and outcome in ("failed", "error", "xpassed"):
        parts.append(f'<details class="failure" open><summary>failure</summary>'
                     f"<pre>{_e(test.longrepr)}</pre></details>")
    if outcome in ("failed", "error"):
        for name, tail in run.log_tails(test.nodeid).items():
            parts.append(f'<details class="log"><summary>{_e(name)}: last 50 lines</summary>'
                         f"<pre>{_e(tail)}</pre></details>")
    parts.append("</article>")
    return "".join(parts)


SYMBOLS = {"passed": ("✓", "good"), "failed": ("✗", "bad"), "error": ("E", "bad"),
           "skipped": ("s", "muted"), "xfailed": ("x", "muted"), "xpassed": ("X", "bad"),
           "not run": ("-", "bad")}


def _recent(trend: TestTrend | None) -> str:
    """The test's recent outcomes from the history (oldest first), flaky when it flipped."""
    if trend is None or len(trend.outcomes) < 2:
        return ""
    marks = "".join(f'<span class="{SYMBOLS.get(o, ("?", ""))[1]}" title="{_e(o)}">'
                    f"{SYMBOLS.get(o, ('?', ''))[0]}</span>" for o in trend.outcomes)
    flaky = (f' <span class="badge flaky" title="passed and failed in turn: {trend.flips} '
             f'flips in the last {len(trend.outcomes)} runs">FLAKY</span>'
             if trend.flaky else "")
    return (f' <span class="recent" title="last {len(trend.outcomes)} runs, oldest first">'
            f"{marks}</span>{flaky}")


def _measurements(run: StoredRun, test: TestRecord, comparisons: dict[str, Comparison],
                  sparks: dict[str, str], history_runs: int) -> str:
    rows = []
    for metric, value in test.measurements.items():
        target = run.targets.get(metric)
        if target is None:
            verdict = '<span class="muted">no target</span>'
        elif test.missed(metric):
            verdict = '<span class="bad">MISSED</span>'
        else:
            verdict = '<span class="good">met</span>'
        comparison = comparisons.get(metric)
        if comparison is None or comparison.median is None:
            known = comparison.compared if comparison else 0
            median, change = f'<span class="muted">{known} earlier run(s)</span>', ""
        else:
            median = (f"{_e(_format.seconds(comparison.median))} "
                      f'<span class="muted">(last {comparison.compared})</span>')
            delta = comparison.change
            change = "" if delta is None else f"{delta * 100:+.0f}%"
            if comparison.regressed:
                change = (f'<span class="bad regression" title="worse than the median by more '
                          f'than {comparison.threshold * 100:.0f}%">{change} REGRESSION</span>')
        rows.append(f"<tr><td>{_e(metric)}</td><td class=num>{_e(_format.seconds(value))}</td>"
                    f"<td>{_e(target or '')}</td><td>{verdict}</td><td class=num>{median}</td>"
                    f"<td class=num>{change}</td><td class=spark>{sparks.get(metric, '')}</td>"
                    "</tr>")
    return (f'<table class="measurements"><tr><th>measurement</th><th>value</th><th>target</th>'
            f"<th>verdict</th><th>median of last {history_runs} comparable runs</th>"
            f"<th>change</th><th>trend</th></tr>{''.join(rows)}</table>")


def _timeline_block(number: int, timeline: TestTimeline, plot: str, dropped: int) -> str:
    counts = timeline.counts()
    facts = [f"{len(timeline.ops)} operations: " + ", ".join(
        f"{n} {k}" for k, n in counts.items() if n)] if timeline.ops else ["no operations"]
    if timeline.faults:
        facts.append("faults: " + "; ".join(
            f"{f.label} from {f.start:.2f} to {f.end:.2f} s" for f in timeline.faults))
    if dropped:
        facts.append(f"{dropped} ok operations thinned out of the plot")
    return (f'<div class="shakedown-timeline" id="timeline-{number}" '
            f'data-nodeid="{_e(timeline.nodeid)}"><p class="facts">Timeline '
            f"(environment {_e(timeline.environment)}): {_e('; '.join(facts))}</p>{plot}</div>")


def _footer(run: StoredRun) -> str:
    try:
        version = metadata.version("shakedown")
    except metadata.PackageNotFoundError:
        version = "?"
    return (f'<footer>shakedown {_e(version)} · written {_e(_format.when(time.time()))} · '
            f"machine-readable: <code>{_e(run.paths.results_file)}</code> and JUnit XML "
            "(--junitxml)</footer>")


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;
 max-width:1200px;padding:16px 24px;color:#1d1d1f;background:#fafafa}
h1{font-size:22px;margin:4px 0}h2{font-size:18px;margin:22px 0 8px;border-bottom:1px solid #ddd}
h3{font-size:15px;margin:8px 0}code{font:12.5px ui-monospace,Menlo,Consolas,monospace}
.facts{color:#555;margin:4px 0}.muted{color:#888}.good{color:#1a7f37}.bad{color:#c62828;
 font-weight:600}
.counts{display:flex;gap:10px;flex-wrap:wrap}.count{border-radius:8px;padding:8px 16px;
 min-width:90px;text-align:center;background:#eee;border:1px solid #ddd}
.count b{display:block;font-size:24px}.count.passed{background:#e6f4ea;border-color:#a8d5b5}
.count.failed{background:#fde7e7;border-color:#f1a7a7}.count.error{background:#fff0d9;
 border-color:#f3c37a}.count.skipped{background:#eef1f6;border-color:#c4ccd8}
.count.xpassed,.count.not-run{background:#f3e8fd;border-color:#cfb2ef}
.list{margin:10px 0;padding:6px 12px;border-left:4px solid #999;background:#fff}
.list.failed{border-color:#d62728}.list.error{border-color:#ef8f00}
.list.skipped{border-color:#8a99b0}.list.regressions{border-color:#9467bd}
.list ul{margin:4px 0;padding-left:18px}
table{border-collapse:collapse;background:#fff;margin:6px 0}td,th{border:1px solid #e2e2e2;
 padding:3px 8px;text-align:left;vertical-align:middle}th{background:#f2f2f2;font-weight:600}
td.num{text-align:right;white-space:nowrap}td.spark{padding:0 4px}
.test{background:#fff;border:1px solid #e2e2e2;border-left:5px solid #aaa;border-radius:6px;
 padding:6px 14px;margin:10px 0}
.test.outcome-passed{border-left-color:#2ca02c}.test.outcome-failed{border-left-color:#d62728}
.test.outcome-error{border-left-color:#ef8f00}.test.outcome-skipped{border-left-color:#8a99b0}
.badge{display:inline-block;font-size:11px;padding:1px 7px;border-radius:10px;color:#fff;
 background:#888;vertical-align:middle}.badge.passed{background:#2ca02c}
.badge.failed{background:#d62728}.badge.error{background:#ef8f00}
.badge.skipped{background:#8a99b0}.badge.xfailed{background:#6a8caf}
.badge.xpassed,.badge.not-run,.badge.flaky{background:#9467bd}
.recent{font:bold 13px ui-monospace,Menlo,Consolas,monospace;margin-left:8px;letter-spacing:2px}
.duration{color:#666;font-weight:400;font-size:13px}.reason{color:#555}
pre{background:#f6f8fa;border:1px solid #e2e2e2;padding:8px;overflow:auto;max-height:420px;
 font:12px/1.35 ui-monospace,Menlo,Consolas,monospace;white-space:pre-wrap}
.shakedown-timeline{margin:8px 0}footer{color:#777;margin:26px 0 8px;font-size:12px}
"""
