"""The ECS service scheduler: keeps each service's running tasks at its ``desiredCount`` as ECS
does. Too few (scale out, or a task that stopped): it starts tasks, with the event
``(service S) has started N tasks: (task ID).``; too many (scale in, DeleteService): it stops
the newest first (``stopCode`` ServiceSchedulerInitiated, ``stoppedReason`` "Scaling activity
initiated by (deployment ID)") with ``(service S) has stopped N running tasks: ...``; and
``(service S) has reached a steady state.`` once running equals desired. Tasks that stop before
they ever ran slow the next starts down (a doubling backoff, up to 5 s, as ECS throttles a
service that cannot start tasks). Counts (running, pending, the deployment's) follow the
tasks."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._ecs_tasks import PENDING, PROVISIONING, RUNNING, STOPPED, TaskRun
from ._events import Events

MAX_BACKOFF = 5.0


@dataclass
class Scheduled:
    """One ECS service the scheduler keeps in step."""

    model: Any  # moto's Service
    backend: Any
    failures: int = 0
    not_before: float = 0.0
    steady: bool = False

    @property
    def key(self) -> tuple[str, str]:
        return str(self.model.cluster_name), str(self.model.name)


class Scheduler:
    """One thread for every service: woken by any change, and every 0.1 s."""

    def __init__(self, events: Events, runs: Callable[[], list[TaskRun]],
                 start_task: Callable[[Scheduled], TaskRun | str],
                 stop_task: Callable[[TaskRun, str, str], None]) -> None:
        self.events = events
        self.runs = runs
        self.start_task = start_task
        self.stop_task = stop_task
        self.services: dict[tuple[str, str], Scheduled] = {}
        self.wake = threading.Event()
        self._closed = threading.Event()
        self._lock = threading.RLock()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="ecs-scheduler")

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._closed.set()
        self.wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def track(self, model: Any, backend: Any) -> None:
        with self._lock:
            scheduled = Scheduled(model, backend)
            old = self.services.get(scheduled.key)
            if old is not None and old.model is model:
                return
            self.services[scheduled.key] = scheduled
        self.wake.set()

    def task_stopped(self, run: TaskRun) -> None:
        """A task of a service stopped: count a failure to start if it never ran."""
        with self._lock:
            scheduled = self.services.get((run.cluster, run.service or ""))
            if scheduled is not None and run.service is not None:
                if run.reached_running:
                    scheduled.failures = 0
                else:
                    scheduled.failures += 1
                    scheduled.not_before = time.monotonic() + min(
                        MAX_BACKOFF, 0.1 * 2 ** (scheduled.failures - 1))
        self.wake.set()

    def clear(self) -> None:
        with self._lock:
            self.services.clear()

    def _loop(self) -> None:
        while not self._closed.is_set():
            self.wake.wait(0.1)
            self.wake.clear()
            if self._closed.is_set():
                return
            with self._lock:
                for scheduled in list(self.services.values()):
                    try:
                        self.reconcile(scheduled)
                    except Exception as exc:  # one service's failure must not stop the rest
                        event(scheduled.model, f"(service {scheduled.model.name}) shakedown's "
                                               f"scheduler failed: {exc}")

    def reconcile(self, scheduled: Scheduled) -> None:
        service = scheduled.model
        cluster, name = scheduled.key
        active = service.status == "ACTIVE"
        desired = int(service.desired_count or 0) if active else 0
        deployment = service.deployments[0]["id"] if service.deployments else "ecs-svc/0"
        mine = [r for r in self.runs() if r.cluster == cluster and r.service == name
                and r.state != STOPPED and not r.stop_requested.is_set()]
        current = [r for r in mine if r.deployment == deployment]
        old = [r for r in mine if r.deployment != deployment]
        if len(current) < desired and time.monotonic() >= scheduled.not_before:
            self._scale_out(scheduled, desired - len(current))
        elif len(current) > desired:
            extra = sorted(current, key=lambda r: (r.state == RUNNING, -r.started))
            self._scale_in(scheduled, extra[:len(current) - desired], deployment)
        if old and sum(r.state == RUNNING for r in current) >= desired:
            self._scale_in(scheduled, old, deployment)
        self._count(scheduled, desired, deployment)
        if not active and not mine and service.status == "DRAINING":
            service.status = "INACTIVE"

    def _scale_out(self, scheduled: Scheduled, count: int) -> None:
        started = []
        for _ in range(count):
            outcome = self.start_task(scheduled)
            if isinstance(outcome, str):
                event(scheduled.model, outcome)
                scheduled.not_before = time.monotonic() + 1.0
                break
            started.append(outcome)
        if started:
            ids = " ".join(f"(task {r.id})" for r in started)
            self._event(scheduled, f"(service {scheduled.model.name}) has started "
                                   f"{len(started)} tasks: {ids}.")

    def _scale_in(self, scheduled: Scheduled, runs: list[TaskRun], deployment: str) -> None:
        if not runs:
            return
        for run in runs:
            self.stop_task(run, "ServiceSchedulerInitiated",
                           f"Scaling activity initiated by (deployment {deployment})")
        ids = " ".join(f"(task {r.id})" for r in runs)
        self._event(scheduled, f"(service {scheduled.model.name}) has stopped {len(runs)} "
                               f"running tasks: {ids}.")

    def _count(self, scheduled: Scheduled, desired: int, deployment: str) -> None:
        service = scheduled.model
        cluster, name = scheduled.key
        mine = [r for r in self.runs() if r.cluster == cluster and r.service == name
                and r.state != STOPPED]
        running = sum(r.state == RUNNING for r in mine)
        pending = sum(r.state in (PROVISIONING, PENDING) for r in mine)
        service.running_count, service.pending_count = running, pending
        for record in service.deployments or []:
            if record.get("id") == deployment:
                done = running == desired and len(mine) == running
                record.update(runningCount=running, pendingCount=pending,
                              desiredCount=desired,
                              rolloutState="COMPLETED" if done else "IN_PROGRESS")
        steady = running == desired and len(mine) == running
        if steady and not scheduled.steady:
            self._event(scheduled, f"(service {name}) has reached a steady state.")
        scheduled.steady = steady

    def _event(self, scheduled: Scheduled, message: str) -> None:
        event(scheduled.model, message)
        self.events.emit("ecs.service", cluster=scheduled.key[0], service=scheduled.key[1],
                         message=message)


def event(service: Any, message: str) -> None:
    """Add a service event, newest first, as DescribeServices lists them (at most 100)."""
    from moto.core.utils import utcnow

    service.events.insert(0, {"id": str(uuid.uuid4()), "createdAt": utcnow(),
                              "message": message})
    del service.events[100:]
