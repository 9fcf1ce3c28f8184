"""Resource faults on one service: a memory limit (the kernel reclaims, then OOM-kills), CPU
throttling to a fraction of a core, a limit on its number of processes (fork fails), and a full
disk on its data directory (writes fail with ENOSPC). The first three write the service's
cgroup v1 settings (``process.cgroups``); the disk is the service's size-limited data mount
(``process.datamount``) cut to what it uses. Each returns what to record and how to heal; where
the machine lacks the mechanism it raises a FaultError that says what is missing and how to
get it."""

from __future__ import annotations

import errno
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import FaultError
from ..process import cgroups, datamount, family
from ..services import Service

CPU_PERIOD_US = 100_000
"""The CFS period a CPU limit is expressed in (the kernel's default): a quota of
``fraction * period`` per period."""


@dataclass
class Applied:
    """A resource fault in force: what to record, how to heal it, what to record at heal."""

    params: dict[str, Any]
    undo: Callable[[], None]
    observe: Callable[[], dict[str, Any]] = lambda: {}


def _require(name: str) -> None:
    found = cgroups.controllers()[name]
    if found.base is None:
        raise FaultError(f"cannot limit {_WHAT[name]}: {found.reason}",
                         checked=[f"cgroup v1 {name!r} hierarchy"],
                         fix=[found.fix, "shakedown doctor lists what this machine offers"])


_WHAT = {"memory": "memory", "pids": "the number of processes", "cpu": "CPU"}


def _processes(service: Service, kind: str) -> list[int]:
    pids = [pid for proc in service.processes if proc.alive() for pid in family(proc)]
    if not pids:
        raise FaultError(f"service {service.name!r} has no running process to apply "
                         f"{kind} to", fix=[f"start it first: faults.start({service.name!r})"])
    return pids


def _enter(service: Service, controller: str, kind: str) -> None:
    """Check the hierarchy and put the whole family in the service's group (a child forked
    before its parent was placed would otherwise escape the limit)."""
    _require(controller)
    cgroups.place_family(_processes(service, kind), service.ctx.env_id, service.name)


def memory_limit(service: Service, limit: int) -> Applied:
    if limit <= 0:
        raise FaultError(f"memory limit {limit} is not a positive number of bytes",
                         fix=["give bytes, e.g. 64 * 2**20 for 64 MiB"])
    _enter(service, "memory", "a memory limit")
    env_id, name = service.ctx.env_id, service.name
    kills_before = _oom_kills(env_id, name)
    try:
        cgroups.write("memory", env_id, name, "memory.limit_in_bytes", str(limit))
    except OSError as exc:
        used = cgroups.read("memory", env_id, name, "memory.usage_in_bytes")
        if exc.errno == errno.EBUSY:
            raise FaultError(
                f"the kernel cannot shrink {name!r} to {limit} bytes: it uses {used} bytes "
                "and cannot reclaim enough", checked=["memory.usage_in_bytes"],
                fix=[f"give a limit above {used} bytes; the service is OOM-killed when it "
                     "grows past the limit"]) from None
        raise FaultError(f"cannot set the memory limit of {name!r}: {exc}") from None

    def undo() -> None:
        cgroups.write("memory", env_id, name, "memory.limit_in_bytes", "-1")

    def observe() -> dict[str, Any]:
        return {"oom_kills": _oom_kills(env_id, name) - kills_before,
                "max_usage": int(cgroups.read("memory", env_id, name,
                                              "memory.max_usage_in_bytes"))}

    return Applied({"bytes": limit}, undo, observe)


def oom_kills(service: Service) -> int:
    """How many processes of the service the kernel's OOM killer has killed so far."""
    return _oom_kills(service.ctx.env_id, service.name)


def _oom_kills(env_id: str, name: str) -> int:
    try:
        control = cgroups.read("memory", env_id, name, "memory.oom_control")
    except OSError:
        return 0
    for line in control.splitlines():
        key, _, value = line.partition(" ")
        if key == "oom_kill":
            return int(value)
    return 0


def cpu_limit(service: Service, fraction: float) -> Applied:
    if not 0.01 <= fraction <= 64:
        raise FaultError(f"cpu fraction {fraction} is out of range",
                         checked=["0.01 <= fraction (of one core) <= 64"],
                         fix=["give e.g. 0.1 for a tenth of a core"])
    _enter(service, "cpu", "a CPU limit")
    env_id, name = service.ctx.env_id, service.name
    cgroups.write("cpu", env_id, name, "cpu.cfs_period_us", str(CPU_PERIOD_US))
    cgroups.write("cpu", env_id, name, "cpu.cfs_quota_us", str(int(fraction * CPU_PERIOD_US)))
    throttled_before = throttled(service)

    def undo() -> None:
        cgroups.write("cpu", env_id, name, "cpu.cfs_quota_us", "-1")

    def observe() -> dict[str, Any]:
        return {"throttled_periods": throttled(service) - throttled_before}

    return Applied({"fraction": fraction}, undo, observe)


def throttled(service: Service) -> int:
    """How many CFS periods the service's group was throttled in so far (cpu.stat)."""
    try:
        stat = cgroups.read("cpu", service.ctx.env_id, service.name, "cpu.stat")
    except OSError:
        return 0
    values = dict(line.split(" ", 1) for line in stat.splitlines() if " " in line)
    return int(values.get("nr_throttled", 0))


def pids_limit(service: Service, count: int) -> Applied:
    if count < 1:
        raise FaultError(f"pids limit {count} is below 1", fix=["give a count >= 1"])
    _enter(service, "pids", "a pids limit")
    env_id, name = service.ctx.env_id, service.name
    cgroups.write("pids", env_id, name, "pids.max", str(count))
    failed_before = _pids_failures(env_id, name)

    def undo() -> None:
        cgroups.write("pids", env_id, name, "pids.max", "max")

    def observe() -> dict[str, Any]:
        return {"forks_refused": _pids_failures(env_id, name) - failed_before}

    return Applied({"count": count}, undo, observe)


def _pids_failures(env_id: str, name: str) -> int:
    try:
        events = cgroups.read("pids", env_id, name, "pids.events")
    except OSError:
        return 0
    key, _, value = events.partition(" ")
    return int(value) if key == "max" and value.strip().isdigit() else 0


def disk_full(service: Service) -> Applied:
    data = service.ctx.data_dir
    if datamount.mount_of(data) is None:
        why = datamount.why_no_mounts(data.parent) or \
            f"{data} is not a mount of its own (the service started before shakedown made them)"
        raise FaultError(f"cannot fill the disk of {service.name!r}: {why}",
                         checked=[f"a size-limited tmpfs mounted at {data}"],
                         fix=["run shakedown as root with data on tmpfs (the default when "
                              "/dev/shm has room)", f"unset {datamount.MOUNTS_VARIABLE}",
                              "then start the environment again"])
    _used, size = datamount.usage(data)
    try:
        limited = datamount.fill(data)
    except OSError as exc:
        raise FaultError(f"cannot fill the disk of {service.name!r}: {exc}") from None

    def undo() -> None:
        datamount.resize(data, size)

    return Applied({"bytes": limited, "path": str(data)}, undo)


_UNLIMITED = (("memory", "memory.limit_in_bytes", "-1"), ("cpu", "cpu.cfs_quota_us", "-1"),
              ("pids", "pids.max", "max"))


def reset(service: Service) -> list[str]:
    """Lift every resource limit of the service, also those set by another process (the
    CLI): stateless, read from its groups and its data mount. Returns what it lifted."""
    lifted = []
    env_id, name = service.ctx.env_id, service.name
    for controller, setting, value in _UNLIMITED:
        try:
            current = cgroups.read(controller, env_id, name, setting)
        except OSError:
            continue
        if current not in (value, str(_NO_MEMORY_LIMIT)):
            cgroups.write(controller, env_id, name, setting, value)
            lifted.append(f"{setting}={current}")
    data = service.ctx.data_dir
    if datamount.mount_of(data) is not None:
        full = datamount.usage(data.parent)[1]
        if datamount.usage(data)[1] < full:
            datamount.resize(data, full)
            lifted.append(f"disk {data}")
    return lifted


_NO_MEMORY_LIMIT = 9223372036854771712  # what memory.limit_in_bytes reads when unlimited
