"""The compute bridge: where the emulator runs code instead of only recording it. It answers
Lambda ``Invoke`` itself (native workers), hooks moto's EC2 model (instances as processes, the
metadata service), polls SQS queues for event source mappings (``_lambda_sqs``), serves the
declared HTTP APIs on their ports, and lists all of it at
``GET /_shakedown/compute``. The fault middleware calls it; moto's reset resets it."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from ._apigw import ApiServers, HttpApi
from ._ec2 import IMDS_PREFIX, Instances
from ._ecs import METADATA_PREFIX, EcsSettings, EcsTasks
from ._events import Events
from ._lambda import Function, LambdaRuntime, NotRunnable
from ._lambda_api import INVOKE_PATH, handle_invoke
from ._lambda_sqs import SqsEventSources
from ._mail import sent_emails
from ._mail_in import MailError, receive
from ._metrics import Metrics
from ._settings import DEFAULT_ACCOUNT, ComputeSettings
from ._wsgi import Environ, StartResponse, json_response, read_body


class ComputeBridge:
    def __init__(self, config: dict[str, Any]) -> None:
        self.settings = ComputeSettings.from_config(config)
        self.services = list(config.get("services", []))
        self.events = Events(self.settings.log_path("compute").with_suffix(".jsonl"),
                             self.settings.history, self.settings.origin, self.settings.service)
        self.runtime = LambdaRuntime(self.settings, self.events)
        self.instances = Instances(self.settings, self.events) if self.settings.amis else None
        self.apis = ApiServers()
        self.event_sources = SqsEventSources(self.runtime, self.mapped_function, self.events)
        self.metrics = Metrics(self.events) if "cloudwatch" in config.get("services", []) \
            else None
        self.ecs = EcsTasks(self.settings, config, self.events) \
            if EcsSettings.from_config(config).images else None

    def start(self) -> None:
        """Install the EC2 hooks and open the APIs' ports (before the emulator answers)."""
        if self.instances is not None:
            self.instances.install()
        self.event_sources.start()
        if self.ecs is not None:
            self.ecs.install()
        if self.metrics is not None:
            self.metrics.install()
        for name, spec in self.settings.apis.items():
            api = HttpApi(name, spec, self.runtime, self.function, DEFAULT_ACCOUNT,
                          self.settings.region)
            self.apis.start(self.settings.host, int(spec["port"]), api)

    def function(self, name: str) -> Function | None:
        """A function by name, in the emulator's region and default account."""
        from moto.awslambda.models import lambda_backends

        try:
            model = lambda_backends[DEFAULT_ACCOUNT][self.settings.region].get_function(name)
            return self.runtime.function(model)
        except NotRunnable:
            raise
        except Exception:
            return None

    def mapped_function(self, account: str, region: str, arn: str) -> Function | None:
        """The function an event source mapping names (by ARN, in its account and region)."""
        from moto.awslambda.models import lambda_backends

        try:
            model = lambda_backends[account][region].get_function(arn)
        except Exception:
            return None
        return self.runtime.function(model)

    # -- requests --------------------------------------------------------------------
    def intercept(self, environ: Environ, start_response: StartResponse
                  ) -> Iterable[bytes] | None:
        """Answer the request here, or None to let moto answer it."""
        path = environ.get("PATH_INFO", "")
        if environ.get("REQUEST_METHOD") == "POST" and path.startswith("/2015-03-31/"):
            match = INVOKE_PATH.match(path)
            if match:
                return handle_invoke(self.runtime, environ, start_response, match.group(1))
        return None

    def after(self) -> None:
        """After moto answered: start the processes of instances it launched."""
        if self.instances is not None:
            self.instances.flush()

    def control(self, environ: Environ, start_response: StartResponse, path: str
                ) -> Iterable[bytes] | None:
        if path.startswith(IMDS_PREFIX):
            if self.instances is None:
                return json_response(start_response, 404, {"error": "no AMI is mapped"})
            return self.instances.imds(environ, start_response, path)
        if path.startswith(METADATA_PREFIX) and self.ecs is not None:
            return self.ecs.metadata(environ, start_response, path)
        if path == "mail/sent" and environ.get("REQUEST_METHOD") == "GET":
            return json_response(start_response, 200, sent_emails(self.settings.region))
        if path == "mail/receive" and environ.get("REQUEST_METHOD") == "POST":
            return self._receive(environ, start_response)
        if path == "metrics" and environ.get("REQUEST_METHOD") == "GET":
            return json_response(start_response, 200,
                                 self.metrics.data() if self.metrics else [])
        if path == "compute" and environ.get("REQUEST_METHOD") == "GET":
            return json_response(start_response, 200, self.describe())
        return None

    def _receive(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if "ses" not in self.services:
            return json_response(start_response, 400, {"error": "ses is not among services"})
        try:
            request = json.loads(read_body(environ) or b"{}")
            if not isinstance(request, dict):
                raise MailError("the request is not a JSON object")
            delivery = receive(self.settings.region, request, self.events)
        except (MailError, ValueError) as exc:
            return json_response(start_response, 400, {"error": str(exc)})
        except Exception as exc:  # a rule's target is missing (bucket, topic): SES's own error
            return json_response(start_response, 400, {"error": f"{type(exc).__name__}: {exc}"})
        return json_response(start_response, 200, delivery.to_dict())

    def describe(self) -> dict[str, Any]:
        return {"workers": self.runtime.workers(),
                "instances": self.instances.describe() if self.instances else [],
                "event_sources": self.event_sources.describe(),
                "tasks": self.ecs.describe() if self.ecs else [],
                "ecs_services": self.ecs.services() if self.ecs else [],
                "apis": {name: {"port": spec["port"], "routes": spec["routes"]}
                         for name, spec in self.settings.apis.items()}}

    # -- lifecycle -------------------------------------------------------------------
    def reset(self) -> None:
        self.runtime.reset()
        if self.instances is not None:
            self.instances.reset()
        if self.ecs is not None:
            self.ecs.reset()
        if self.metrics is not None:
            self.metrics.reset()

    def shutdown(self) -> None:
        self.apis.shutdown()
        self.event_sources.shutdown()
        if self.instances is not None:
            self.instances.shutdown()
        if self.ecs is not None:
            self.ecs.shutdown()
        self.runtime.shutdown()
        self.events.close()
