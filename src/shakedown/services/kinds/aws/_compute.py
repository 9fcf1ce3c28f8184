"""The compute side of the ``aws`` kind (mixed into ``AwsService``): the emulator's compute
configuration (declared functions, APIs on ports of their own, AMIs mapped to commands),
checked before the emulator starts; what tests see of it (workers, instances, API URLs, logs,
events); faults on its processes, addressed as roles (``lambda:NAME`` for a function's
workers, an instance id for an instance's process)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ....errors import FaultError, TopologyError, did_you_mean
from ....process import Spawned
from ....topology.specs.aws import AwsSpec

if TYPE_CHECKING:
    from ....history import History
    from ..._base import ServiceContext

LAMBDA_ROLE = "lambda:"


class AwsCompute:
    """Mixin of ``AwsService``; needs its ``spec``, ``ctx``, ``name``, ``host`` and
    ``_control``."""

    spec: AwsSpec
    ctx: ServiceContext

    if TYPE_CHECKING:
        name: str
        host: str

        def _control(self, method: str, path: str, json_body: Any = None,
                     ok: tuple[int, ...] = (200, 201)) -> Any: ...

    @classmethod
    def compute_ports(cls, spec: AwsSpec) -> int:
        return len(spec.apis)

    # -- configuration ---------------------------------------------------------------
    def compute_config(self) -> dict[str, Any]:
        """The ``compute`` part of the emulator's configuration; TopologyError when a code
        directory, handler module or command is not there."""
        return {
            "service": self.name, "log_dir": str(self.ctx.log_dir),
            "data_dir": str(self.ctx.data_dir),
            "functions": {name: self._function_config(name) for name in self.spec.functions},
            "apis": {name: {"port": self.api_port(name), "routes": dict(api.routes),
                            "api_key": api.api_key, "type": api.type, "authorizer": api.authorizer,
                            "identity_source": api.identity_source.lower()}
                     for name, api in self.spec.apis.items()},
            "amis": {ami: self._ami_config(ami) for ami in self.spec.amis},
            # the emulator records invocations and instance state changes there itself
            "history": str(self.ctx.history_file) if self.ctx.history_file else None,
            "origin": self.ctx.origin,
        }

    def _function_config(self, name: str) -> dict[str, Any]:
        spec = self.spec.functions[name]
        key = f"services.{self.name}.functions.{name}"
        code_dir = self.ctx.topology.resolve_path(spec.code)
        if not code_dir.is_dir():
            raise TopologyError(f"{key}.code: {code_dir} is not a directory",
                                checked=[f"code = {spec.code!r}, relative to "
                                         f"{self.ctx.topology.base_dir}"],
                                fix=["give the directory that holds the handler's module"])
        module = spec.module.replace(".", "/")
        candidates = [code_dir / f"{module}.py", code_dir / module / "__init__.py"]
        if not any(path.is_file() for path in candidates):
            raise TopologyError(f"{key}.handler = {spec.handler!r}: no module "
                                f"{spec.module!r} in {code_dir}",
                                checked=[str(path) for path in candidates],
                                fix=["name the module as it is imported from the code "
                                     "directory (handler = \"module.function\")",
                                     f"or set {key}.code to the directory that holds it"])
        return {"runtime": spec.runtime, "handler": spec.handler, "code_dir": str(code_dir),
                "env": dict(spec.env), "timeout": spec.timeout, "memory": spec.memory,
                "reserved_concurrency": spec.reserved_concurrency,
                "sqs": [source.model_dump() for source in spec.sqs]}

    def _ami_config(self, ami: str) -> dict[str, Any]:
        spec = self.spec.amis[ami]
        cwd = self.ctx.topology.resolve_path(spec.cwd) if spec.cwd else \
            self.ctx.topology.base_dir
        argv = [arg.replace("{python}", sys.executable) for arg in spec.command]
        found = shutil.which(argv[0]) if "/" not in argv[0] else (
            argv[0] if Path(cwd, argv[0]).exists() else None)
        if found is None:
            raise TopologyError(f"services.{self.name}.amis.{ami!r}.command: {argv[0]!r} "
                                "not found",
                                checked=[f"PATH and {cwd}"],
                                fix=["install it, or give its path (relative to cwd), or "
                                     "\"{python}\" for this Python"])
        return {"command": argv, "cwd": str(cwd), "env": dict(spec.env),
                "stop_timeout": spec.stop_timeout}

    # -- addresses -------------------------------------------------------------------
    def api_port(self, api: str) -> int:
        names = list(self.spec.apis)
        if api not in names:
            raise KeyError(f"service {self.name!r} has no API {api!r}"
                           f"{did_you_mean(api, names)}; APIs: {', '.join(names) or 'none'}")
        return self.ctx.ports[1 + names.index(api)]

    def api_url(self, api: str) -> str:
        """The local URL of a declared HTTP API (``{aws.api_NAME_url}`` in the topology)."""
        return f"http://{self.host}:{self.api_port(api)}"

    def compute_exports(self) -> dict[str, str]:
        return {f"api_{name.replace('-', '_')}_url": self.api_url(name)
                for name in self.spec.apis}

    # -- what runs ----------------------------------------------------------------
    def compute(self) -> dict[str, Any]:
        """``{"workers": [...], "instances": [...], "apis": {...}}`` as the emulator sees
        them now (pids, states, invocation counts)."""
        data: dict[str, Any] = self._control("GET", "/_shakedown/compute").json()
        return data

    def workers(self, function: str | None = None) -> list[dict[str, Any]]:
        """Lambda workers alive now (of ``function`` only when given)."""
        return [w for w in self.compute()["workers"]
                if w["alive"] and function in (None, w["function"])]

    def instances(self, state: str | None = None) -> list[dict[str, Any]]:
        """Instances launched from mapped AMIs (in ``state`` only when given)."""
        return [i for i in self.compute()["instances"] if state in (None, i["state"])]

    def compute_events(self) -> list[dict[str, Any]]:
        """Every invocation and instance state change so far, oldest first."""
        path = self.ctx.log_dir / f"{self.name}.compute.jsonl"
        try:
            lines = path.read_text().splitlines()
        except FileNotFoundError:
            return []
        events = []
        for line in lines:
            try:
                events.append(json.loads(line))
            except ValueError:
                continue  # a line being written
        return events

    def record_compute(self, history: History, since: float = 0.0) -> int:
        """Append the compute events later than ``since`` (wall-clock seconds) to
        ``history`` as nemesis ``info`` operations at their own times; returns how many.
        The environment's own history file gets them from the emulator already: this is for
        another history (a test's own)."""
        count = 0
        for event in self.compute_events():
            if event["time"] <= since:
                continue
            fields = {k: v for k, v in event.items() if k not in ("time", "type")}
            history.append("nemesis", "info", event["type"], {"target": self.name, **fields},
                           at=event["time"] - history.wall_origin)
            count += 1
        return count

    def compute_log_paths(self) -> dict[str, Path]:
        """``lambda/NAME`` and ``ec2/INSTANCE`` → their log files (those that exist)."""
        found: dict[str, Path] = {}
        for path in sorted(self.ctx.log_dir.glob(f"{self.name}.lambda.*.log")):
            found["lambda/" + path.name[len(self.name) + 8:-4]] = path
        for path in sorted(self.ctx.log_dir.glob(f"{self.name}.ec2.*.log")):
            found["ec2/" + path.name[len(self.name) + 5:-4]] = path
        return found

    # -- processes as fault targets ---------------------------------------------------
    def compute_processes(self, role: str) -> list[Spawned] | None:
        """The processes a role names: ``lambda:NAME`` (its live workers) or an instance id;
        None when the role is not a compute one."""
        if role.startswith(LAMBDA_ROLE):
            function = role[len(LAMBDA_ROLE):]
            workers = self.workers(function)
            if not workers:
                raise FaultError(f"function {function!r} of service {self.name!r} has no "
                                 "live worker",
                                 checked=[f"workers: {self._worker_summary()}"],
                                 fix=["invoke the function first: workers start on demand"])
            log = self.ctx.log_dir / f"{self.name}.lambda.{function}.log"
            return [Spawned(role, w["pid"], w["pgid"], log) for w in workers]
        if role.startswith("i-"):
            instance = next((i for i in self.instances() if i["instance_id"] == role), None)
            if instance is None or not instance["alive"]:
                raise FaultError(f"instance {role!r} of service {self.name!r} has no live "
                                 "process",
                                 checked=[f"instances: {self._instance_summary()}"],
                                 fix=["name a running instance (aws.instances('running'))"])
            return [Spawned(role, instance["pid"], instance["pgid"], Path(instance["log"]))]
        return None

    def compute_roles(self) -> list[str]:
        if not self.spec.functions and not self.spec.amis and not self.spec.apis:
            return []
        try:
            snapshot = self.compute()
        except FaultError:  # the emulator is down: only its own role is left
            return []
        functions = sorted({w["function"] for w in snapshot["workers"] if w["alive"]})
        running = [i["instance_id"] for i in snapshot["instances"] if i["alive"]]
        return [*(LAMBDA_ROLE + f for f in functions), *running]

    def _worker_summary(self) -> str:
        return ", ".join(f"{w['function']} pid {w['pid']}" for w in self.workers()) or "none"

    def _instance_summary(self) -> str:
        return ", ".join(f"{i['instance_id']} {i['state']}" for i in self.instances()) \
            or "none"
