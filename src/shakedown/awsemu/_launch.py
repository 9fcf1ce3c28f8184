"""The command line that starts the emulator quickly.

Like the fault proxy's, the child does not run ``python -m shakedown.awsemu``: that would import
the top-level ``shakedown`` package's ``__init__`` first. A three-line bootstrap registers
``shakedown`` as a bare package (its real directory, no ``__init__`` run) and calls the server's
``main``, so the process imports this package, moto and the stdlib-only ``shakedown.history``
(compute events go to the environment's history), nothing else of shakedown."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from typing import Any

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
_BOOTSTRAP = (
    "import sys, types; package = types.ModuleType('shakedown'); "
    "package.__path__ = [sys.argv[1]]; sys.modules['shakedown'] = package; "
    "from shakedown.awsemu._server import main; main(sys.argv[2:])"
)


def server_command(host: str, port: int, config: Mapping[str, Any]) -> list[str]:
    """argv of an emulator on host:port with ``config`` (region, services, resources,
    access_key_id). ``-P`` keeps the working directory off ``sys.path``: a user's ``redis.py``
    must not shadow a package moto imports."""
    return [sys.executable, "-P", "-c", _BOOTSTRAP, _PACKAGE_DIR, "--host", host,
            "--port", str(port), "--config", json.dumps(dict(config))]
