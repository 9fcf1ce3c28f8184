"""An isolation anomaly's cycle as a small inline SVG graph: its transactions (T1, T2, ...) on a
circle in cycle order, each dependency an arrow coloured and labelled by its kind (ww, wr, rw
dashed, process, realtime), hovering a node or an arrow shows the transaction's micro-operations
or why the dependency holds. Drawn here rather than by a graph library: a cycle is a ring, so
its layout is a circle, and the report stays one file without JavaScript."""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

NODE_R = 17.0
PAD = 46.0
# One colour per dependency kind (colour-blind safe palette); rw is also dashed, since an
# anti-dependency is what tells the anomaly classes apart.
KIND_STYLE: dict[str, tuple[str, str]] = {
    "ww": ("#0072b2", ""),
    "wr": ("#009e73", ""),
    "rw": ("#d55e00", "6,4"),
    "process": ("#7f7f7f", "2,3"),
    "realtime": ("#cc79a7", "2,3"),
}
OTHER_STYLE = ("#444444", "")


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def cycle_svg(cycle: Mapping[str, Any], ident: str) -> str:
    """The SVG of one cycle as the isolation checker gives it (``details["cycles"][NAME][i]``:
    ``txns`` by name and ``steps`` ``{from, to, kind, why}``). ``ident`` makes the arrowhead
    markers' ids unique in the page."""
    txns: Mapping[str, Any] = cycle.get("txns") or {}
    steps: Sequence[Mapping[str, Any]] = cycle.get("steps") or []
    names = list(txns) or _names_of(steps)
    radius = max(62.0, len(names) * (2 * NODE_R + 30) / (2 * math.pi))
    size = 2 * (radius + PAD)
    centre = size / 2
    at = {name: (centre + radius * math.sin(2 * math.pi * i / len(names)),
                 centre - radius * math.cos(2 * math.pi * i / len(names)))
          for i, name in enumerate(names)}
    kinds = sorted({str(s.get("kind", "")) for s in steps})
    edges = "".join(_edge(step, at, ident, pair=_opposed(step, steps)) for step in steps
                    if step.get("from") in at and step.get("to") in at)
    nodes = "".join(_node(name, txns.get(name), at[name]) for name in names)
    label = f"{cycle.get('name', 'cycle')}: " + " → ".join(
        [*(str(s.get("from")) for s in steps), str(steps[0].get("from")) if steps else ""])
    return (f'<svg class="cycle-graph" width="{size:.0f}" height="{size:.0f}" '
            f'viewBox="0 0 {size:.0f} {size:.0f}" role="img" aria-label="{_e(label)}" '
            f'data-anomaly="{_e(cycle.get("name", ""))}">'
            f"<title>{_e(label)}</title><defs>{''.join(_marker(k, ident) for k in kinds)}</defs>"
            f"{edges}{nodes}</svg>")


def _names_of(steps: Sequence[Mapping[str, Any]]) -> list[str]:
    names: list[str] = []
    for step in steps:
        for end in (str(step.get("from")), str(step.get("to"))):
            if end not in names:
                names.append(end)
    return names


def _opposed(step: Mapping[str, Any], steps: Sequence[Mapping[str, Any]]) -> bool:
    """Whether another step joins the same two transactions the other way (two-transaction
    cycles): both arrows then bow further apart so neither hides the other."""
    return any(s.get("from") == step.get("to") and s.get("to") == step.get("from")
               for s in steps)


def _marker(kind: str, ident: str) -> str:
    colour = KIND_STYLE.get(kind, OTHER_STYLE)[0]
    return (f'<marker id="{_e(_marker_id(kind, ident))}" viewBox="0 0 10 10" refX="9" '
            f'refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
            f'<path d="M0,0 L10,5 L0,10 z" fill="{colour}"/></marker>')


def _marker_id(kind: str, ident: str) -> str:
    return f"arrow-{ident}-{''.join(c for c in kind if c.isalnum()) or 'dep'}"


def _edge(step: Mapping[str, Any], at: Mapping[str, tuple[float, float]], ident: str,
          pair: bool) -> str:
    kind = str(step.get("kind", ""))
    colour, dash = KIND_STYLE.get(kind, OTHER_STYLE)
    (x1, y1), (x2, y2) = at[step["from"]], at[step["to"]]
    length = math.hypot(x2 - x1, y2 - y1) or 1.0
    # Bow each arrow to the left of its direction, so that two arrows between the same pair
    # in opposite directions curve apart.
    nx, ny = (y1 - y2) / length, (x2 - x1) / length
    bow = length * (0.28 if pair else 0.12)
    cx, cy = (x1 + x2) / 2 + nx * bow, (y1 + y2) / 2 + ny * bow
    sx, sy = _towards((x1, y1), (cx, cy), NODE_R)
    ex, ey = _towards((x2, y2), (cx, cy), NODE_R + 2)
    lx, ly = 0.25 * sx + 0.5 * cx + 0.25 * ex + nx * 9, 0.25 * sy + 0.5 * cy + 0.25 * ey + ny * 9
    why = f"{step.get('from')} → {step.get('to')} ({kind}): {step.get('why', '')}"
    dashed = f' stroke-dasharray="{dash}"' if dash else ""
    return (f'<g class="edge" data-kind="{_e(kind)}" data-from="{_e(step.get("from"))}" '
            f'data-to="{_e(step.get("to"))}"><title>{_e(why)}</title>'
            f'<path d="M{sx:.1f},{sy:.1f} Q{cx:.1f},{cy:.1f} {ex:.1f},{ey:.1f}" fill="none" '
            f'stroke="{colour}" stroke-width="2"{dashed} '
            f'marker-end="url(#{_e(_marker_id(kind, ident))})"/>'
            f'<text x="{lx:.1f}" y="{ly:.1f}" font-size="11" text-anchor="middle" '
            f'dominant-baseline="middle" fill="{colour}" font-weight="600">{_e(kind)}</text></g>')


def _towards(point: tuple[float, float], target: tuple[float, float],
             distance: float) -> tuple[float, float]:
    """The point ``distance`` from ``point`` on the way to ``target`` (an arrow's end on the
    rim of its node's circle)."""
    dx, dy = target[0] - point[0], target[1] - point[1]
    length = math.hypot(dx, dy) or 1.0
    return point[0] + dx / length * distance, point[1] + dy / length * distance


def _node(name: str, txn: Any, at: tuple[float, float]) -> str:
    x, y = at
    return (f'<g class="txn" data-txn="{_e(name)}"><title>{_e(name)} = {_e(txn_text(txn))}'
            f'</title><circle cx="{x:.1f}" cy="{y:.1f}" r="{NODE_R}" fill="#fff" '
            f'stroke="#333" stroke-width="1.5"/><text x="{x:.1f}" y="{y:.1f}" font-size="12" '
            f'text-anchor="middle" dominant-baseline="central" font-weight="600">{_e(name)}'
            "</text></g>")


def txn_text(txn: Any) -> str:
    """A transaction as the checker's text shows it: index, process, outcome, micro-ops."""
    if not isinstance(txn, Mapping):
        return "" if txn is None else str(txn)
    ops = json.dumps(txn.get("value"), default=str, separators=(", ", ": "))
    return (f"index {txn.get('index')}, process {txn.get('process')}, {txn.get('type')}: "
            f"{ops}")


def legend(kinds: Sequence[str]) -> str:
    """A line naming each edge kind drawn, in its colour and dash."""
    items = []
    for kind in kinds:
        colour, dash = KIND_STYLE.get(kind, OTHER_STYLE)
        dashed = f' stroke-dasharray="{dash}"' if dash else ""
        items.append(f'<span class="edge-kind"><svg width="26" height="10" aria-hidden="true">'
                     f'<line x1="1" y1="5" x2="25" y2="5" stroke="{colour}" stroke-width="2"'
                     f"{dashed}/></svg> {_e(kind)}</span>")
    return f'<p class="cycle-legend">{" ".join(items)}</p>'
