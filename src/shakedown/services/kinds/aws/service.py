"""The ``aws`` kind: moto in server mode on loopback, with the declared DynamoDB tables, SQS
queues and S3 buckets created before it is ready, a reset for per-test isolation, and a fault
layer of its own: rules that make chosen AWS operations fail with a real AWS error (so that the
SDK's retry logic runs) or answer late.

The emulator is ``shakedown.awsemu`` (its own process, layer 1); it runs as the invoking user,
not the service user, because it is this virtualenv's Python.
"""

from __future__ import annotations

import functools
import importlib.metadata
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import httpx

from ....awsemu import CONTROL, RuleAction, RuleData, server_command
from ....errors import FaultError, MissingBinaryError, ServiceStartError, did_you_mean
from ....process import NotReady, Spawned, spawn, wait_ready
from ....topology import ServiceSpec
from ....topology.specs.aws import AwsSpec
from ..._base import DoctorLine, ServiceContext, SpawnedService
from ._ecs import AwsEcs

if TYPE_CHECKING:
    from botocore.model import ServiceModel

INSTALL_COMMAND = "pip install 'shakedown[aws]'"
INSTALL_HINT = f"{INSTALL_COMMAND}  (moto[server] and boto3)"
ACCESS_KEY_ID = "shakedown"
SECRET_ACCESS_KEY = "shakedown-not-a-secret"

# Status codes of errors that AWS services send but do not model (common errors).
COMMON_ERROR_STATUS = {
    "ThrottlingException": 400, "Throttling": 400, "ThrottledException": 400,
    "RequestThrottledException": 400, "RequestLimitExceeded": 400,
    "ProvisionedThroughputExceededException": 400, "TooManyRequestsException": 429,
    "SlowDown": 503, "ServiceUnavailable": 503, "ServiceUnavailableException": 503,
    "InternalServerError": 500, "InternalFailure": 500, "InternalError": 500,
    "RequestTimeout": 400, "RequestTimeoutException": 408, "AccessDenied": 403,
    "AccessDeniedException": 400, "ExpiredTokenException": 400,
}


def check_moto_installed() -> str:
    """moto's version; MissingBinaryError with the install command when it is missing."""
    try:
        return importlib.metadata.version("moto")
    except importlib.metadata.PackageNotFoundError:
        raise MissingBinaryError("moto", kind="aws", searched=[f"Python packages of "
                                 f"{sys.executable}"], install=INSTALL_HINT) from None


@functools.cache
def service_model(service: str) -> ServiceModel:
    """botocore's model of an AWS service (operations, protocol, errors); FaultError if unknown."""
    try:
        import botocore.session
        from botocore.exceptions import UnknownServiceError
    except ImportError:
        raise FaultError("botocore is not installed: AWS fault rules read its service models",
                         fix=[INSTALL_HINT]) from None
    session = botocore.session.get_session()
    try:
        return session.get_service_model(service)
    except UnknownServiceError:
        known = session.get_available_services()
        raise FaultError(f"unknown AWS service {service!r}{did_you_mean(service, known)}",
                         checked=["botocore's list of services"],
                         fix=["name the service as boto3 names its client (dynamodb, sqs, s3)"]
                         ) from None


class AwsService(AwsEcs, SpawnedService, kind="aws"):
    runs_as_service_user: ClassVar[bool] = False  # this virtualenv's Python
    spec: AwsSpec

    @classmethod
    def doctor(cls) -> list[DoctorLine]:
        versions = {}
        for package in ("moto", "boto3", "flask"):
            try:
                versions[package] = importlib.metadata.version(package)
            except importlib.metadata.PackageNotFoundError:
                missing = "moto[server]" if package == "flask" else package
                return [DoctorLine("moto (aws)", False,
                                   f"{missing} is not installed for {sys.executable}",
                                   INSTALL_COMMAND)]
        return [DoctorLine("moto (aws)", True, ", ".join(f"{k} {v}" for k, v in versions.items()))]

    @classmethod
    def ports_for(cls, spec: ServiceSpec) -> int:
        """The emulator's port, and one per declared HTTP API."""
        assert isinstance(spec, AwsSpec)
        return 1 + cls.compute_ports(spec)

    def __init__(self, spec: AwsSpec, ctx: ServiceContext) -> None:
        super().__init__(spec, ctx)
        self._http: httpx.Client | None = None

    # -- addresses ---------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def endpoint(self) -> str:
        return self.url

    @property
    def region(self) -> str:
        return self.spec.region

    def exports(self) -> dict[str, str]:
        return {**super().exports(), "endpoint": self.endpoint, "region": self.region,
                "access_key_id": ACCESS_KEY_ID, "secret_access_key": SECRET_ACCESS_KEY,
                **self.compute_exports()}

    def env_vars(self) -> dict[str, str]:
        """What an AWS SDK needs to talk to this service instead of AWS."""
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_DEFAULT_REGION": self.region,
                "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY}

    def client(self, service: str, **kwargs: Any) -> Any:
        """A boto3 client for ``service`` pointed at this emulator (kwargs go to boto3)."""
        import boto3

        options: dict[str, Any] = {
            "endpoint_url": self.endpoint, "region_name": self.region,
            "aws_access_key_id": ACCESS_KEY_ID, "aws_secret_access_key": SECRET_ACCESS_KEY,
            **kwargs}
        make_client: Any = boto3.client  # any service name, not only the stubs' literals
        return make_client(service, **options)

    def version(self) -> str:
        return f"moto {check_moto_installed()}"

    # -- lifecycle ---------------------------------------------------------------------------
    def _config(self) -> dict[str, Any]:
        return {"region": self.region, "services": list(self.spec.services),
                "resources": self.spec.resources.to_config(), "access_key_id": ACCESS_KEY_ID,
                "secret_access_key": SECRET_ACCESS_KEY, "compute": self.compute_config()}

    def start(self) -> None:
        check_moto_installed()
        argv = server_command(self.host, self.port, self._config())
        self.processes = [spawn(argv, role="moto", log_path=self.log_path,
                                env_id=self.ctx.env_id)]

    def wait_ready(self) -> None:
        # The server binds its port before importing moto, so a request sent early waits in
        # the accept queue and is answered as soon as the server is ready.
        client = httpx.Client(timeout=httpx.Timeout(5.0, connect=0.5), trust_env=False)
        url = f"{self.url}{CONTROL}health"

        def probe() -> bool:
            response = client.get(url)
            if response.status_code != 200:
                raise NotReady(f"GET {url} -> {response.status_code}")
            return True

        try:
            self.ready_seconds = wait_ready(probe, service=self.name, check=f"GET {url} -> 200",
                                            timeout=self.spec.ready_timeout,
                                            watch=self.processes, interval=0.002,
                                            max_interval=0.02)
        finally:
            client.close()

    def _select(self, role: str | None) -> list[Spawned]:
        """Roles name the emulator (``moto``), a function's workers (``lambda:NAME``) or
        an instance's process (its id)."""
        chosen = self.compute_processes(role) if role else None
        return chosen if chosen is not None else super()._select(role)

    def roles(self) -> list[str]:
        """``moto``, then ``lambda:NAME`` for each function with live workers and the id of
        each instance whose process runs."""
        return [*super().roles(), *self.compute_roles()]

    def log_paths(self) -> dict[str, Path]:
        """The emulator's log and each function's and instance's."""
        return {"": self.log_path, **self.compute_log_paths()}

    def stop(self) -> None:
        super().stop()
        if self._http is not None:
            self._http.close()
            self._http = None

    # -- isolation ---------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget every table, queue, bucket and item (moto's reset API), then create the
        declared resources again. Fault rules are kept: remove them with ``clear_rules``."""
        self._control("POST", "/moto-api/reset")
        self._control("POST", f"{CONTROL}resources")

    # -- fault rules ---------------------------------------------------------------------
    def add_error_rule(self, service: str, operation: str, error: str,
                       probability: float = 1.0, status: int | None = None,
                       message: str | None = None, *, times: int | None = None) -> str:
        """Make ``service.operation`` (``"*"`` for every operation) fail with the AWS error
        ``error``, as AWS sends it for the request's protocol. ``status`` defaults to the
        error's status in the service model (400 for client errors). ``probability`` picks a
        share of the requests; ``times`` stops after that many failures. Returns the rule id."""
        model = self._check_rule(service, operation, probability, times)
        if not error or not error.replace(".", "").isalnum() or not error[0].isalpha():
            raise FaultError(f"{error!r} is not an AWS error code",
                             fix=["give an error code such as ThrottlingException or "
                                  "ProvisionedThroughputExceededException"])
        if status is not None and not 400 <= status <= 599:
            raise FaultError(f"status {status}: an AWS error has a 4xx or 5xx status")
        rule = self._rule_base("error", service, operation, probability, times, model)
        rule["error"] = error
        rule["status"] = status or _error_status(model, error)
        rule["message"] = message
        if model.protocol == "json" and model.metadata.get("targetPrefix", "").startswith(
                "DynamoDB_"):
            # DynamoDB qualifies __type: com.amazonaws.dynamodb.v20120810#CODE
            rule["type_prefix"] = "com.amazonaws.dynamodb.v20120810#"
        return self._post_rule(rule)

    def add_latency_rule(self, service: str, operation: str, ms: float,
                         probability: float = 1.0, *, times: int | None = None) -> str:
        """Delay ``service.operation`` (``"*"`` for all) by ``ms`` milliseconds before moto
        answers. Returns the rule id."""
        model = self._check_rule(service, operation, probability, times)
        if not 0 <= ms <= 600_000:
            raise FaultError(f"ms = {ms}: give a delay between 0 and 600000 milliseconds")
        rule = self._rule_base("latency", service, operation, probability, times, model)
        rule["ms"] = ms
        return self._post_rule(rule)

    def remove_rule(self, rule_id: str) -> None:
        response = self._control("DELETE", f"{CONTROL}rules/{rule_id}", ok=(200, 404))
        if response.status_code == 404:
            known = [r["id"] for r in self.rules()]
            raise FaultError(f"service {self.name!r} has no fault rule {rule_id!r}"
                             f"{did_you_mean(rule_id, known)}",
                             checked=[f"rules: {', '.join(known) or 'none'}"])

    def clear_rules(self) -> None:
        self._control("DELETE", f"{CONTROL}rules")

    def rules(self) -> list[dict[str, Any]]:
        """The rules in force, each with ``hits`` (requests it acted on) and ``seen``
        (requests it matched)."""
        data: list[dict[str, Any]] = self._control("GET", f"{CONTROL}rules").json()
        return data

    def _check_rule(self, service: str, operation: str, probability: float,
                    times: int | None) -> ServiceModel:
        if service not in self.spec.services:
            raise FaultError(
                f"service {self.name!r} does not serve AWS service {service!r}"
                f"{did_you_mean(service, self.spec.services)}",
                checked=[f"services of {self.name}: {', '.join(self.spec.services)}"],
                fix=[f"name one of them, or add {service!r} to services in the topology"])
        model = service_model(service)
        if operation != "*" and operation not in model.operation_names:
            raise FaultError(
                f"AWS service {service!r} has no operation {operation!r}"
                f"{did_you_mean(operation, model.operation_names)}",
                checked=[f"botocore's model of {service} ({len(model.operation_names)} "
                         "operations)"],
                fix=["use the operation's API name, as in the AWS docs (PutItem, SendMessage, "
                     "PutObject), or '*' for every operation"])
        if not 0 < probability <= 1:
            raise FaultError(f"probability = {probability}: give a number in (0, 1]")
        if times is not None and times < 1:
            raise FaultError(f"times = {times}: give a positive count, or None for no limit")
        return model

    @staticmethod
    def _rule_base(action: RuleAction, service: str, operation: str, probability: float,
                   times: int | None, model: ServiceModel) -> RuleData:
        return {"action": action, "service": service, "operation": operation,
                "probability": probability, "times": times,
                "signing_name": model.signing_name or service,
                "target_prefix": model.metadata.get("targetPrefix", ""),
                "protocol": model.protocol,
                "query_compatible": "awsQueryCompatible" in model.metadata}

    def _post_rule(self, rule: RuleData) -> str:
        response = self._control("POST", f"{CONTROL}rules", json_body=rule)
        return str(response.json()["id"])

    def _control(self, method: str, path: str, json_body: Any = None,
                 ok: tuple[int, ...] = (200, 201)) -> httpx.Response:
        if self._http is None:
            self._http = httpx.Client(base_url=self.url, timeout=10.0, trust_env=False)
        try:
            response = self._http.request(method, path, json=json_body)
        except httpx.HTTPError as exc:
            raise FaultError(f"service {self.name!r}: the AWS emulator at {self.url} does not "
                             f"answer ({type(exc).__name__}: {exc})",
                             checked=[f"{method} {self.url}{path}", f"status: {self.status()}"],
                             fix=["start it again if a fault stopped it",
                                  f"read its log: {self.log_path}"]) from None
        if response.status_code not in ok:
            raise ServiceStartError(
                f"service {self.name!r}: {method} {path} -> {response.status_code}",
                checked=[response.text[:500]], fix=[f"read its log: {self.log_path}"])
        return response


def _error_status(model: ServiceModel, code: str) -> int:
    """The HTTP status AWS sends with error ``code``: the service model's when it has one,
    else the usual status of a common error, else 500 for internal errors and 400 for the
    rest (JSON-protocol services send client errors with 400)."""
    for shape in model.error_shapes:
        error = shape.metadata.get("error", {})
        if code in (shape.name, error.get("code")) and "httpStatusCode" in error:
            return int(error["httpStatusCode"])
    if code in COMMON_ERROR_STATUS:
        return COMMON_ERROR_STATUS[code]
    return 500 if code.startswith("Internal") else 400
