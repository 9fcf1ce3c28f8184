"""Starting the proxy server as its own process: its own session and process group (the
caller stops it with SIGTERM to the group), output to a log file, the caller's tag variables
in its environment."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import shakedown


def spawn_proxy_server(
    control_port: int,
    log_path: str | os.PathLike[str],
    env: Mapping[str, str] | None = None,
    *,
    control_host: str = "127.0.0.1",
) -> subprocess.Popen[bytes]:
    """Start ``python -m shakedown.netproxy`` answering on control_host:control_port.

    ``env`` is merged over os.environ (the run's tag, e.g. SHAKEDOWN_ENV_ID, goes there).
    Readiness is the caller's to check: ``ProxyControl(url).wait_ready(timeout)``.
    """
    environment = {**os.environ, **(env or {})}
    # The child must import this very shakedown, even when it was not installed.
    source_root = str(Path(shakedown.__file__).resolve().parent.parent)
    paths = [source_root, *filter(None, environment.get("PYTHONPATH", "").split(os.pathsep))]
    environment["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    command = [
        sys.executable, "-m", "shakedown.netproxy",
        "--control-port", str(control_port), "--control-host", control_host,
    ]
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=environment,
            start_new_session=True,
            close_fds=True,
        )
