"""Spec classes of the ``aws`` kind's ECS: container images mapped to the command a task's
container runs natively (``[services.NAME.images."IMAGE"]``), the emulator's task capacity
(``[services.NAME.ecs]``) and named volumes that task definitions mount
(``[services.NAME.volumes.VOLUME]``), as well as the mail and metrics keys of the same kind.

```toml
[services.aws.images."edit:latest"]        # the image of a container definition
command = ["{python}", "edit.py", "--port", "{port}"]
cwd = "code"
env = { WORKSPACE = "{mount:/workspace}" }
ready = { http = "/health" }                # gates RUNNING; checked again while it runs
```

An image key matches a container definition's ``image`` exactly, or its repository name
(``edit`` for ``123456789012.dkr.ecr.us-east-1.amazonaws.com/edit:1``), or its task
definition's family (``family:edit``). Templates in ``command`` and ``env``: ``{python}``,
``{port}`` (the host port of the first port mapping), ``{port_8080}`` (that of container port
8080), ``{mount:/workspace}`` (the directory of the volume mounted there), ``{task_id}``."""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, field_validator, model_validator

from .._base import Spec, seconds

_IMAGE = re.compile(r"^(family:)?[A-Za-z0-9][A-Za-z0-9._/:@-]{0,254}$")
_VOLUME = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
_TEMPLATE = re.compile(r"\{([^{}]*)\}")
_KNOWN = re.compile(r"^(python|port|port_\d{1,5}|task_id|mount:/[^{}]*)$")


def check_templates(value: str) -> str:
    """``value`` if its ``{...}`` templates are ones a task's command may hold."""
    for name in _TEMPLATE.findall(value):
        if not _KNOWN.match(name):
            raise ValueError(f"{value!r}: unknown template {{{name}}}; a task's command and "
                             "env may hold {python}, {port}, {port_NNNN} (host port of "
                             "container port NNNN), {mount:/container/path} and {task_id}")
    return value


class EcsReadySpec(Spec):
    """How shakedown tells that a task's container is ready and healthy: exactly one of an
    HTTP GET on its first port mapping's host port, a TCP connect there, or a command (exit
    0); checked every ``interval`` until it passes, then every ``check_interval`` while the
    task runs, ``retries`` failures in a row making the container UNHEALTHY."""

    http: str | None = None
    status: int = 200
    tcp: bool | None = None
    command: tuple[str, ...] | None = None
    interval: float = Field(default=0.01, gt=0, le=60)
    check_interval: float = Field(default=1.0, gt=0, le=300)
    retries: int = Field(default=3, ge=1, le=10)
    timeout: float = Field(default=2.0, gt=0, le=60)

    @field_validator("interval", "check_interval", "timeout", mode="before")
    @classmethod
    def _durations(cls, value: Any) -> Any:
        return seconds(value)

    @field_validator("http")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("/"):
            raise ValueError(f"ready.http {value!r} must be a path starting with '/'")
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> EcsReadySpec:
        chosen = [k for k in ("http", "tcp", "command") if getattr(self, k)]
        if len(chosen) != 1:
            raise ValueError("give exactly one readiness check: http = '/path', tcp = true or "
                             f"command = [...] (got {chosen or 'none'})")
        return self

    @property
    def strategy(self) -> str:
        return next(k for k in ("http", "tcp", "command") if getattr(self, k))


class AwsImageSpec(Spec):
    """What a container of this image runs: a command in ``cwd`` (relative to the topology
    file) with ``env``; ``ready`` gates the task's RUNNING state (without it: the task
    definition's own ``healthCheck`` command when it has one, else a TCP connect to the first
    port mapping, else the process being started); ``stop_timeout`` is the grace between
    SIGTERM and SIGKILL when the container definition gives no ``stopTimeout``."""

    command: tuple[str, ...] = Field(min_length=1)
    cwd: str | None = None
    env: dict[str, str] = {}
    ready: EcsReadySpec | None = None
    stop_timeout: float = Field(default=30.0, ge=0, le=120)

    @field_validator("stop_timeout", mode="before")
    @classmethod
    def _durations(cls, value: Any) -> Any:
        return seconds(value)

    @field_validator("command")
    @classmethod
    def _command_templates(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for arg in value:
            check_templates(arg)
        return value

    @field_validator("env")
    @classmethod
    def _env_templates(cls, value: dict[str, str]) -> dict[str, str]:
        for key, item in value.items():
            if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key):
                raise ValueError(f"env {key!r} is not a variable name")
            check_templates(item)
        return value


class AwsEcsSpec(Spec):
    """``[services.NAME.ecs]``: ``max_tasks`` is the emulator's capacity, tasks not yet
    stopped across all clusters: a service whose desiredCount is above it is refused
    (``InvalidParameterException``), a ``RunTask`` beyond it answers ECS's capacity failure;
    ``clusters`` exist from the start; ``health_grace`` is how long a started task may take
    to pass its readiness check before it is stopped as unhealthy."""

    max_tasks: int = Field(default=32, ge=1, le=1000)
    clusters: tuple[str, ...] = ("default",)
    """Clusters that exist from the start (and again after a reset)."""
    health_grace: float = Field(default=60.0, gt=0, le=3600)

    @field_validator("health_grace", mode="before")
    @classmethod
    def _durations(cls, value: Any) -> Any:
        return seconds(value)


class AwsVolumeSpec(Spec):
    """A named directory (in the state directory, outside the data directory) that task
    definitions mount by volume name; it outlives every task (stop, replacement, scale to
    zero), and ``down`` removes it unless ``keep``."""

    keep: bool = False


class AwsEcsMixin(Spec):
    """The ECS keys of ``AwsSpec`` (mixed in)."""

    images: dict[str, AwsImageSpec] = {}
    ecs: AwsEcsSpec = AwsEcsSpec()
    volumes: dict[str, AwsVolumeSpec] = {}

    @field_validator("images")
    @classmethod
    def _image_names(cls, value: dict[str, AwsImageSpec]) -> dict[str, AwsImageSpec]:
        for image in value:
            if not _IMAGE.match(image):
                raise ValueError(f"{image!r} is not a container image reference (e.g. "
                                 "\"edit:latest\", \"123456789012.dkr.ecr.us-east-1."
                                 "amazonaws.com/edit:1\") nor \"family:NAME\"")
        return value

    @field_validator("volumes")
    @classmethod
    def _volume_names(cls, value: dict[str, AwsVolumeSpec]) -> dict[str, AwsVolumeSpec]:
        for name in value:
            if not _VOLUME.match(name):
                raise ValueError(f"volume name {name!r}: an ECS volume name has 1 to 255 "
                                 "letters, digits, '-' and '_'")
        return value

    def ecs_services(self) -> list[tuple[str, str]]:
        """(key, AWS service) pairs the declared ECS needs in ``services``."""
        return [("images", "ecs")] if self.images else []


def image_config(spec: AwsImageSpec) -> dict[str, Any]:
    """The emulator's view of an image mapping (paths resolved by the kind)."""
    ready = spec.ready.model_dump() if spec.ready is not None else None
    return {"command": list(spec.command), "env": dict(spec.env), "ready": ready,
            "stop_timeout": spec.stop_timeout}
