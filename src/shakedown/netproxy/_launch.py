"""Starting the proxy server as its own process: its own session and process group (the
caller stops it with SIGTERM to the group), output to a log file, the caller's tag variables
in its environment.

The child does not run ``python -m shakedown.netproxy``: that imports the top-level
``shakedown`` package first, and its ``__init__`` pulls in the whole tool (environment,
services, pydantic...), which costs hundreds of milliseconds before the control API can
answer. Instead a three-line bootstrap registers ``shakedown`` as a bare package (its real
directory, no ``__init__`` run) and calls the server's ``main``: the server only needs
``shakedown.errors`` and this package. ``python -m shakedown.netproxy`` still works, slower.
``server_command`` gives that command line to callers that spawn processes their own way.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping

# .../shakedown; os.path rather than pathlib: one import less on the server's start path
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
_BOOTSTRAP = (
    "import sys, types; package = types.ModuleType('shakedown'); "
    "package.__path__ = [sys.argv[1]]; sys.modules['shakedown'] = package; "
    "from shakedown.netproxy._server import main; sys.exit(main(sys.argv[2:]))"
)


def server_command(control_port: int, control_host: str = "127.0.0.1") -> list[str]:
    """The command line that starts the proxy server quickly (see the module docstring)."""
    return [
        sys.executable, "-c", _BOOTSTRAP, _PACKAGE_DIR,
        "--control-port", str(control_port), "--control-host", control_host,
    ]


def spawn_proxy_server(
    control_port: int,
    log_path: str | os.PathLike[str],
    env: Mapping[str, str] | None = None,
    *,
    control_host: str = "127.0.0.1",
) -> subprocess.Popen[bytes]:
    """Start the proxy server answering on control_host:control_port.

    ``env`` is merged over os.environ (the run's tag, e.g. SHAKEDOWN_ENV_ID, goes there).
    Readiness is the caller's to check: ``ProxyControl(url).wait_ready(timeout)``.
    """
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            server_command(control_port, control_host),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
            close_fds=True,
        )
