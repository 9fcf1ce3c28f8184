"""ECS tasks as native processes: each container of a task runs the command its image is mapped
to (in a process group of its own), on host ports the emulator picks for its port mappings,
with its mount points as directories that outlive the task. A task's life, as ECS reports it:
``PROVISIONING`` (ports and volumes), ``PENDING`` (processes started, readiness and health
checks not yet passed), ``RUNNING`` (every container ready and healthy), ``STOPPING`` (SIGTERM,
then SIGKILL after the container's stop timeout), ``STOPPED`` with ``stopCode``,
``stoppedReason`` and each container's ``exitCode`` (128 + signal for a process a signal
ended, as Docker reports it)."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._children import child_env, kill_child, start_child, stop_child
from ._events import Events

PROVISIONING, PENDING, RUNNING, STOPPING, STOPPED = (
    "PROVISIONING", "PENDING", "RUNNING", "STOPPING", "STOPPED")


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def exit_code(returncode: int) -> int:
    """Docker's exit code: 128 + N for a process that signal N ended."""
    return 128 - returncode if returncode < 0 else returncode


@dataclass
class ContainerRun:
    """One container of a task: its process, ports, readiness check and moto's model."""

    model: Any  # moto's Container
    name: str
    essential: bool
    argv: list[str]
    cwd: str
    env: dict[str, str]
    ready: dict[str, Any] | None
    stop_timeout: float
    ports: list[tuple[int, int]]  # (container port, host port)
    log_path: Path
    popen: subprocess.Popen[bytes] | None = None
    ready_at: float | None = None
    failures: int = 0

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def probe(self, host: str) -> bool:
        """One readiness/health check: True when it passes."""
        check = self.ready
        if check is None:
            return self.alive()
        timeout = float(check.get("timeout") or 2.0)
        try:
            if check.get("http"):
                url = f"http://{host}:{self.ports[0][1]}{check['http']}"
                with urllib.request.urlopen(url, timeout=timeout) as answer:
                    return int(answer.status) == int(check.get("status") or 200)
            if check.get("tcp"):
                socket.create_connection((host, self.ports[0][1]), timeout=timeout).close()
                return True
            done = subprocess.run(list(check["command"]), env=self.env, cwd=self.cwd,
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, timeout=timeout, check=False)
            return done.returncode == 0
        except (OSError, subprocess.TimeoutExpired, ValueError):
            return False


@dataclass
class TaskRun:
    """A task whose containers shakedown runs, and what its life has been so far."""

    task: Any  # moto's Task (NativeTask)
    cluster: str
    service: str | None  # the ECS service whose scheduler started it
    deployment: str
    containers: list[ContainerRun]
    ephemeral: list[Path] = field(default_factory=list)
    stop_requested: threading.Event = field(default_factory=threading.Event)
    reached_running: bool = False
    started: float = field(default_factory=time.time)

    @property
    def id(self) -> str:
        return str(self.task.id)

    @property
    def state(self) -> str:
        return str(self.task.last_status)

    def describe(self) -> dict[str, Any]:
        first = self.containers[0] if self.containers else None
        return {
            "task_id": self.id, "task_arn": self.task.task_arn, "cluster": self.cluster,
            "service": self.service, "group": self.task.group,
            "task_definition": self.task.task_definition_arn, "state": self.state,
            "desired": self.task.desired_status, "health": self.task.health_status,
            "stop_code": self.task.stop_code or None,
            "stopped_reason": self.task.stopped_reason or None,
            "host": "127.0.0.1",
            "ports": {str(c): h for run in self.containers for c, h in run.ports},
            "containers": [{"name": c.name, "pid": c.popen.pid if c.popen else None,
                            "pgid": c.popen.pid if c.popen else None, "alive": c.alive(),
                            "exit_code": c.model.exitCode, "log": str(c.log_path),
                            "health": c.model.health_status}
                           for c in self.containers],
            "pid": first.popen.pid if first and first.popen else None,
            "pgid": first.popen.pid if first and first.popen else None,
            "alive": any(c.alive() for c in self.containers),
            "tags": {t["key"]: t["value"] for t in self.task.tags or []
                     if "key" in t and "value" in t},
            "started": self.started,
        }


class TaskLife:
    """Runs one task through its states in a thread of its own; ``on_change`` is told when
    it reaches RUNNING and when it is STOPPED (the service scheduler acts on both)."""

    def __init__(self, run: TaskRun, events: Events, host: str, health_grace: float,
                 on_change: Callable[[TaskRun], None]) -> None:
        self.run = run
        self.events = events
        self.host = host
        self.health_grace = health_grace
        self.on_change = on_change
        self._stop_code = ""
        self._stop_reason = ""
        self._lock = threading.Lock()

    def start(self) -> None:
        threading.Thread(target=self._life, daemon=True, name=f"ecs-{self.run.id}").start()

    # -- what others ask ----------------------------------------------------------------
    def request_stop(self, code: str, reason: str) -> None:
        """StopTask, or the scheduler scaling in: the task goes STOPPING at once."""
        with self._lock:
            if self.run.stop_requested.is_set():
                return
            self._stop_code, self._stop_reason = code, reason
            self.run.task.desired_status = STOPPED
            self.run.task.stopped_reason = reason
            self.run.task.stop_code = code
            if self.run.state != STOPPED:
                self._set(STOPPING)
            self.run.stop_requested.set()

    # -- the life ------------------------------------------------------------------------
    def _set(self, state: str) -> None:
        from moto.core.utils import utcnow

        task = self.run.task
        task.last_status = state
        now = utcnow()
        if state == PENDING:
            task.pull_started_at = task.pull_stopped_at = now
        elif state == RUNNING:
            task.started_at = now
        elif state == STOPPING:
            task.stopping_at = now
        elif state == STOPPED:
            task.stopped_at = task.execution_stopped_at = now
        self.events.emit("ecs.task", task_id=self.run.id, cluster=self.run.cluster,
                         service=self.run.service, group=task.group, state=state,
                         pids=[c.popen.pid for c in self.run.containers if c.popen],
                         exit_codes=[c.model.exitCode for c in self.run.containers],
                         stop_code=task.stop_code or None,
                         reason=task.stopped_reason or None)

    def _life(self) -> None:
        try:
            if self._spawn() and self._until_ready():
                self._while_running()
        except Exception as exc:  # the task must still reach STOPPED, whatever failed
            self.request_stop("TaskFailedToStart", f"shakedown: {type(exc).__name__}: {exc}")
        self._stop_all()

    def _spawn(self) -> bool:
        for container in self.run.containers:
            container.log_path.parent.mkdir(parents=True, exist_ok=True)
            with container.log_path.open("ab") as log:
                try:
                    container.popen = start_child(container.argv, env=container.env,
                                                  cwd=container.cwd, stdout=log)
                except OSError as exc:
                    log.write(f"shakedown: cannot start {container.argv}: {exc}\n".encode())
                    self.request_stop("TaskFailedToStart",
                                      f"CannotStartContainerError: {exc}")
                    return False
            container.model.last_status = PENDING
            container.model.runtime_id = str(container.popen.pid)
        if not self.run.stop_requested.is_set():
            self._set(PENDING)
        return not self.run.stop_requested.is_set()

    def _until_ready(self) -> bool:
        deadline = time.monotonic() + self.health_grace
        pending = list(self.run.containers)
        while pending:
            if self.run.stop_requested.is_set() or self._exited():
                return False
            for container in list(pending):
                if container.probe(self.host):
                    container.ready_at = time.time()
                    container.model.last_status = RUNNING
                    container.model.health_status = "HEALTHY" if container.ready else \
                        "UNKNOWN"
                    pending.remove(container)
            if not pending:
                break
            if time.monotonic() > deadline:
                self.request_stop("TaskFailedToStart", "Task failed container health checks")
                for container in pending:
                    container.model.health_status = "UNHEALTHY"
                return False
            interval = min(float((c.ready or {}).get("interval") or 0.01) for c in pending)
            self.run.stop_requested.wait(interval)
        task = self.run.task
        task.health_status = "HEALTHY" if any(c.ready for c in self.run.containers) \
            else "UNKNOWN"
        task.connectivity, task.connectivity_at = "CONNECTED", task.created_at
        self.run.reached_running = True
        self._set(RUNNING)
        self.on_change(self.run)
        return True

    def _while_running(self) -> None:
        checks = [c for c in self.run.containers if c.ready]
        next_check = time.monotonic() + min(
            (float(c.ready.get("check_interval") or 1.0) for c in checks if c.ready),
            default=3600.0)
        while not self.run.stop_requested.wait(0.02):
            if self._exited():
                return
            if checks and time.monotonic() >= next_check:
                self._health_round(checks)
                next_check = time.monotonic() + min(
                    float(c.ready.get("check_interval") or 1.0) for c in checks if c.ready)

    def _health_round(self, checks: list[ContainerRun]) -> None:
        for container in checks:
            assert container.ready is not None
            if container.probe(self.host):
                container.failures = 0
                continue
            container.failures += 1
            if container.failures >= int(container.ready.get("retries") or 3):
                container.model.health_status = "UNHEALTHY"
                self.run.task.health_status = "UNHEALTHY"
                if container.essential:
                    self.request_stop("TaskFailedToStart" if not self.run.reached_running
                                      else "ServiceSchedulerInitiated",
                                      "Task failed container health checks")
                    return

    def _exited(self) -> bool:
        """An essential container's process ended by itself: the task stops."""
        for container in self.run.containers:
            if container.popen is None or container.popen.poll() is None:
                continue
            if container.essential:
                self.request_stop("EssentialContainerExited",
                                  "Essential container in task exited")
                return True
        return False

    def _stop_all(self) -> None:
        threads = []
        for container in self.run.containers:
            if container.popen is not None:
                thread = threading.Thread(target=stop_child,
                                          args=(container.popen, container.stop_timeout))
                thread.start()
                threads.append(thread)
        for thread in threads:
            thread.join()
        for container in self.run.containers:
            if container.popen is not None:
                kill_child(container.popen)  # what the command left in its group
                container.model.exitCode = exit_code(int(container.popen.returncode or 0)) \
                    if container.popen.returncode is not None else None
            container.model.last_status = STOPPED
        for path in self.run.ephemeral:
            shutil.rmtree(path, ignore_errors=True)
        if not self.run.stop_requested.is_set():
            self.request_stop("EssentialContainerExited", "Essential container in task exited")
        self.run.task.desired_status = STOPPED
        self._set(STOPPED)
        self.on_change(self.run)


def container_env(base: dict[str, str]) -> dict[str, str]:
    """A container's environment: the emulator's own (tags, PATH) under ``base``."""
    env = child_env(base)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def python() -> str:
    return sys.executable


def kill_run(run: TaskRun) -> None:
    """SIGKILL every container's group at once (a reset)."""
    run.stop_requested.set()
    for container in run.containers:
        if container.popen is not None:
            with contextlib.suppress(Exception):
                kill_child(container.popen)
