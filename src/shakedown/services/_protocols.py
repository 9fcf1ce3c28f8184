"""The optional abilities of a service, as protocols: faults, the plugin and the environment ask
a service what it can do (``isinstance(service, Pausable)``) instead of asking what kind it is,
and kinds that work together (HAProxy in front of a Patroni cluster) meet through these and
through declared exports, never by importing each other.

``ClusterMember`` is the one value type they share: a member of a replicated cluster."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class ClusterMember:
    """One member of a cluster: its name, database address and (Patroni) REST address."""

    index: int
    name: str
    host: str
    port: int
    rest_port: int
    url: str

    @property
    def rest_url(self) -> str:
        return f"http://{self.host}:{self.rest_port}"


@runtime_checkable
class Killable(Protocol):
    """SIGKILL the service's processes (or one of them, by role)."""

    def kill(self, role: str | None = None) -> None: ...
    def restart(self) -> None: ...


@runtime_checkable
class Pausable(Protocol):
    """Freeze and thaw the service's processes (or one of them, by role)."""

    def pause(self, role: str | None = None) -> None: ...
    def resume(self, role: str | None = None) -> None: ...


@runtime_checkable
class Restartable(Protocol):
    """Start again after a stop or a kill, keeping ports and data, and wait until ready."""

    def start_again(self) -> None: ...
    def restart(self) -> None: ...


@runtime_checkable
class HasProcesses(Protocol):
    """Processes addressable by role (``redis-server``, ``db0``, ``postgres0``...)."""

    def roles(self) -> list[str]: ...
    @property
    def pids(self) -> list[int]: ...


@runtime_checkable
class HasLogParts(Protocol):
    """Logs beside the service's own, by key (a Lambda function's, an instance's), named
    ``SERVICE.KEY.log`` (``/`` in the key as ``.``) in the service's log directory, so that
    ``shakedown logs SERVICE/KEY`` finds one made after the state file was written."""

    def log_paths(self) -> dict[str, Path]: ...


@runtime_checkable
class ResetsPerTest(Protocol):
    """Work the plugin does after every test that used the service (drop the test's
    databases...), so the next test starts from the declared state."""

    def reset_after_test(self) -> None: ...


@runtime_checkable
class HasPrimary(Protocol):
    """A replicated database: one leader, replicas, URLs that follow them."""

    @property
    def primary_url(self) -> str: ...
    @property
    def replica_url(self) -> str: ...
    def leader(self) -> ClusterMember | None: ...
    def replicas(self) -> list[ClusterMember]: ...


@runtime_checkable
class HasMembers(HasPrimary, Protocol):
    """A cluster whose members a front (HAProxy) routes to, with its credentials."""

    @property
    def members(self) -> list[ClusterMember]: ...
    @property
    def user(self) -> str: ...
    @property
    def password(self) -> str: ...
    @property
    def database(self) -> str: ...


@runtime_checkable
class Front(Protocol):
    """A service that fronts another (``fronts`` in its spec): its ports replace the fronted
    service's own addresses in that service's URLs."""

    @property
    def host(self) -> str: ...
    @property
    def primary_port(self) -> int: ...
    @property
    def replica_port(self) -> int: ...


@runtime_checkable
class AwsFaultable(Protocol):
    """A service whose AWS operations can be made to fail or slow down."""

    def add_error_rule(self, service: str, operation: str, error: str,
                       probability: float = 1.0, status: int | None = None,
                       message: str | None = None, *, times: int | None = None) -> str: ...

    def add_latency_rule(self, service: str, operation: str, ms: float,
                         probability: float = 1.0, *, times: int | None = None) -> str: ...

    def remove_rule(self, rule_id: str) -> None: ...

    def clear_rules(self) -> None: ...

    def rules(self) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class TaskTarget:
    """One running task a router can send traffic to: its address and the ECS-style facts a
    route may select on (the task's ARN, its tags)."""

    host: str
    port: int
    task_id: str = ""
    tags: tuple[tuple[str, str], ...] = ()


@runtime_checkable
class RoutesTasks(Protocol):
    """A service that runs groups of tasks (an AWS emulator's ECS services): a router in front
    asks it for the healthy running tasks of one ECS service, by cluster and service name, and
    for a container port of the task definition; the answer changes as tasks start, stop and
    are replaced, so a router asks again (e.g. every 100-200 ms)."""

    def task_targets(self, cluster: str, service: str,
                     container_port: int | None = None) -> list[TaskTarget]: ...


@runtime_checkable
class Supervised(Protocol):
    """A service whose process a supervisor starts again by a restart policy (``no``,
    ``on-failure``, ``always``): the policy, the restarts so far, and the supervisor's status
    file (None without a supervisor) that ``shakedown status`` reads."""

    @property
    def restart_policy(self) -> str: ...
    def restarts(self) -> int: ...
    @property
    def restart_status_path(self) -> Path | None: ...
