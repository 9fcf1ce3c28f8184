"""Faults (the nemesis): process faults through service capabilities (kill, stop, start,
restart, pause, resume), network faults through the fault proxy on links (latency, bandwidth,
timeout, reset_peer, slicer, limit_data, down), partitions, and heal. Every fault and heal is
recorded in the environment's history by the ``nemesis`` process."""

from ._faults import DIRECTIONS, Fault, Faults, LinkRoute

__all__ = ["DIRECTIONS", "Fault", "Faults", "LinkRoute"]
