"""The ``aws`` kind's spec: the AWS emulator on loopback, with declared tables, queues and
buckets.

AWS service names are checked against the names moto serves, read from moto's source without
importing moto (importing it takes a third of a second): validation stays fast, and works (less
strictly) on a machine without moto."""

from __future__ import annotations

import functools
import importlib.util
import re
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from ...errors import did_you_mean
from .._base import ServiceSpec, Spec, Starter
from ._aws_compute import AwsComputeMixin
from ._aws_ecs import AwsEcsMixin

DEFAULT_REGION = "us-east-1"
# moto entries that are not AWS services a topology would name.
_MOTO_INTERNAL = {"moto_api", "instance_metadata", "s3bucket_path", "dynamodb_v20111205"}
_REGION = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d{1,2}$")
_TABLE = re.compile(r"^[A-Za-z0-9_.-]{3,255}$")
_QUEUE = re.compile(r"^[A-Za-z0-9_-]{1,80}$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
# Which AWS service each kind of resource lives in.
RESOURCE_SERVICES = {"tables": "dynamodb", "queues": "sqs", "buckets": "s3"}


@functools.cache
def moto_service_names() -> frozenset[str] | None:
    """The AWS service names moto serves (boto3 client names: ``dynamodb``, ``sqs``, ``s3``,
    ``lambda``...), or None when moto is not installed or its list cannot be read."""
    try:
        spec = importlib.util.find_spec("moto")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    source = Path(next(iter(spec.submodule_search_locations))) / "backends.py"
    try:
        text = source.read_text()
    except OSError:
        return None
    start = text.find("SERVICE_NAMES = Union[")
    end = text.find("]\n", start)
    if start < 0 or end < 0:
        return None
    names = set(re.findall(r"Literal\['([^']+)'\]", text[start:end])) - _MOTO_INTERNAL
    return frozenset(names) or None


def check_aws_service(name: str) -> str:
    """``name`` if moto serves it; a ValueError with 'did you mean' otherwise."""
    known = moto_service_names()
    if known is None or name in known:
        return name
    hint = did_you_mean(name, known) or did_you_mean(name.lower().replace("_", "-"), known)
    raise ValueError(
        f"unknown AWS service {name!r}{hint}: moto serves {len(known)} services, named as "
        "boto3 names its clients (e.g. dynamodb, sqs, s3, sns, lambda, kinesis, "
        "secretsmanager)")


def _as_named(value: Any) -> Any:
    """Accept ``"name"`` for ``{ name = "name" }`` in lists of queues and buckets."""
    if isinstance(value, list | tuple):
        return [{"name": item} if isinstance(item, str) else item for item in value]
    return value


class AwsTableSpec(Spec):
    """A DynamoDB table (on-demand billing) with its key schema."""

    name: str
    hash_key: str = Field(min_length=1)
    hash_key_type: Literal["S", "N", "B"] = "S"
    range_key: str | None = Field(default=None, min_length=1)
    range_key_type: Literal["S", "N", "B"] = "S"

    @field_validator("name")
    @classmethod
    def _table_name(cls, value: str) -> str:
        if not _TABLE.match(value):
            raise ValueError(f"{value!r} is not a DynamoDB table name: 3 to 255 characters "
                             "among letters, digits, '_', '-' and '.'")
        return value

    @model_validator(mode="after")
    def _distinct_keys(self) -> AwsTableSpec:
        if self.range_key == self.hash_key:
            raise ValueError(f"range_key and hash_key are both {self.hash_key!r}: "
                             "a table's two keys are different attributes")
        return self


class AwsQueueSpec(Spec):
    """An SQS queue; a name ending in ``.fifo`` makes a FIFO queue."""

    name: str
    fifo: bool | None = None
    attributes: dict[str, str | int | bool] = {}

    @field_validator("name")
    @classmethod
    def _queue_name(cls, value: str) -> str:
        if not _QUEUE.match(value.removesuffix(".fifo")):
            raise ValueError(f"{value!r} is not an SQS queue name: 1 to 80 characters among "
                             "letters, digits, '-' and '_' (plus '.fifo' for a FIFO queue)")
        return value

    @model_validator(mode="after")
    def _fifo_suffix(self) -> AwsQueueSpec:
        named_fifo = self.name.endswith(".fifo")
        if self.fifo is not None and self.fifo != named_fifo:
            raise ValueError(
                f"queue {self.name!r}: fifo = {str(self.fifo).lower()} but the name "
                + ("ends" if named_fifo else "does not end")
                + " in '.fifo' (SQS requires FIFO queue names, and only them, to end so)")
        return self

    @property
    def is_fifo(self) -> bool:
        return self.name.endswith(".fifo")


class AwsBucketSpec(Spec):
    """An S3 bucket."""

    name: str

    @field_validator("name")
    @classmethod
    def _bucket_name(cls, value: str) -> str:
        if not _BUCKET.match(value) or ".." in value:
            raise ValueError(f"{value!r} is not an S3 bucket name: 3 to 63 characters among "
                             "lowercase letters, digits, '.' and '-', starting and ending with "
                             "a letter or digit")
        return value


class AwsResourcesSpec(Spec):
    """``[services.NAME.resources]``: created when the service starts and after each reset."""

    tables: tuple[AwsTableSpec, ...] = ()
    queues: tuple[AwsQueueSpec, ...] = ()
    buckets: tuple[AwsBucketSpec, ...] = ()

    _named = field_validator("queues", "buckets", mode="before")(_as_named)

    @model_validator(mode="after")
    def _unique_names(self) -> AwsResourcesSpec:
        for key in RESOURCE_SERVICES:
            names = [item.name for item in getattr(self, key)]
            twice = sorted({n for n in names if names.count(n) > 1})
            if twice:
                raise ValueError(f"{key}: {', '.join(map(repr, twice))} declared twice")
        return self

    def to_config(self) -> dict[str, list[dict[str, Any]]]:
        return {
            "tables": [t.model_dump() for t in self.tables],
            "queues": [{"name": q.name, "fifo": q.is_fifo,
                        "attributes": {k: _attribute(v) for k, v in q.attributes.items()}}
                       for q in self.queues],
            "buckets": [b.model_dump() for b in self.buckets],
        }


def _attribute(value: str | int | bool) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


class AwsSpec(AwsEcsMixin, AwsComputeMixin, ServiceSpec):
    """AWS APIs emulated by moto in server mode (``kind = "aws"``), with Lambda functions,
    HTTP APIs and EC2 AMIs run natively (``specs._aws_compute``)."""

    base_exports: ClassVar[tuple[str, ...]] = (
        "host", "port", "url", "endpoint", "region", "access_key_id", "secret_access_key",
    )
    kind: Literal["aws"] = "aws"
    starter: ClassVar[Starter | None] = Starter(
        name="cloud", imports=("boto3",),
        keys='services = ["s3", "sqs"]\nresources = { buckets = ["uploads"] }',
        check='aws = shakedown_env["{name}"].exports()\n'
              's3 = boto3.client("s3", endpoint_url=aws["endpoint"], region_name=aws["region"],\n'
              '                  aws_access_key_id=aws["access_key_id"],\n'
              '                  aws_secret_access_key=aws["secret_access_key"])\n'
              'assert "uploads" in [b["Name"] for b in s3.list_buckets()["Buckets"]]')
    services: tuple[str, ...]
    region: str = DEFAULT_REGION
    resources: AwsResourcesSpec = AwsResourcesSpec()

    @field_validator("services")
    @classmethod
    def _known_services(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError('list at least one AWS service, e.g. services = ["dynamodb", "sqs"]')
        for name in value:
            check_aws_service(name)
        twice = sorted({n for n in value if value.count(n) > 1})
        if twice:
            raise ValueError(f"{', '.join(map(repr, twice))} listed twice")
        return value

    @field_validator("region")
    @classmethod
    def _region_name(cls, value: str) -> str:
        if not _REGION.match(value):
            raise ValueError(f"{value!r} is not an AWS region name (e.g. us-east-1, "
                             "eu-west-3, ap-southeast-2)")
        return value

    @property
    def exports(self) -> tuple[str, ...]:  # type: ignore[override]
        """The base attributes, and ``api_NAME_url`` for each declared API."""
        return (*self.base_exports, *(f"api_{name.replace('-', '_')}_url" for name in self.apis))

    @model_validator(mode="after")
    def _resources_need_services(self) -> AwsSpec:
        needed = [(f"resources.{key} are {service} resources", service)
                  for key, service in RESOURCE_SERVICES.items() if getattr(self.resources, key)]
        needed += [(f"{key} run on {service}", service) for key, service in
                   [*self.compute_services(), *self.ecs_services()]]
        for what, service in needed:
            if service not in self.services:
                wanted = ", ".join(f'"{name}"' for name in [*self.services, service])
                raise ValueError(
                    f"{what} but services does not list {service!r}: add it, e.g. "
                    f"services = [{wanted}]")
        return self

    @model_validator(mode="after")
    def _event_sources_on_declared_queues(self) -> AwsSpec:
        queues = [q.name for q in self.resources.queues]
        for name, function in self.functions.items():
            for index, source in enumerate(function.sqs):
                if source.queue not in queues:
                    raise ValueError(
                        f"functions.{name}.sqs[{index}].queue = {source.queue!r}: not a "
                        f"declared queue (resources.queues: {', '.join(queues) or 'none'}); "
                        "declare it in [services.NAME.resources] queues")
        return self
