"""Plots of the HTML report, made with Bokeh (its JavaScript is inlined by the report, so the
file opens offline): a per-test timeline of operations by outcome with faults shaded and
service events marked, and latency over time below it on the same time axis. Bokeh is
imported here only, when a report is written."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from bokeh.layouts import column
from bokeh.models import ColumnDataSource, FactorRange, HoverTool, Range1d
from bokeh.models.annotations import BoxAnnotation, Span
from bokeh.models.layouts import LayoutDOM
from bokeh.plotting import figure
from bokeh.transform import factor_cmap, factor_mark

from ._timeline import OpSpan, TestTimeline, _process_label

COLOURS = {"ok": "#2ca02c", "fail": "#d62728", "info": "#ff7f0e", "pending": "#7f7f7f"}
NAMES = {"ok": "ok", "fail": "fail", "info": "info (unknown)", "pending": "never completed"}
EVENT_COLOURS = {"starting": "#9e9e9e", "ready": "#2ca02c", "failed": "#d62728",
                 "stopped": "#8c564b", "start": "#1f77b4", "restart": "#1f77b4",
                 "resume": "#1f77b4", "heal": "#0f7f8a", "leader": "#9467bd"}
_LABELS = [NAMES[k] for k in COLOURS]
FAULT_FILL = "#d62728"
MAX_POINTS = 5_000  # per timeline; ok operations are thinned beyond it, never fail/info


def timeline_figure(timeline: TestTimeline) -> tuple[LayoutDOM, int]:
    """The timeline and the latency plot of one test, stacked; returns (layout, operations
    left out when thinning). The top row holds faults (bars) and service events, heals and
    leader changes (triangles); faults are also shaded across both plots.

    Few models on purpose (one data source for all operations, one renderer per kind of
    mark): Bokeh's Python side costs milliseconds per model."""
    spans, dropped = _thin(timeline.ops)
    rows = [*reversed(timeline.processes()), NEMESIS_ROW]
    end = max([timeline.duration, *(s.end or s.start for s in spans)], default=1.0) or 1.0
    x_range = Range1d(start=-0.02 * end, end=end * 1.02)
    # ordered by outcome, so that the legend (in order of first appearance) reads ok, fail, ...
    ordered = sorted(spans, key=lambda s: list(COLOURS).index(s.outcome))
    source = ColumnDataSource(_op_columns(ordered, end))
    colours = factor_cmap("outcome", list(COLOURS.values()), _LABELS)  # mapped in the browser
    title = ("operations (invoke → completion) by outcome; faults shaded" if spans
             else "faults and events (no client operations recorded)")
    ops = figure(height=110 + 30 * len(rows), sizing_mode="stretch_width",
                 x_range=x_range, y_range=FactorRange(factors=rows), title=title,
                 tools=_TOOLS, toolbar_location="right")
    ops.toolbar.logo = None
    ops.ygrid.grid_line_color = None
    if spans:
        ops.segment(x0="start", y0="process", x1="end", y1="process", source=source,
                    line_color=colours, line_width=3, line_alpha=0.4)
        marks = ops.scatter(x="end", y="process", source=source, size=6, color=colours,
                            marker=factor_mark("outcome", ["circle", "circle", "circle", "x"],
                                               _LABELS), legend_field="outcome")
        ops.add_tools(HoverTool(renderers=[marks], tooltips=_TOOLTIPS))
        ops.legend.orientation = "horizontal"
        ops.legend.location = "top_left"
        ops.add_layout(ops.legend[0], "above")
    _nemesis_row(ops, timeline, end)
    plots = [ops]
    if any(s.latency is not None for s in spans):
        plots.append(_latency_figure(spans, source, x_range, colours))
    for plot in plots:
        for fault in timeline.faults:
            plot.add_layout(BoxAnnotation(left=fault.start,
                                          right=max(fault.end, fault.start + 1e-3),
                                          fill_color=FAULT_FILL, fill_alpha=0.12,
                                          line_color=FAULT_FILL, line_alpha=0.35))
        for event in timeline.events:
            plot.add_layout(Span(location=event.time, dimension="height",
                                 line_color=EVENT_COLOURS.get(event.kind, "#555555"),
                                 line_dash="dashed", line_width=1, line_alpha=0.7))
    plots[-1].xaxis.axis_label = "seconds since the test started"
    return column(*plots, sizing_mode="stretch_width"), dropped


NEMESIS_ROW = "faults, events"
_TOOLS = "xpan,xwheel_zoom,box_zoom,reset"
_TOOLTIPS = [("op", "@f @value"), ("worker", "@process"), ("outcome", "@outcome"),
             ("invoked", "@start{0.000} s"), ("latency", "@latency_ms{0.0} ms"),
             ("error", "@error")]


def _op_columns(spans: Sequence[OpSpan], end: float) -> dict[str, list[Any]]:
    return {
        "start": [round(s.start, 4) for s in spans],
        "end": [round(s.end if s.end is not None else end, 4) for s in spans],
        "process": [_process_label(s.process) for s in spans],
        "f": [s.f for s in spans],
        "value": [s.value[:60] for s in spans],
        "outcome": [NAMES[s.outcome] for s in spans],
        "latency_ms": [round(max(s.latency, 1e-6) * 1000, 3) if s.latency is not None
                       else math.nan for s in spans],
        "error": [s.error[:120] for s in spans],
    }


def _latency_figure(spans: Sequence[OpSpan], source: ColumnDataSource,
                    x_range: Range1d, colours: Any) -> Any:
    values = [s.latency * 1000 for s in spans if s.latency is not None]
    log = bool(values) and max(values) / max(min(values), 1e-3) > 50
    plot = figure(height=190, sizing_mode="stretch_width", x_range=x_range,
                  y_axis_type="log" if log else "linear", y_axis_label="latency (ms)",
                  title="latency by invoke time" + (" (log scale)" if log else ""),
                  tools=_TOOLS, toolbar_location="right")
    plot.toolbar.logo = None
    if values:
        marks = plot.scatter(x="start", y="latency_ms", source=source, size=4,
                             color=colours, alpha=0.7)
        plot.add_tools(HoverTool(renderers=[marks], tooltips=_TOOLTIPS))
    return plot


def _nemesis_row(plot: Any, timeline: TestTimeline, end: float) -> None:
    if timeline.faults:
        faults = ColumnDataSource({
            "left": [f.start for f in timeline.faults],
            "right": [max(f.end, f.start + 1e-3) for f in timeline.faults],
            "row": [NEMESIS_ROW] * len(timeline.faults),
            "label": [f.label + (" (not healed)" if f.open else "") for f in timeline.faults],
            "span": [f"{f.start:.3f} to {f.end:.3f} s" for f in timeline.faults],
        })
        bars = plot.hbar(y="row", left="left", right="right", height=0.55, source=faults,
                         fill_color=FAULT_FILL, fill_alpha=0.55, line_color=FAULT_FILL)
        plot.text(x="left", y="row", text="label", source=faults, x_offset=4,
                  text_font_size="10px", text_color="#ffffff", text_font_style="bold",
                  text_baseline="middle")
        plot.add_tools(HoverTool(renderers=[bars], tooltips=[("fault", "@label"),
                                                             ("active", "@span")]))
    if timeline.events:
        events = ColumnDataSource({
            "time": [e.time for e in timeline.events],
            "row": [NEMESIS_ROW] * len(timeline.events),
            "label": [e.label for e in timeline.events],
            "colour": [EVENT_COLOURS.get(e.kind, "#555555") for e in timeline.events],
            # alternate above and below the row's middle, so that close events stay readable
            "offset": [-6 if n % 2 == 0 else 7 for n in range(len(timeline.events))],
            # near the right edge the label goes left of its mark, so it is not cut off
            "align": ["right" if e.time > 0.85 * end else "left" for e in timeline.events],
            "x_offset": [-7 if e.time > 0.85 * end else 7 for e in timeline.events],
        })
        marks = plot.scatter(x="time", y="row", source=events, marker="inverted_triangle",
                             size=10, color="colour")
        plot.text(x="time", y="row", text="label", source=events, x_offset="x_offset",
                  y_offset="offset", text_font_size="10px", text_color="colour",
                  text_align="align", text_baseline="middle", background_fill_color="white",
                  background_fill_alpha=0.85, padding=1)
        plot.add_tools(HoverTool(renderers=[marks], tooltips=[("event", "@label"),
                                                              ("at", "@time{0.000} s")]))


def _thin(spans: list[OpSpan]) -> tuple[list[OpSpan], int]:
    if len(spans) <= MAX_POINTS:
        return spans, 0
    others = [s for s in spans if s.outcome != "ok"]
    ok = [s for s in spans if s.outcome == "ok"]
    room = max(MAX_POINTS - len(others), 500)
    step = max(1, math.ceil(len(ok) / room))
    kept = sorted(others + ok[::step], key=lambda s: s.start)
    return kept, len(spans) - len(kept)
