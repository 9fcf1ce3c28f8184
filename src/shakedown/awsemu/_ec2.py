"""EC2 instances as native processes: ``RunInstances`` with an AMI the topology maps to a command
starts that command once per instance, with an instance metadata service (IMDSv2 token flow,
instance id, region, user data, role credentials) at an address given in
``AWS_EC2_METADATA_SERVICE_ENDPOINT``.

Hooks into moto's EC2 model (not its HTTP layer), so every path that launches or terminates an
instance acts on the process: ``run_instances`` refuses an unmapped AMI with
``InvalidAMIID.NotFound`` and leaves the new instances ``pending``; their processes are started
when moto's answer is built (the instance is ``running`` once its command runs); ``terminate``
makes the instance ``shutting-down`` and stops the process (SIGTERM, then SIGKILL after the
AMI's ``stop_timeout``); the instance is ``terminated`` once the process is gone, whether it
was told to stop or exited by itself."""

from __future__ import annotations

import contextlib
import json
import secrets
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._children import child_env, kill_child, start_child, stop_child
from ._events import Events
from ._settings import ComputeSettings
from ._wsgi import Environ, StartResponse

PENDING, RUNNING, SHUTTING_DOWN, TERMINATED = (("pending", 0), ("running", 16),
                                              ("shutting-down", 32), ("terminated", 48))
IMDS_PREFIX = "imds/"


@dataclass
class Launched:
    """One instance whose command shakedown runs."""

    instance: Any  # moto's Instance
    ami: str
    log_path: Path
    popen: subprocess.Popen[bytes] | None = None
    terminating: bool = False
    exit_code: int | None = None
    tokens: dict[str, float] = field(default_factory=dict)  # IMDSv2 token -> expiry
    launched: float = 0.0
    failure: str = ""

    @property
    def id(self) -> str:
        return str(self.instance.id)

    def describe(self) -> dict[str, Any]:
        alive = self.popen is not None and self.popen.poll() is None
        return {"instance_id": self.id, "image_id": self.ami,
                "state": self.instance._state.name, "pid": self.popen.pid if self.popen else None,
                "pgid": self.popen.pid if self.popen else None, "alive": alive,
                "exit_code": self.exit_code, "instance_type": self.instance.instance_type,
                "lifecycle": self.instance.lifecycle or "normal", "log": str(self.log_path),
                "launched": self.launched}


def _set_state(instance: Any, state: tuple[str, int]) -> None:
    instance._state.name, instance._state.code = state


class Instances:
    """The instances launched from mapped AMIs, their processes and their metadata."""

    def __init__(self, settings: ComputeSettings, events: Events) -> None:
        self.settings = settings
        self.events = events
        self.amis = settings.amis
        self._launched: dict[str, Launched] = {}
        self._queued = threading.local()
        self._lock = threading.Lock()
        self._terminate: Callable[[Any], Any] | None = None

    # -- moto hooks ----------------------------------------------------------------------
    def install(self) -> None:
        """Wrap moto's ``InstanceBackend.run_instances`` and ``Instance.terminate``."""
        from moto.ec2.exceptions import InvalidAMIIdError
        from moto.ec2.models.instances import Instance, InstanceBackend

        run_instances = InstanceBackend.run_instances
        terminate = Instance.terminate
        self._terminate = terminate
        instances = self

        def run_hooked(backend: Any, image_id: str, count: int, user_data: Any,
                       security_group_names: list[str], **kwargs: Any) -> Any:
            ami = image_id
            if not ami and kwargs.get("launch_template"):
                ami = backend._get_template_from_args(kwargs["launch_template"]).image_id
            if ami not in instances.amis:
                raise InvalidAMIIdError(ami or "")
            reservation = run_instances(backend, image_id, count, user_data,
                                        security_group_names, **kwargs)
            for instance in reservation.instances:
                _set_state(instance, PENDING)
                instances._queue(instance, ami)
            return reservation

        def terminate_hooked(instance: Any) -> Any:
            previous = terminate(instance)
            instances._stop(instance)
            return previous

        setattr(InstanceBackend, "run_instances", run_hooked)  # noqa: B010 - a hook
        setattr(Instance, "terminate", terminate_hooked)  # noqa: B010

    def _queue(self, instance: Any, ami: str) -> None:
        """Start the instance's command now (it boots while moto builds its answer), and
        queue the rest of its launch for ``flush``."""
        queued: list[Launched] = getattr(self._queued, "items", [])
        queued.append(self._spawn(instance, ami))
        self._queued.items = queued

    def flush(self) -> None:
        """Once moto's answer (which shows the instances ``pending``) is built: the instances
        whose command runs are ``running`` and watched, the others terminated."""
        queued: list[Launched] = getattr(self._queued, "items", [])
        self._queued.items = []
        for record in queued:
            self._started(record)

    # -- processes -------------------------------------------------------------------
    def _spawn(self, instance: Any, ami: str) -> Launched:
        mapping = self.amis[ami]
        record = Launched(instance, ami, self.settings.log_path("ec2", str(instance.id)))
        with self._lock:
            self._launched[record.id] = record
        env = child_env({
            **{str(k): str(v) for k, v in (mapping.get("env") or {}).items()},
            "AWS_EC2_METADATA_SERVICE_ENDPOINT":
                f"{self.settings.endpoint}/_shakedown/{IMDS_PREFIX}{record.id}/",
            "AWS_ENDPOINT_URL": self.settings.endpoint,
        })
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                    "AWS_DEFAULT_REGION", "AWS_REGION"):
            env.pop(key, None)  # an instance gets its region and credentials from IMDS
        record.log_path.parent.mkdir(parents=True, exist_ok=True)
        with record.log_path.open("ab") as log:
            try:
                record.popen = start_child(list(mapping["command"]), env=env,
                                           cwd=mapping.get("cwd") or "/", stdout=log)
            except OSError as exc:
                record.failure = f"cannot start the command of {ami}: {exc}"
                log.write(f"shakedown: cannot start amis.{ami}.command "
                          f"{mapping['command']}: {exc}\n".encode())
        record.launched = time.time()
        return record

    def _started(self, record: Launched) -> None:
        if record.popen is None:
            self._ended(record, f"Server.InternalError: {record.failure}",
                        "Server.InternalError")
            return
        if not record.terminating:  # not terminated before its launch was answered
            _set_state(record.instance, RUNNING)
        self.events.emit("ec2.instance", instance_id=record.id, state="running", ami=record.ami,
                         pid=record.popen.pid, instance_type=record.instance.instance_type)
        threading.Thread(target=self._watch, args=(record,), daemon=True,
                         name=f"ec2-{record.id}").start()

    def _watch(self, record: Launched) -> None:
        assert record.popen is not None
        record.exit_code = record.popen.wait()
        kill_child(record.popen)  # what the command left in its process group
        if record.terminating:
            self._ended(record, None, None)
        else:
            self._ended(record, "Client.InstanceInitiatedShutdown: Instance initiated "
                                "shutdown", "Client.InstanceInitiatedShutdown")

    def _ended(self, record: Launched, reason: str | None, code: str | None) -> None:
        from moto.ec2.models.instances import StateReason

        instance = record.instance
        if reason is not None and code is not None:
            if instance._state.name != TERMINATED[0] and self._terminate is not None:
                with contextlib.suppress(Exception):  # moto's own teardown (NICs, volumes)
                    self._terminate(instance)
            instance.state_reason = StateReason(reason, code)
        _set_state(instance, TERMINATED)
        self.events.emit("ec2.instance", instance_id=record.id, state="terminated",
                         ami=record.ami, exit_code=record.exit_code, reason=code or "user")

    def _stop(self, instance: Any) -> None:
        """TerminateInstances (or anything that terminates through moto)."""
        with self._lock:
            record = self._launched.get(str(instance.id))
        if record is None or record.popen is None or record.popen.poll() is not None:
            return
        if record.terminating:
            _set_state(instance, SHUTTING_DOWN)
            return
        record.terminating = True
        _set_state(instance, SHUTTING_DOWN)
        self.events.emit("ec2.instance", instance_id=record.id, state="shutting-down",
                         ami=record.ami)
        grace = float(self.amis[record.ami].get("stop_timeout", 10))
        threading.Thread(target=stop_child, args=(record.popen, grace), daemon=True).start()

    def describe(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r.describe() for r in self._launched.values()]

    def reset(self) -> None:
        """moto forgets every instance: their processes are killed."""
        with self._lock:
            records = list(self._launched.values())
            self._launched.clear()
        for record in records:
            record.terminating = True
            if record.popen is not None:
                kill_child(record.popen)

    def shutdown(self, grace: float = 3.0) -> None:
        with self._lock:
            records = list(self._launched.values())
        threads = []
        for record in records:
            record.terminating = True
            if record.popen is not None and record.popen.poll() is None:
                thread = threading.Thread(target=stop_child, args=(record.popen, grace))
                thread.start()
                threads.append(thread)
        for thread in threads:
            thread.join()

    # -- the instance metadata service ---------------------------------------------------
    def imds(self, environ: Environ, start_response: StartResponse, path: str
             ) -> Iterable[bytes]:
        instance_id, _, rest = path[len(IMDS_PREFIX):].partition("/")
        rest = rest.lstrip("/")  # an endpoint given with a trailing slash, joined with "/"
        with self._lock:
            record = self._launched.get(instance_id)
        if record is None:
            return _text(start_response, 404, "Not Found")
        method = environ.get("REQUEST_METHOD", "GET")
        if rest == "latest/api/token":
            if method != "PUT":
                return _text(start_response, 405, "Method Not Allowed")
            try:
                ttl = int(environ.get("HTTP_X_AWS_EC2_METADATA_TOKEN_TTL_SECONDS") or "")
            except ValueError:
                return _text(start_response, 400, "Bad Request")
            if not 1 <= ttl <= 21600:
                return _text(start_response, 400, "Bad Request")
            issued = secrets.token_urlsafe(32)
            record.tokens[issued] = time.time() + ttl
            start_response("200 OK", [("Content-Type", "text/plain"),
                                      ("X-Aws-Ec2-Metadata-Token-Ttl-Seconds", str(ttl))])
            return [issued.encode()]
        token: str | None = environ.get("HTTP_X_AWS_EC2_METADATA_TOKEN")
        required = getattr(record.instance.metadata_options, "http_tokens", "optional")
        if token is not None and record.tokens.get(token, 0) < time.time():
            return _text(start_response, 401, "Unauthorized")
        if token is None and required == "required":
            return _text(start_response, 401, "Unauthorized")
        answer = self._metadata(record, rest)
        if answer is None:
            return _text(start_response, 404, "Not Found")
        content_type = "application/json" if answer[:1] == b"{" else "text/plain"
        start_response("200 OK", [("Content-Type", content_type),
                                  ("Content-Length", str(len(answer)))])
        return [answer]

    def _metadata(self, record: Launched, path: str) -> bytes | None:
        instance = record.instance
        region = getattr(instance, "region_name", None) or self.settings.region
        zone = instance.placement.zone if instance.placement.zone else f"{region}a"
        role = _role_name(instance)
        private_ip = str(getattr(instance, "private_ip", None) or "127.0.0.1")
        meta = {
            "ami-id": record.ami, "instance-id": record.id,
            "instance-type": str(instance.instance_type),
            "hostname": f"ip-{private_ip.replace('.', '-')}.ec2.internal",
            "local-hostname": f"ip-{private_ip.replace('.', '-')}.ec2.internal",
            "local-ipv4": private_ip, "placement/availability-zone": zone,
            "placement/region": region, "iam/security-credentials/": role,
            f"iam/security-credentials/{role}": json.dumps(self._credentials()),
            "iam/info": json.dumps({"Code": "Success", "LastUpdated": _iso(time.time()),
                                    "InstanceProfileArn": f"arn:aws:iam::{instance.owner_id}:"
                                                          f"instance-profile/{role}",
                                    "InstanceProfileId": "AIPASHAKEDOWN"}),
        }
        if path.startswith("latest/meta-data/"):
            key = path[len("latest/meta-data/"):]
            if key in ("", "/"):
                return "\n".join(sorted({k.split("/")[0] + ("/" if "/" in k else "")
                                         for k in meta})).encode()
            if key in meta:
                return meta[key].encode()
            if key.rstrip("/") in ("placement", "iam"):
                prefix = key.rstrip("/") + "/"
                return "\n".join(sorted({k[len(prefix):].split("/")[0] for k in meta
                                         if k.startswith(prefix)})).encode()
            return None
        if path == "latest/user-data":
            data = instance.user_data
            if not data:
                return None
            return data.decode().encode() if hasattr(data, "decode") else str(data).encode()
        if path == "latest/dynamic/instance-identity/document":
            return json.dumps({
                "accountId": instance.owner_id, "architecture": "x86_64",
                "availabilityZone": zone, "imageId": record.ami, "instanceId": record.id,
                "instanceType": instance.instance_type, "privateIp": private_ip,
                "region": region, "version": "2017-09-30",
                "pendingTime": _iso(record.launched)}).encode()
        return None

    def _credentials(self) -> dict[str, str]:
        now = time.time()
        return {"Code": "Success", "LastUpdated": _iso(now), "Type": "AWS-HMAC",
                "AccessKeyId": self.settings.access_key_id,
                "SecretAccessKey": self.settings.secret_access_key,
                "Token": "shakedown-instance-session", "Expiration": _iso(now + 6 * 3600)}


def _role_name(instance: Any) -> str:
    """The instance profile's name (the role is named after it here), else a default."""
    association = getattr(instance.ec2_backend, "iam_instance_profile_associations", {}
                          ).get(instance.id)
    profile: Any = getattr(getattr(association, "iam_instance_profile", None), "name", None) \
        or getattr(instance, "iam_instance_profile", None)
    if isinstance(profile, dict):
        profile = profile.get("Arn") or profile.get("Name")
    if isinstance(profile, str) and profile:
        return profile.rsplit("/", 1)[-1]
    return "shakedown-instance"


def _iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def _text(start_response: StartResponse, status: int, text: str) -> list[bytes]:
    reasons = {400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
               405: "Method Not Allowed"}
    start_response(f"{status} {reasons.get(status, 'Error')}",
                   [("Content-Type", "text/plain"), ("Content-Length", str(len(text)))])
    return [text.encode()]
