"""Spec classes of the ``aws`` kind's compute: Lambda functions run natively
(``[services.NAME.functions.FN]``), HTTP APIs in front of them (``[services.NAME.apis.API]``)
and AMIs mapped to the command an instance runs (``[services.NAME.amis."ami-..."]``).
Checked here: names, runtimes, handlers, routes, limits; checked when the service starts
(paths are relative to the topology file): code directories, handler modules, commands."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from .._base import Spec
from .._durations import parse_duration

_FUNCTION = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_API = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_HANDLER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\.[A-Za-z_]\w*$")
_PYTHON = re.compile(r"^python3\.\d{1,2}$")
_AMI = re.compile(r"^ami-[0-9a-f]{8}([0-9a-f]{9})?$")
_ROUTE = re.compile(r"^(\$default|(GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS|ANY) "
                    r"(/|(/(\{[A-Za-z0-9_.-]+\}|[A-Za-z0-9._~:@!$&'()*,;=-]+))*"
                    r"(/\{[A-Za-z0-9_.-]+\+\})?))$")


def check_function_name(value: str) -> str:
    if not _FUNCTION.match(value):
        raise ValueError(f"{value!r} is not a Lambda function name: 1 to 64 letters, digits, "
                         "'-' and '_'")
    return value


class AwsSqsSourceSpec(Spec):
    """An SQS event source mapping of a function (``sqs = [{ queue = "jobs" }]``): batches of
    the declared queue's messages delivered to it as Lambda delivers them."""

    queue: str = Field(min_length=1)
    batch_size: int = Field(default=10, ge=1, le=10000)
    enabled: bool = True
    report_batch_item_failures: bool = False


class AwsFunctionSpec(Spec):
    """A Lambda function, created when the service starts and run natively."""

    runtime: str = "python3.12"
    handler: str
    code: str = "."  # directory, relative to the topology file
    env: dict[str, str] = {}
    timeout: float = Field(default=3.0, ge=1, le=900)
    memory: int = Field(default=128, ge=128, le=10240)
    reserved_concurrency: int | None = Field(default=None, ge=0, le=1000)
    sqs: tuple[AwsSqsSourceSpec, ...] = ()

    @field_validator("sqs", mode="before")
    @classmethod
    def _queue_names(cls, value: Any) -> Any:
        """``sqs = ["jobs"]`` for ``sqs = [{ queue = "jobs" }]``."""
        if isinstance(value, list):
            return [{"queue": v} if isinstance(v, str) else v for v in value]
        return value

    @field_validator("timeout", mode="before")
    @classmethod
    def _seconds(cls, value: Any) -> Any:
        return parse_duration(value) if isinstance(value, str) else value

    @field_validator("runtime")
    @classmethod
    def _python(cls, value: str) -> str:
        if not _PYTHON.match(value):
            raise ValueError(f"runtime {value!r}: shakedown runs Lambda functions natively "
                             "with Python; give a python3.x runtime (e.g. \"python3.12\")")
        return value

    @field_validator("handler")
    @classmethod
    def _module_function(cls, value: str) -> str:
        if not _HANDLER.match(value):
            raise ValueError(f"handler {value!r}: give module.function (e.g. \"app.handler\""
                             " for def handler(event, context) in app.py)")
        return value

    @property
    def module(self) -> str:
        return self.handler.rpartition(".")[0]


class AwsApiSpec(Spec):
    """An API: routes to functions, on a port of its own. ``type = "http"`` (an HTTP API,
    payload format 2.0) or ``"rest"`` (a REST API, proxy integration payload 1.0);
    ``authorizer`` names a function that authorizes each request from the
    ``identity_source`` header (a TOKEN authorizer for REST, simple responses for HTTP)."""

    routes: dict[str, str] = Field(min_length=1)
    api_key: str | None = Field(default=None, min_length=1)
    type: Literal["http", "rest"] = "http"
    authorizer: str | None = None
    identity_source: str = Field(default="authorization", min_length=1)

    @model_validator(mode="after")
    def _rest_routes(self) -> AwsApiSpec:
        if self.type == "rest" and "$default" in self.routes:
            raise ValueError("routes: a REST API has no \"$default\" route; give "
                             "\"ANY /{proxy+}\" for every path")
        return self

    @field_validator("routes")
    @classmethod
    def _route_keys(cls, value: dict[str, str]) -> dict[str, str]:
        for key, function in value.items():
            if not _ROUTE.match(key):
                raise ValueError(f"route {key!r}: give \"METHOD /path\" (GET, POST, PUT, "
                                 "PATCH, DELETE, HEAD, OPTIONS or ANY; {name} for a path "
                                 "parameter, a final {name+} for the rest) or \"$default\"")
            check_function_name(function)
        return value


class AwsAmiSpec(Spec):
    """What an instance launched from this AMI runs: a command (``{python}`` is this
    Python), in ``cwd`` (relative to the topology file), with ``env``."""

    command: tuple[str, ...] = Field(min_length=1)
    cwd: str | None = None
    env: dict[str, str] = {}
    stop_timeout: float = Field(default=10.0, ge=0, le=120)


class AwsComputeMixin(Spec):
    """The compute keys of ``AwsSpec`` (mixed in)."""

    functions: dict[str, AwsFunctionSpec] = {}
    apis: dict[str, AwsApiSpec] = {}
    amis: dict[str, AwsAmiSpec] = {}

    @field_validator("functions")
    @classmethod
    def _function_names(cls, value: dict[str, AwsFunctionSpec]) -> dict[str, AwsFunctionSpec]:
        for name in value:
            check_function_name(name)
        return value

    @field_validator("apis")
    @classmethod
    def _api_names(cls, value: dict[str, AwsApiSpec]) -> dict[str, AwsApiSpec]:
        for name in value:
            if not _API.match(name):
                raise ValueError(f"API name {name!r}: lowercase letters, digits, '-' and '_'")
        return value

    @field_validator("amis")
    @classmethod
    def _ami_ids(cls, value: dict[str, AwsAmiSpec]) -> dict[str, AwsAmiSpec]:
        for ami in value:
            if not _AMI.match(ami):
                raise ValueError(f"{ami!r} is not an AMI id: ami- and 8 or 17 hex digits "
                                 "(e.g. \"ami-0abcdef1234567890\")")
        return value

    @model_validator(mode="after")
    def _routes_to_declared_functions(self) -> AwsComputeMixin:
        for api, spec in self.apis.items():
            for route, function in spec.routes.items():
                if function not in self.functions:
                    known = ", ".join(self.functions) or "none declared"
                    raise ValueError(f"apis.{api}.routes[{route!r}] = {function!r}: no such "
                                     f"function (functions: {known}); declare it under "
                                     f"[services.NAME.functions.{function}]")
            if spec.authorizer is not None and spec.authorizer not in self.functions:
                known = ", ".join(self.functions) or "none declared"
                raise ValueError(f"apis.{api}.authorizer = {spec.authorizer!r}: no such "
                                 f"function (functions: {known}); declare it under "
                                 f"[services.NAME.functions.{spec.authorizer}]")
        return self

    def compute_services(self) -> list[tuple[str, str]]:
        """(key, AWS service) pairs the declared compute needs in ``services``."""
        needed = []
        if self.functions or self.apis:
            needed.append(("functions", "lambda"))
        if self.amis:
            needed.append(("amis", "ec2"))
        return needed
