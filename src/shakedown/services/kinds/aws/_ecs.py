"""The ECS side of the ``aws`` kind (mixed into ``AwsService`` on top of ``AwsCompute``): the
images the topology maps to commands, checked before the emulator starts; the named volumes
task definitions mount (in the state directory, so they outlive every task); what tests see
of the tasks (``tasks()``, ``ecs_services()``); the running, healthy tasks of an ECS service as
router targets (``RoutesTasks.task_targets``); tasks' processes as fault targets
(``task:ID``) and their logs (``ecs/ID``); the CloudWatch metrics the system put
(``metrics()``); mail out (``sent_emails()``) and in (``receive_email()``)."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ....errors import FaultError, ShakedownError, TopologyError
from ....process import Spawned
from ....topology.specs._aws_ecs import image_config
from ..._base import Volume
from ..._protocols import TaskTarget
from ._compute import AwsCompute

TASK_ROLE = "task:"


class AwsEcs(AwsCompute):
    """Mixin of ``AwsService``: ECS tasks and services run natively by the emulator."""

    # -- configuration ---------------------------------------------------------------
    def compute_config(self) -> dict[str, Any]:
        config = super().compute_config()
        if self.spec.images:
            config["ecs"] = self._ecs_config()
        return config

    def _ecs_config(self) -> dict[str, Any]:
        images = {image: self._image_config(image) for image in self.spec.images}
        return {"images": images, "max_tasks": self.spec.ecs.max_tasks,
                "health_grace": self.spec.ecs.health_grace,
                "clusters": list(self.spec.ecs.clusters),
                "volumes": {name: str(v.path) for name, v in self._ecs_volumes().items()},
                "volume_root": str(self._volume_root())}

    def _image_config(self, image: str) -> dict[str, Any]:
        spec = self.spec.images[image]
        config = image_config(spec)
        cwd = self.ctx.topology.resolve_path(spec.cwd) if spec.cwd else \
            self.ctx.topology.base_dir
        argv = [arg.replace("{python}", sys.executable) for arg in spec.command]
        found = shutil.which(argv[0]) if "/" not in argv[0] else (
            argv[0] if Path(cwd, argv[0]).exists() else None)
        if found is None:
            raise TopologyError(f"services.{self.name}.images.{image!r}.command: "
                                f"{argv[0]!r} not found",
                                checked=[f"PATH and {cwd}"],
                                fix=["install it, or give its path (relative to cwd), or "
                                     "\"{python}\" for this Python"])
        if not cwd.is_dir():
            raise TopologyError(f"services.{self.name}.images.{image!r}.cwd: {cwd} is not a "
                                "directory", checked=[f"cwd = {spec.cwd!r}"],
                                fix=["give a directory relative to the topology file"])
        config.update(command=argv, cwd=str(cwd))
        return config

    # -- volumes ---------------------------------------------------------------------
    def _volume_root(self) -> Path:
        return self.ctx.volume_dir or self.ctx.data_dir / "volumes"

    def _ecs_volumes(self) -> dict[str, Volume]:
        root = self._volume_root()
        return {name: Volume(name, root / name, spec.keep)
                for name, spec in self.spec.volumes.items()}

    def volumes(self) -> dict[str, Volume]:
        """The declared volumes, and where undeclared EFS and host volumes go (not kept)."""
        if not self.spec.images:
            return {}
        root = self._volume_root()
        return {**self._ecs_volumes(), "_efs": Volume("_efs", root / "_efs"),
                "_host": Volume("_host", root / "_host")}

    def prepare(self) -> None:
        # Service.prepare, which this one replaces, does nothing
        for volume in self.volumes().values():
            volume.prepare()

    # -- what runs ---------------------------------------------------------------------
    def tasks(self, state: str | None = None, service: str | None = None
              ) -> list[dict[str, Any]]:
        """ECS tasks the emulator ran (in lastStatus ``state``, of ECS ``service``, when
        given): ids, states, stop codes and reasons, host ports, pids, exit codes."""
        return [t for t in self.compute().get("tasks", [])
                if state in (None, t["state"]) and service in (None, t["service"])]

    def ecs_services(self) -> list[dict[str, Any]]:
        """The ECS services the scheduler keeps: desired, running and pending counts."""
        services: list[dict[str, Any]] = self.compute().get("ecs_services", [])
        return services

    def task_targets(self, cluster: str, service: str,
                     container_port: int | None = None) -> list[TaskTarget]:
        """The RUNNING tasks of ECS ``service`` in ``cluster`` that are not stopping, at the
        host port of ``container_port`` (the first port mapping without it)."""
        targets = []
        for task in self.compute().get("tasks", []):
            if task["service"] != service or task["cluster"] != cluster.split("/")[-1] \
                    or task["state"] != "RUNNING" or task["desired"] != "RUNNING":
                continue
            ports: dict[str, int] = task["ports"]
            port = ports.get(str(container_port)) if container_port else \
                next(iter(ports.values()), None)
            if port is not None:
                targets.append(TaskTarget(task["host"], int(port), task["task_id"],
                                          tuple(sorted(task["tags"].items()))))
        return targets

    def metrics(self, namespace: str | None = None, name: str | None = None
                ) -> list[dict[str, Any]]:
        """The CloudWatch metric data the system put (``PutMetricData``), oldest first: each
        ``{"namespace", "name", "dimensions", "values", "unit", "statistics"}``; also in the
        history as ``cloudwatch.metric`` events (``record_compute``)."""
        data: list[dict[str, Any]] = self._control("GET", "/_shakedown/metrics").json()
        return [d for d in data if namespace in (None, d["namespace"])
                and name in (None, d["name"])]

    def sent_emails(self) -> list[dict[str, Any]]:
        """Mail the system sent through SES, oldest first: ``{"id", "source",
        "destinations", "subject", "body"}`` (``"raw"``, the MIME text, for SendRawEmail)."""
        sent: list[dict[str, Any]] = self._control("GET", "/_shakedown/mail/sent").json()
        return sent

    def receive_email(self, source: str = "", to: str | Sequence[str] = (), subject: str = "",
                      body: str = "", *, raw: str | None = None,
                      recipients: Sequence[str] = ()) -> dict[str, Any]:
        """Deliver an email into the system as SES receives one: through the active receipt
        rule set the system made with SES's API (S3 object, SNS notification, stop). Give
        ``source``/``to``/``subject``/``body``, or ``raw`` MIME text (``recipients`` for the
        envelope when they differ from its To). Returns ``{"messageId", "recipients",
        "ruleSet", "actions"}``: ``actions`` is empty when no rule matched."""
        request: dict[str, Any] = {"source": source, "to": _listed(to), "subject": subject,
                                   "body": body, "recipients": list(recipients)}
        if raw is not None:
            request = {"raw": raw, "recipients": list(recipients) or None}
        response = self._control("POST", "/_shakedown/mail/receive", json_body=request,
                                 ok=(200, 400))
        answer: dict[str, Any] = response.json()
        if response.status_code == 400:
            raise ShakedownError(f"service {self.name!r}: the email was not received: "
                                 f"{answer.get('error')}",
                                 checked=["the active receipt rule set and its actions' targets",
                                          f"services = {list(self.spec.services)}"],
                                 fix=['list "ses" (and s3/sns/sqs as the rules use) in services',
                                      "create the bucket or topic a rule's action names"])
        return answer

    def compute_log_paths(self) -> dict[str, Path]:
        found = super().compute_log_paths()
        prefix = f"{self.name}.ecs."
        for path in sorted(self.ctx.log_dir.glob(f"{prefix}*.log")):
            found["ecs/" + path.name[len(prefix):-4]] = path
        return found

    # -- processes as fault targets ------------------------------------------------------
    def compute_processes(self, role: str) -> list[Spawned] | None:
        if not role.startswith(TASK_ROLE):
            return super().compute_processes(role)
        task_id = role[len(TASK_ROLE):]
        task = next((t for t in self.tasks() if t["task_id"] == task_id), None)
        if task is None or not task["alive"]:
            running = ", ".join(t["task_id"] for t in self.tasks("RUNNING")) or "none"
            raise FaultError(f"task {task_id!r} of service {self.name!r} has no live process",
                             checked=[f"running tasks: {running}"],
                             fix=["name a running task (aws.tasks('RUNNING'))"])
        return [Spawned(role, c["pid"], c["pgid"], Path(c["log"]))
                for c in task["containers"] if c["alive"]]

    def compute_roles(self) -> list[str]:
        roles = super().compute_roles()
        if not self.spec.images:
            return roles
        try:
            live = [t["task_id"] for t in self.tasks() if t["alive"]]
        except FaultError:  # the emulator is down
            return roles
        return [*roles, *(TASK_ROLE + t for t in live)]


def _listed(value: str | Sequence[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)
