"""Consistency models the isolation checker judges a history against: which anomalies each
forbids (after Adya's PL levels, Berenson et al. and Cerone et al.'s snapshot isolation, as
Elle uses them) and which cycle family decides it exactly."""

from __future__ import annotations

from dataclasses import dataclass

from shakedown.checkers._isolation._findings import ORDER_SUFFIXES

# Anomalies that no model allows: the history itself is impossible.
IMPOSSIBLE = ("internal", "duplicate-elements", "incompatible-order", "garbage-read",
              "cyclic-versions")
_RC = ("G0", "G1a", "G1b", "G1c")
_SI = (*_RC, "G-single", "G-nonadjacent", "lost-update")
_SER = (*_SI, "G2-item")
_CYCLES = ("G0", "G1c", "G-single", "G-nonadjacent", "G2-item")


@dataclass(frozen=True)
class Model:
    """``forbids``: anomaly names; ``family``: the cycle family (``D``: ww/wr cycles, ``S``:
    no adjacent anti-dependencies, ``F``: any data cycle, ``FO``: with process/realtime order)
    whose existence alone makes a history invalid under the model."""

    name: str
    forbids: tuple[str, ...]
    family: str
    note: str


MODELS: dict[str, Model] = {
    m.name: m
    for m in (
        Model("read-committed", (*IMPOSSIBLE, *_RC), "D",
              "Adya PL-2: no dirty writes or reads (G0, G1a, G1b, G1c)"),
        Model("snapshot-isolation", (*IMPOSSIBLE, *_SI), "S",
              "no G0/G1, no cycle without two adjacent anti-dependencies, no lost update; "
              "write skew (G2-item) allowed; PostgreSQL's REPEATABLE READ"),
        Model("repeatable-read", (*IMPOSSIBLE, *_SER), "F",
              "Adya PL-2.99: G1 and G2-item forbidden; with item reads only (no predicates) "
              "it forbids the same cycles as serializable"),
        Model("serializable", (*IMPOSSIBLE, *_SER), "F",
              "Adya PL-3: no cycle of ww/wr/rw dependencies"),
        Model("strict-serializable",
              (*IMPOSSIBLE, *_SER, *(c + s for c in _CYCLES for s in ORDER_SUFFIXES)), "FO",
              "serializable in an order consistent with real time (and each process's order)"),
    )
}


def model(name: str) -> Model:
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(
            f"unknown consistency model {name!r}: choose one of {', '.join(MODELS)}"
        ) from None


def ruled_out(found: set[str], exists: dict[str, bool]) -> list[str]:
    """The models the anomalies found (or the cycle families that exist) rule out."""
    return [m.name for m in MODELS.values()
            if exists.get(m.family) or found & set(m.forbids)]
