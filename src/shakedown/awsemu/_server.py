"""The emulator process: moto's WSGI application behind shakedown's HTTP front (``_http``),
wrapped in the fault middleware, with the declared resources created before it answers.

The listening socket is bound before moto is imported, so a readiness probe that connects early
waits in the accept queue and is answered the moment the application is built (no polling
granularity added to the start time)."""

from __future__ import annotations

import argparse
import gc
import json
import os
import signal
import socket
import sys
import threading
import time
from typing import Any

from ._compute import ComputeBridge
from ._http import HttpServer
from ._middleware import FaultMiddleware
from ._resources import Resources


def _warm(dispatcher: Any, services: list[str], region: str) -> None:
    """Build moto's per-service applications now rather than on the first request."""
    from moto.backend_index import backend_url_patterns

    for service in ["moto_api", *services]:
        if service == "moto_api":
            backend: str | None = "moto_api"
        else:
            url = f"https://{service}.{region}.amazonaws.com"
            backend = next((b for b, p in backend_url_patterns if p.match(url)), None)
        if backend is None or backend in dispatcher.app_instances:
            continue
        try:
            dispatcher.app_instances[backend] = dispatcher.create_app(backend)
        except Exception as exc:  # moto builds it on first use instead
            print(f"shakedown: could not prepare moto backend {backend}: {exc}", file=sys.stderr)


def _share_model_loader() -> None:
    """moto makes a new botocore loader for every service model it reads, and each new loader
    lists every service botocore knows by probing thousands of files (~35 ms). One shared
    loader, listing service directories with one scandir per search path, does the same
    check (is there such a service?) at a fraction of the cost."""
    import functools

    import moto.core.utils as moto_utils

    create = getattr(moto_utils, "create_loader", None)
    if create is None or getattr(create, "shared_by_shakedown", False):
        return
    loader = create()

    def service_directories(type_name: str) -> list[str]:
        names: set[str] = set()
        for path in loader.search_paths:
            try:
                names.update(entry.name for entry in os.scandir(path) if entry.is_dir())
            except OSError:
                continue
        return sorted(names)

    loader.list_available_services = functools.cache(service_directories)

    def shared(*args: Any, **kwargs: Any) -> Any:
        return loader if not args and not kwargs else create(*args, **kwargs)

    shared.shared_by_shakedown = True  # type: ignore[attr-defined]
    moto_utils.create_loader = shared  # type: ignore[attr-defined]
    try:  # the boto3 session moto lists regions with reads the same models: same loader
        from moto.core.base_backend import AccountSpecificBackend

        AccountSpecificBackend.get_session()._session.register_component("data_loader", loader)
    except Exception as exc:  # an optimisation only
        print(f"shakedown: botocore loader not shared: {exc}", file=sys.stderr)


def _warm_request_path(services: list[str]) -> None:
    """What moto does on the first request of a service, done in the background once the
    server answers: account lookup (imports moto.iam) and the botocore model of each service."""
    try:
        from moto.core.utils import get_service_model
        from moto.iam.models import get_account_id_from  # noqa: F401

        for service in services:
            get_service_model(service)
    except Exception as exc:  # the first request does the same work, and reports its errors
        print(f"shakedown: background warm-up stopped: {exc}", file=sys.stderr)


def main(argv: list[str] | None = None) -> None:
    began = time.monotonic()
    parser = argparse.ArgumentParser(description="shakedown's AWS emulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--config", default="{}", help="JSON: region, services, resources")
    args = parser.parse_args(argv)
    config: dict[str, Any] = {"region": "us-east-1", "services": [], "resources": {},
                              "access_key_id": "shakedown", **json.loads(args.config)}
    config["port"] = args.port
    config["host"] = args.host

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((args.host, args.port))
    listener.listen(128)

    os.environ.setdefault("MOTO_PORT", str(args.port))
    gc.disable()  # imports allocate many objects that live forever: no point collecting them
    from moto.core.request import should_preserve_original_header_name
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    _share_model_loader()
    imported = time.monotonic()
    dispatcher = DomainDispatcherApplication(create_backend_app)
    _warm(dispatcher, list(config["services"]), config["region"])
    warmed = time.monotonic()
    resources = Resources(dispatcher, config)
    compute = ComputeBridge(config)
    compute.start()
    app = FaultMiddleware(dispatcher, config, resources.create, compute)
    for line in resources.create():
        print(f"created {line}", flush=True)
    created = time.monotonic()
    gc.freeze()
    gc.enable()

    server = HttpServer(listener, app, "awsemu", preserve=should_preserve_original_header_name)

    def stop(signum: int, frame: Any) -> None:
        server.shutdown()

    threading.Thread(target=_warm_request_path, args=(list(config["services"]),),
                     daemon=True).start()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"shakedown aws server on http://{args.host}:{args.port} "
          f"(region {config['region']}, services {', '.join(config['services']) or '-'}) "
          f"ready in {time.monotonic() - began:.3f}s (imports {imported - began:.3f}s, "
          f"backends {warmed - imported:.3f}s, resources {created - warmed:.3f}s; "
          f"cpu {time.process_time():.3f}s)", flush=True)
    try:
        server.serve_forever()
    finally:
        compute.shutdown()  # workers and instances' processes do not outlive the emulator
