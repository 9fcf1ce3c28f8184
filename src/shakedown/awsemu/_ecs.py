"""ECS in the emulator on native processes: hooks into moto's ECS model (its backend and the two
answers that carry ``failures``), not its HTTP layer, so that every path to a task acts on
processes. ``RunTask`` starts a task per count whose containers run the commands the topology
maps their images to (an unmapped image is ECS's ``failures`` entry, a task beyond the
capacity ``max_tasks`` ECS's capacity failure); ``StopTask`` stops it (SIGTERM, the stop
timeout, SIGKILL); ``CreateService``/``UpdateService``/``DeleteService`` hand services to the
scheduler (``_ecs_services``), which starts and stops tasks to match ``desiredCount`` and
replaces tasks that die; ``DescribeTasks`` shows each container's host address and port
(``networkBindings``); ``ListTasks`` filters by ``serviceName`` and, as ECS does, lists tasks
whose desired status is RUNNING unless asked otherwise. Each container gets
``ECS_CONTAINER_METADATA_URI_V4`` (task metadata with its cluster, ARN and service)."""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._ecs_services import Scheduled, Scheduler
from ._ecs_tasks import (
    PROVISIONING,
    STOPPED,
    ContainerRun,
    TaskLife,
    TaskRun,
    container_env,
    free_port,
    kill_run,
)
from ._events import Events
from ._settings import ComputeSettings
from ._wsgi import Environ, StartResponse, json_response

METADATA_PREFIX = "ecs-metadata/"
CAPACITY = ("Capacity is unavailable at this time. Please try again later or in a different "
            "availability zone")
_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class EcsSettings:
    images: dict[str, dict[str, Any]] = field(default_factory=dict)
    max_tasks: int = 32
    health_grace: float = 60.0
    clusters: tuple[str, ...] = ("default",)
    volumes: dict[str, str] = field(default_factory=dict)
    volume_root: str = ""

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> EcsSettings:
        ecs = dict((config.get("compute") or {}).get("ecs") or {})
        return cls(images=dict(ecs.get("images") or {}),
                   max_tasks=int(ecs.get("max_tasks") or 32),
                   health_grace=float(ecs.get("health_grace") or 60.0),
                   clusters=tuple(ecs.get("clusters") or ("default",)),
                   volumes=dict(ecs.get("volumes") or {}),
                   volume_root=str(ecs.get("volume_root") or ""))


class NoImage(Exception):
    """A container whose image the topology does not map."""


class EcsTasks:
    """The tasks run natively and the services scheduled, with moto's ECS model hooked."""

    def __init__(self, settings: ComputeSettings, config: dict[str, Any],
                 events: Events) -> None:
        self.settings = settings
        self.ecs = EcsSettings.from_config(config)
        self.events = events
        self._runs: dict[str, TaskRun] = {}
        self._lives: dict[str, TaskLife] = {}
        self._lock = threading.RLock()
        self._failures = threading.local()
        self.scheduler = Scheduler(events, self.runs, self._start_for_service,
                                   self.stop)
        self._task_class: Any = None

    def runs(self) -> list[TaskRun]:
        with self._lock:
            return list(self._runs.values())

    # -- moto hooks ----------------------------------------------------------------------
    def install(self) -> None:
        from moto.ecs.exceptions import InvalidParameterException
        from moto.ecs.models import EC2ContainerServiceBackend as Backend
        from moto.ecs.models import Task
        from moto.ecs.responses import EC2ContainerServiceResponse as Response

        class NativeTask(Task):
            """A Task whose lastStatus is what its processes make it (no ManagedState)."""

            @property
            def last_status(self) -> str:
                return str(self._native_status)

            @last_status.setter
            def last_status(self, value: str) -> None:
                self._native_status = value

        self._task_class = NativeTask
        ecs = self
        originals = {name: getattr(Backend, name) for name in (
            "_get_cluster", "list_clusters", "describe_clusters", "create_service",
            "update_service", "delete_service", "list_tasks", "describe_tasks")}
        answers = {name: getattr(Response, name) for name in ("run_task", "describe_tasks")}

        def get_cluster(backend: Any, name: str) -> Any:
            ecs._declare_clusters(backend)
            return originals["_get_cluster"](backend, name)

        def list_clusters(backend: Any) -> Any:
            ecs._declare_clusters(backend)
            return originals["list_clusters"](backend)

        def describe_clusters(backend: Any, names: Any) -> Any:
            ecs._declare_clusters(backend)
            return originals["describe_clusters"](backend, names)

        def run_task(backend: Any, cluster_str: str, task_definition_str: str, count: int,
                     overrides: Any, started_by: str, tags: Any, launch_type: str | None,
                     networking_configuration: Any = None, group: str | None = None,
                     platform_version: str | None = None,
                     capacity_provider_strategy: Any = None) -> list[Any]:
            if not 1 <= int(count or 1) <= 10:
                raise InvalidParameterException("count must be between 1 and 10")
            return ecs._run_task(backend, cluster_str, task_definition_str, int(count or 1),
                                 overrides, started_by, tags, launch_type,
                                 networking_configuration, group, platform_version)

        def stop_task(backend: Any, cluster_str: str, task_str: str, reason: str) -> Any:
            cluster = backend._get_cluster(cluster_str)
            task_id = task_str.split("/")[-1]
            run = ecs._runs.get(task_id)
            if run is None or run.cluster != cluster.name:
                raise InvalidParameterException("The referenced task was not found.")
            ecs.stop(run, "UserInitiated", reason or "Task stopped by user")
            return run.task

        def capacity(desired: Any) -> None:
            if desired is not None and int(desired) > ecs.ecs.max_tasks:
                raise InvalidParameterException(
                    f"desiredCount {desired} is above the capacity of shakedown's emulator: "
                    f"{ecs.ecs.max_tasks} tasks (services.{settings.service}.ecs.max_tasks in "
                    "the topology); ask for fewer tasks or raise max_tasks")

        settings = self.settings

        def create_service(backend: Any, cluster_str: str, service_name: str,
                           desired_count: int, *args: Any, **kwargs: Any) -> Any:
            capacity(desired_count)
            service = originals["create_service"](backend, cluster_str, service_name,
                                                  desired_count, *args, **kwargs)
            service.running_count, service.pending_count = 0, int(desired_count or 0)
            ecs.scheduler.track(service, backend)
            return service

        def update_service(backend: Any, properties: dict[str, Any]) -> Any:
            capacity(properties.get("desired_count"))
            service = originals["update_service"](backend, properties)
            ecs.scheduler.track(service, backend)
            ecs.scheduler.wake.set()
            return service

        def delete_service(backend: Any, cluster: str, name: str, force: bool) -> Any:
            service = originals["delete_service"](backend, cluster, name, force)
            if any(r.service == service.name and r.state != STOPPED for r in ecs.runs()):
                service.status = "DRAINING"
            ecs.scheduler.wake.set()
            return service

        def list_tasks(backend: Any, cluster_str: str | None = None,
                       container_instance: str | None = None, family: str | None = None,
                       started_by: str | None = None, service_name: str | None = None,
                       desiredStatus: str | None = None) -> list[Any]:
            tasks = originals["list_tasks"](backend, cluster_str, container_instance, family,
                                            started_by, None, desiredStatus or "RUNNING")
            if service_name:
                tasks = [t for t in tasks if t.group == f"service:{service_name.split('/')[-1]}"]
            return list(tasks)

        def describe_tasks(backend: Any, cluster_str: str, tasks: list[str]) -> list[Any]:
            found = originals["describe_tasks"](backend, cluster_str, tasks)
            known = {t.id for t in found} | {t.task_arn for t in found}
            ecs._failures.items = [
                {"arn": ref, "reason": "MISSING"} for ref in tasks
                if ref not in known and ref.split("/")[-1] not in known]
            return list(found)

        def answer_with_failures(name: str) -> Any:
            def answer(response: Any) -> Any:
                ecs._failures.items = []
                result = answers[name](response)
                failures = getattr(ecs._failures, "items", [])
                if failures and isinstance(result.result, dict):
                    result.result["failures"] = failures
                ecs._failures.items = []
                return result
            return answer

        hooks = {"_get_cluster": get_cluster, "list_clusters": list_clusters,
                 "describe_clusters": describe_clusters, "run_task": run_task,
                 "stop_task": stop_task, "create_service": create_service,
                 "update_service": update_service, "delete_service": delete_service,
                 "list_tasks": list_tasks, "describe_tasks": describe_tasks}
        for name, hook in hooks.items():
            setattr(Backend, name, hook)
        for name in answers:
            setattr(Response, name, answer_with_failures(name))
        self.scheduler.start()

    def _declare_clusters(self, backend: Any) -> None:
        for name in self.ecs.clusters:
            if name not in backend.clusters:
                backend.create_cluster(name)

    # -- starting tasks --------------------------------------------------------------------
    def _run_task(self, backend: Any, cluster_str: str, task_definition_str: str, count: int,
                  overrides: Any, started_by: str, tags: Any, launch_type: str | None,
                  networking: Any, group: str | None, platform_version: str | None
                  ) -> list[Any]:
        from moto.ecs.exceptions import InvalidParameterException

        if launch_type and launch_type not in ("EC2", "FARGATE", "EXTERNAL"):
            raise InvalidParameterException("launch type should be one of "
                                            "[EC2,FARGATE,EXTERNAL]")
        cluster = backend._get_cluster(cluster_str)
        definition = backend.describe_task_definition(task_definition_str)
        tasks, failures = [], []
        for _ in range(count):
            try:
                run = self.launch(backend, cluster, definition, overrides=overrides or {},
                                  started_by=started_by or "", tags=tags or [],
                                  launch_type=launch_type or "", networking=networking,
                                  group=group or f"family:{definition.family}",
                                  service=None, deployment="")
            except NoImage as exc:
                failures.append({"arn": definition.arn, "reason": "CannotPullContainerError",
                                 "detail": str(exc)})
                break
            except OverflowError as exc:
                failures.append({"arn": definition.arn, "reason": CAPACITY,
                                 "detail": str(exc)})
                continue
            tasks.append(run.task)
        self._failures.items = failures
        return tasks

    def _start_for_service(self, scheduled: Scheduled) -> TaskRun | str:
        service, backend = scheduled.model, scheduled.backend
        name = service.name
        try:
            cluster = backend._get_cluster(service.cluster_name)
            definition = backend.describe_task_definition(service.task_definition)
            deployment = service.deployments[0]["id"] if service.deployments else "ecs-svc/0"
            networking = getattr(service, "network_configuration", None) or None
            tags = list(service.tags) if service.propagate_tags == "SERVICE" else []
            return self.launch(backend, cluster, definition, overrides={},
                               started_by=deployment, tags=tags,
                               launch_type=service.launch_type or "", networking=networking,
                               group=f"service:{name}", service=name, deployment=deployment)
        except NoImage as exc:
            return (f"(service {name}) was unable to place a task. Reason: "
                    f"CannotPullContainerError: {exc}")
        except OverflowError:
            return (f"(service {name}) was unable to place a task because no container "
                    f"instance met all of its requirements. Reason: {CAPACITY}.")
        except Exception as exc:
            return f"(service {name}) was unable to place a task. Reason: {exc}"

    def launch(self, backend: Any, cluster: Any, definition: Any, *, overrides: dict[str, Any],
               started_by: str, tags: list[Any], launch_type: str, networking: Any,
               group: str, service: str | None, deployment: str) -> TaskRun:
        """Create moto's task and start its containers' processes (PROVISIONING)."""
        from moto.core.utils import utcnow
        from moto.ecs import models

        container_class: Any = models.Container  # a CloudFormation model mypy calls abstract
        images = [self.image(c, definition) for c in definition.container_definitions]
        with self._lock:
            active = sum(r.state != STOPPED for r in self._runs.values())
            if active >= self.ecs.max_tasks:
                raise OverflowError(f"{active} tasks run, the capacity of shakedown's "
                                    f"emulator (ecs.max_tasks = {self.ecs.max_tasks})")
            task = self._task_class(cluster, definition, None, None, backend=backend,
                                    group=group, launch_type=launch_type,
                                    overrides=overrides, started_by=started_by, tags=tags,
                                    networking_configuration=networking,
                                    capacity_provider_name=None)
            task.last_status = PROVISIONING
            task.created_at = utcnow()
            task.health_status = "UNKNOWN"
            task.stop_code = ""
            task.version = 1
            task.cpu, task.memory = definition.cpu, definition.memory
            run = TaskRun(task, cluster.name, service, deployment, [])
            task.containers = []
            for spec, image in zip(definition.container_definitions, images, strict=True):
                model = container_class(definition)
                model.name, model.image = spec.get("name"), spec.get("image")
                model.task_arn = task.task_arn
                model.exitCode = None
                model.health_status = "UNKNOWN"
                run.containers.append(self._container(run, model, spec, image, definition,
                                                      overrides))
                task.containers.append(model)
            backend.tasks.setdefault(cluster.name, {})[task.task_arn] = task
            self._runs[run.id] = run
            life = TaskLife(run, self.events, self.settings.host, self.ecs.health_grace,
                            self._changed)
            self._lives[run.id] = life
        life.events.emit("ecs.task", task_id=run.id, cluster=cluster.name, service=service,
                         group=group, state=PROVISIONING, pids=[], exit_codes=[],
                         stop_code=None, reason=None)
        life.start()
        return run

    def image(self, spec: dict[str, Any], definition: Any) -> dict[str, Any]:
        image = str(spec.get("image") or "")
        repository = image.rsplit("/", 1)[-1].split("@")[0].split(":")[0]
        for key in (image, repository, f"family:{definition.family}"):
            if key in self.ecs.images:
                return self.ecs.images[key]
        raise NoImage(f"image {image!r} of container {spec.get('name')!r} is not mapped to a "
                      f"command: add [services.{self.settings.service}.images.\"{image}\"] "
                      "with command = [...] to the topology (or images.\"family:"
                      f"{definition.family}\")")

    def _container(self, run: TaskRun, model: Any, spec: dict[str, Any],
                   image: dict[str, Any], definition: Any, overrides: dict[str, Any]
                   ) -> ContainerRun:
        host = self.settings.host
        ports = [(int(m["containerPort"]), int(m.get("hostPort") or 0) or free_port(host))
                 for m in spec.get("portMappings") or [] if m.get("containerPort")]
        model.network_bindings = [{"bindIP": host, "containerPort": c, "hostPort": h,
                                   "protocol": "tcp"} for c, h in ports]
        model.network_interfaces = [{"attachmentId": str(uuid.uuid4()),
                                     "privateIpv4Address": host}]
        mounts = self._mounts(run, spec, definition)
        values = {"python": _python(), "task_id": run.id,
                  "port": str(ports[0][1]) if ports else "",
                  **{f"port_{c}": str(h) for c, h in ports},
                  **{f"mount:{path}": str(directory) for path, directory in mounts.items()}}
        name = str(spec.get("name") or "main")
        env: dict[str, str] = {
            "AWS_ENDPOINT_URL": self.settings.endpoint,
            "AWS_ACCESS_KEY_ID": self.settings.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.settings.secret_access_key,
            "AWS_DEFAULT_REGION": self.settings.region, "AWS_REGION": self.settings.region,
            "PORT": values["port"]}
        env.update({k: _expand(v, values) for k, v in (image.get("env") or {}).items()})
        env.update({str(e["name"]): str(e.get("value", "")) for e in
                    spec.get("environment") or [] if "name" in e})
        for override in overrides.get("containerOverrides") or []:
            if override.get("name") == name:
                env.update({str(e["name"]): str(e.get("value", "")) for e in
                            override.get("environment") or [] if "name" in e})
        env["ECS_CONTAINER_METADATA_URI_V4"] = (
            f"{self.settings.endpoint}/_shakedown/{METADATA_PREFIX}{run.id}/{name}")
        ready = image.get("ready") or _definition_check(spec.get("healthCheck")) or (
            {"tcp": True, "interval": 0.01} if ports else None)
        argv = [_expand(arg, values) for arg in image["command"]]
        stop_timeout = float(spec.get("stopTimeout") or image.get("stop_timeout") or 30)
        return ContainerRun(model, name, bool(spec.get("essential", True)), argv,
                            str(image.get("cwd") or "/"), container_env(env), ready,
                            stop_timeout, ports,
                            self.settings.log_path("ecs", run.id, _SAFE.sub("_", name)))

    def _mounts(self, run: TaskRun, spec: dict[str, Any], definition: Any) -> dict[str, Path]:
        """containerPath -> host directory for each mount point."""
        volumes = {v.get("name"): v for v in definition.volumes or []}
        root = Path(self.ecs.volume_root or self.settings.data_dir / "ecs-volumes")
        found: dict[str, Path] = {}
        for mount in spec.get("mountPoints") or []:
            name = str(mount.get("sourceVolume") or "")
            volume = volumes.get(name) or {}
            if name in self.ecs.volumes:
                directory = Path(self.ecs.volumes[name])
            elif "efsVolumeConfiguration" in volume:
                efs = volume["efsVolumeConfiguration"]
                sub = str(efs.get("rootDirectory") or "/").strip("/")
                directory = root / "_efs" / _SAFE.sub("_", str(efs.get("fileSystemId"))) / sub
            elif (volume.get("host") or {}).get("sourcePath"):
                directory = root / "_host" / _SAFE.sub(
                    "_", str(volume["host"]["sourcePath"]).strip("/"))
            else:  # a task's own (Docker) volume: gone with the task
                directory = self.settings.data_dir / "ecs-tasks" / run.id / _SAFE.sub("_", name)
                run.ephemeral.append(directory.parent)
            directory.mkdir(parents=True, exist_ok=True)
            found[str(mount.get("containerPath") or "")] = directory
        return found

    # -- stopping and watching -----------------------------------------------------------
    def stop(self, run: TaskRun, code: str, reason: str) -> None:
        life = self._lives.get(run.id)
        if life is not None:
            life.request_stop(code, reason)

    def _changed(self, run: TaskRun) -> None:
        if run.state == STOPPED:
            self.scheduler.task_stopped(run)
        else:
            self.scheduler.wake.set()

    # -- what the kind reads ---------------------------------------------------------------
    def describe(self) -> list[dict[str, Any]]:
        return [r.describe() for r in self.runs()]

    def services(self) -> list[dict[str, Any]]:
        return [{"cluster": s.key[0], "service": s.key[1], "status": s.model.status,
                 "desired": s.model.desired_count, "running": s.model.running_count,
                 "pending": s.model.pending_count}
                for s in list(self.scheduler.services.values())]

    def metadata(self, environ: Environ, start_response: StartResponse, path: str
                 ) -> Iterable[bytes]:
        task_id, _, rest = path[len(METADATA_PREFIX):].partition("/")
        container, _, what = rest.partition("/")
        run = self._runs.get(task_id)
        if run is None:
            return json_response(start_response, 404, {"error": "no such task"})
        task = run.task
        containers = [{"DockerId": c.model.runtime_id if hasattr(c.model, "runtime_id")
                       else "", "Name": c.name, "Image": c.model.image,
                       "KnownStatus": c.model.last_status,
                       "Networks": [{"NetworkMode": "awsvpc",
                                     "IPv4Addresses": [self.settings.host]}],
                       "Ports": [{"ContainerPort": p, "HostPort": h, "Protocol": "tcp",
                                  "HostIp": self.settings.host} for p, h in c.ports]}
                      for c in run.containers]
        if what == "task":
            family, _, revision = task.task_definition_arn.rsplit("/", 1)[-1].partition(":")
            return json_response(start_response, 200, {
                "Cluster": task.cluster_arn, "TaskARN": task.task_arn, "Family": family,
                "Revision": revision, "DesiredStatus": task.desired_status,
                "KnownStatus": task.last_status, "ServiceName": run.service,
                "AvailabilityZone": f"{self.settings.region}a", "LaunchType":
                task.launch_type or "FARGATE", "Containers": containers})
        mine = next((c for c in containers if c["Name"] == container), None)
        if mine is None:
            return json_response(start_response, 404, {"error": "no such container"})
        return json_response(start_response, 200, mine)

    # -- lifecycle -------------------------------------------------------------------------
    def reset(self) -> None:
        """moto forgets every task and service: their processes are killed."""
        self.scheduler.clear()
        with self._lock:
            runs = list(self._runs.values())
            self._runs.clear()
            self._lives.clear()
        for run in runs:
            kill_run(run)

    def shutdown(self) -> None:
        self.scheduler.close()
        for life in list(self._lives.values()):
            for container in life.run.containers:  # a short grace: the environment stops
                container.stop_timeout = min(container.stop_timeout, 3.0)
            life.request_stop("UserInitiated", "shakedown: the emulator stops")
        for run in self.runs():
            for container in run.containers:
                if container.popen is not None:
                    try:
                        container.popen.wait(max(container.stop_timeout, 0) + 5)
                    except Exception:
                        kill_run(run)


def _expand(value: str, values: dict[str, str]) -> str:
    return re.sub(r"\{([^{}]*)\}", lambda m: values.get(m.group(1), m.group(0)), value)


def _python() -> str:
    import sys

    return sys.executable


def _definition_check(check: Any) -> dict[str, Any] | None:
    """The task definition's ``healthCheck``, run natively (CMD-SHELL under ``sh -c``)."""
    if not isinstance(check, dict) or not check.get("command"):
        return None
    command = [str(part) for part in check["command"]]
    if command[0] == "NONE":
        return None
    argv = ["sh", "-c", " ".join(command[1:])] if command[0] == "CMD-SHELL" else (
        command[1:] if command[0] == "CMD" else command)
    return {"command": argv, "interval": 0.05, "retries": int(check.get("retries") or 3),
            "check_interval": float(check.get("interval") or 30),
            "timeout": float(check.get("timeout") or 5)}
