"""Faults (the nemesis): process faults through service capabilities (kill, stop, start,
restart, pause, resume), network faults through the fault proxy on links (latency, bandwidth,
timeout, reset_peer, slicer, limit_data, down), partitions, and heal. Every fault and heal is
recorded in the environment's history by the ``nemesis`` process. Seeded random schedules of
them (``faults.schedule``) live in ``_schedule``."""

from ._faults import DIRECTIONS, Fault, Faults, LinkRoute
from ._schedule import FAMILIES, SEED_VARIABLE, Bounds, Candidates, Nemesis, Step, plan

__all__ = ["DIRECTIONS", "FAMILIES", "SEED_VARIABLE", "Bounds", "Candidates", "Fault", "Faults",
           "LinkRoute", "Nemesis", "Step", "plan"]
