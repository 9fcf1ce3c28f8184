"""A running environment as its state file tells it, for the CLI commands that only read
(``status``, ``env``, ``logs``): no topology validation, no service classes, no server
libraries, so these commands answer in the time Python takes to start. The state file carries
each service's URL, exports and log path for exactly this (``Environment.save_state``);
process states are read from ``/proc``."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import EnvironmentStateError, ShakedownError, did_you_mean
from .store import StateStore


@dataclass(frozen=True)
class ServiceView:
    name: str
    kind: str
    url: str
    exports: dict[str, str]
    log_path: Path
    processes: list[dict[str, Any]]
    log_parts: dict[str, Path]
    """Further logs of the service by key (``lambda/NAME``, ``ec2/ID`` of the aws kind)."""
    restart_status: Path | None = None
    """The restart supervisor's status file (a service with a restart policy)."""
    spec: dict[str, Any] = field(default_factory=dict)
    """The service's topology entry as the state file holds it (``etcd = "kv"``...)."""

    def _supervisor(self) -> dict[str, Any]:
        if self.restart_status is None:
            return {}
        try:
            data = json.loads(self.restart_status.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def restarts(self) -> int | None:
        """Restarts by the service's policy so far; None without a policy."""
        if self.restart_status is None:
            return None
        return int(self._supervisor().get("restarts", 0))

    @property
    def pids(self) -> list[int]:
        return [int(p["pid"]) for p in self.processes if _alive(int(p["pid"]))]

    def status(self) -> str:
        """'running', 'stopped', 'paused', 'partial' or 'restarting' (a restart policy waits
        out its backoff), as the service classes say it."""
        if not self.processes:
            return "stopped"
        alive = self.pids
        if not alive:
            return "stopped"
        if any(_state(pid) == "T" for pid in alive):
            return "paused"
        if len(alive) != len(self.processes):
            return "partial"
        return "restarting" if self._supervisor().get("state") == "backoff" else "running"


@dataclass(frozen=True)
class EnvironmentView:
    name: str
    env_id: str
    services: dict[str, ServiceView]

    @classmethod
    def load(cls, name: str, state_root: Path) -> EnvironmentView:
        store = StateStore(state_root)
        state_file = store.env(name).state_file
        if not state_file.exists():
            known = store.env_names()
            raise EnvironmentStateError(
                f"no environment named {name!r}{did_you_mean(name, known)}",
                checked=[str(state_file.resolve())],
                fix=["start it: shakedown up" + (f" --name {name}" if name != "default" else ""),
                     f"environments here: {', '.join(known) or 'none'}",
                     "or run the command from the directory of its shakedown.toml"])
        try:
            state = json.loads(state_file.read_text())
            specs = (state.get("topology") or {}).get("services") or {}
            services = {key: _service(key, value, specs.get(key) or {})
                        for key, value in state["services"].items()}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise EnvironmentStateError(
                f"the state file of environment {name!r} cannot be read ({exc})",
                checked=[str(state_file)],
                fix=[f"take it down: shakedown down --name {name}", "then start it again"]
            ) from None
        return cls(name=str(state["name"]), env_id=str(state["env_id"]), services=services)

    def __getitem__(self, service: str) -> ServiceView:
        if service not in self.services:
            raise ShakedownError(f"no service named {service!r} in environment {self.name!r}"
                                 f"{did_you_mean(service, self.services)}",
                                 checked=[f"services: {', '.join(self.services)}"],
                                 fix=["name one of the services listed"])
        return self.services[service]

    def log_of(self, service: str) -> Path:
        """The log of ``service``, or of one of its parts: ``aws/lambda/NAME``."""
        if service in self.services:
            return self.services[service].log_path
        owner, _, part = service.partition("/")
        if part and owner in self.services:
            view = self.services[owner]
            # a part made after the state was saved (an instance launched later) is found by
            # the naming rule of HasLogParts: SERVICE.KEY.log beside the service's log
            beside = view.log_path.with_name(f"{owner}.{part.replace('/', '.')}.log")
            parts = {**view.log_parts, **({part: beside} if beside.is_file() else {})}
            if part not in parts:
                raise ShakedownError(f"service {owner!r} has no log {part!r}",
                                     checked=[f"logs: {', '.join(parts) or 'none'}"],
                                     fix=[f"name one of them: shakedown logs {owner}/KEY"])
            return parts[part]
        return self[service].log_path  # the error that lists the services


def _service(name: str, state: dict[str, Any], spec: dict[str, Any]) -> ServiceView:
    view = state.get("view")
    if not isinstance(view, dict):
        raise KeyError("view (written by this version of shakedown)")
    return ServiceView(name=name, kind=str(state["kind"]), url=str(view["url"]),
                       exports={str(k): str(v) for k, v in view["exports"].items()},
                       log_path=Path(view["log_path"]),
                       processes=list(state.get("processes") or []),
                       log_parts={str(k): Path(v)
                                  for k, v in (view.get("log_parts") or {}).items()},
                       restart_status=Path(view["restart_status"])
                       if view.get("restart_status") else None,
                       spec=dict(spec))


def _state(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            data = handle.read()
    except OSError:
        return None
    return data[data.rfind(b")") + 2:][:1].decode() or None


def _alive(pid: int) -> bool:
    return _state(pid) not in (None, "Z", "X")


def uptime(pid: int) -> str:
    """How long a process has run, from /proc (start time in clock ticks since boot)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
        with open("/proc/uptime") as handle:
            booted = float(handle.read().split()[0])
    except (OSError, IndexError, ValueError):
        return "-"
    seconds = booted - int(fields[19]) / os.sysconf("SC_CLK_TCK")
    return f"{seconds:.0f}s" if seconds < 120 else f"{seconds / 60:.0f}m"
