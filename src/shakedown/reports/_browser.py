"""Open a report in headless Chromium and see what a reader would see: drive the browser over
the DevTools protocol on a pipe (``--remote-debugging-pipe``: no port, no extra package),
record every request the page makes, console errors and uncaught exceptions, evaluate a check
in the page and optionally save a full-page screenshot. Used by the tests (the report's plots
are drawn, nothing is fetched from the network) and by ``shakedown report --screenshot``."""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import MissingBinaryError, ShakedownError

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--no-first-run", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--remote-debugging-pipe")
CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
INSTALL = "apt-get install -y chromium"
_SHIM = ("import os, sys; r, w = int(sys.argv[1]), int(sys.argv[2]); os.dup2(r, 3); "
         "os.dup2(w, 4); os.close(r); os.close(w); os.execv(sys.argv[3], sys.argv[3:])")

# Every canvas in the element (shadow roots included, Bokeh draws in one) with painted pixels.
DRAWN_CANVASES = """
(selector) => {
  const host = document.querySelector(selector);
  if (!host) return {found: false, canvases: 0, painted: 0};
  const canvases = [];
  const walk = (node) => {
    if (node.tagName === 'CANVAS') canvases.push(node);
    if (node.shadowRoot) walk(node.shadowRoot);
    for (const child of node.children || []) walk(child);
  };
  walk(host);
  let painted = 0;
  for (const c of canvases) {
    if (!c.width || !c.height) continue;
    const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let ink = 0;
    for (let i = 3; i < data.length; i += 4 * 7) if (data[i] > 0) ink++;
    if (ink > 50) painted++;
  }
  return {found: true, canvases: canvases.length, painted: painted};
}
"""


def find_chromium() -> Path | None:
    configured = os.environ.get("SHAKEDOWN_CHROMIUM")
    if configured:
        return Path(configured) if Path(configured).exists() else None
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return Path(found)
    return None


def require_chromium() -> Path:
    found = find_chromium()
    if found is None:
        raise MissingBinaryError("chromium", kind="report browser check",
                                 searched=[f"$SHAKEDOWN_CHROMIUM, {', '.join(CANDIDATES)} "
                                           "on PATH"], install=INSTALL)
    return found


@dataclass
class PageVisit:
    """What happened while the page loaded."""

    url: str
    requests: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)
    checks: dict[str, Any] = field(default_factory=dict)
    screenshot: Path | None = None

    @property
    def external_requests(self) -> list[str]:
        """Requests for anything but the file itself and in-page data (data:, blob:)."""
        return [u for u in self.requests if not u.startswith(("file:", "data:", "blob:"))
                and u != "about:blank"]


class _Pipe:
    def __init__(self, proc: subprocess.Popen[bytes], write_fd: int, read_fd: int) -> None:
        self.proc = proc
        self._write = write_fd
        self._read = read_fd
        self._buffer = b""
        self._next = 0
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, params: dict[str, Any] | None = None,
             session: str | None = None, timeout: float = 30.0) -> dict[str, Any]:
        self._next += 1
        message: dict[str, Any] = {"id": self._next, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._write, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._receive(deadline)
            if reply.get("id") == self._next:
                if "error" in reply:
                    raise ShakedownError(f"chromium: {method} failed: {reply['error']}")
                return dict(reply.get("result") or {})
            self.events.append(reply)

    def wait_for(self, method: str, timeout: float) -> dict[str, Any]:
        for index, event in enumerate(self.events):
            if event.get("method") == method:
                return dict(self.events.pop(index).get("params") or {})
        deadline = time.monotonic() + timeout
        while True:
            event = self._receive(deadline)
            if event.get("method") == method:
                return dict(event.get("params") or {})
            self.events.append(event)

    def drain(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while True:
            try:
                self.events.append(self._receive(deadline))
            except TimeoutError:
                return

    def _receive(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("chromium did not answer in time")
            ready, _, _ = select.select([self._read], [], [], left)
            if not ready:
                continue
            chunk = os.read(self._read, 1 << 20)
            if not chunk:
                raise ShakedownError("chromium closed the DevTools pipe (it exited)",
                                     checked=[f"exit status {self.proc.poll()}"])
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return dict(json.loads(message))


def visit(path: Path, *, checks: dict[str, str] | None = None, screenshot: Path | None = None,
          width: int = 1280, height: int = 900, settle: float = 1.0,
          timeout: float = 60.0) -> PageVisit:
    """Load ``path`` (a local file) in headless Chromium; evaluate each JavaScript expression
    of ``checks`` after the load (retried until truthy or ``timeout``); record requests,
    console errors and exceptions; save a full-page PNG to ``screenshot``."""
    binary = require_chromium()
    url = path.resolve().as_uri()
    profile = Path(tempfile.mkdtemp(prefix="shakedown-chromium-"))
    to_chrome_r, to_chrome_w = os.pipe()
    from_chrome_r, from_chrome_w = os.pipe()

    # The DevTools pipe is fds 3 (into the browser) and 4 (out of it). The pipe ends are moved
    # above 10 first so that placing one cannot overwrite the other; a small exec shim places
    # them (a shell cannot: dash takes single-digit descriptors only).
    high_r = fcntl.fcntl(to_chrome_r, fcntl.F_DUPFD_CLOEXEC, 10)
    high_w = fcntl.fcntl(from_chrome_w, fcntl.F_DUPFD_CLOEXEC, 10)
    command = [str(binary), *FLAGS, f"--user-data-dir={profile}",
               f"--window-size={width},{height}", "about:blank"]
    proc = subprocess.Popen(
        [sys.executable, "-c", _SHIM, str(high_r), str(high_w), *command],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        pass_fds=(high_r, high_w), start_new_session=True)
    for fd in (to_chrome_r, from_chrome_w, high_r, high_w):
        os.close(fd)
    pipe = _Pipe(proc, to_chrome_w, from_chrome_r)
    result = PageVisit(url)
    try:
        target = pipe.send("Target.createTarget", {"url": "about:blank"}, timeout=timeout)
        session = pipe.send("Target.attachToTarget", {"targetId": target["targetId"],
                                                      "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            pipe.send(f"{domain}.enable", session=session)
        pipe.send("Emulation.setDeviceMetricsOverride", {"width": width, "height": height,
                                                         "deviceScaleFactor": 1,
                                                         "mobile": False}, session=session)
        pipe.send("Page.navigate", {"url": url}, session=session)
        pipe.wait_for("Page.loadEventFired", timeout)
        pipe.drain(settle)
        deadline = time.monotonic() + timeout
        for name, expression in (checks or {}).items():
            while True:
                value = _evaluate(pipe, session, expression)
                if value or time.monotonic() > deadline:
                    result.checks[name] = value
                    break
                pipe.drain(0.25)
        if screenshot is not None:
            result.screenshot = _screenshot(pipe, session, screenshot, width, settle)
        pipe.drain(0.2)
        _collect(pipe.events, result)
        with contextlib.suppress(ShakedownError, TimeoutError):
            pipe.send("Browser.close", timeout=10)
    finally:
        for fd in (to_chrome_w, from_chrome_r):
            os.close(fd)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait(timeout=10)
        shutil.rmtree(profile, ignore_errors=True)
    return result


def _evaluate(pipe: _Pipe, session: str, expression: str) -> Any:
    reply = pipe.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                           "awaitPromise": True}, session=session)
    if "exceptionDetails" in reply:
        raise ShakedownError(f"the page check {expression[:80]!r} raised: "
                             f"{reply['exceptionDetails'].get('text')}: "
                             f"{reply['exceptionDetails'].get('exception', {})}")
    return reply.get("result", {}).get("value")


def _screenshot(pipe: _Pipe, session: str, path: Path, width: int, settle: float) -> Path:
    metrics = pipe.send("Page.getLayoutMetrics", session=session)
    size = metrics.get("cssContentSize") or metrics["contentSize"]
    height = int(min(size["height"], 16000))
    pipe.send("Emulation.setDeviceMetricsOverride", {"width": width, "height": height,
                                                     "deviceScaleFactor": 1, "mobile": False},
              session=session)
    pipe.drain(settle)
    # the viewport now holds the whole page; capturing beyond it left stray pixels of canvases
    shot = pipe.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": False},
                     session=session)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(base64.b64decode(shot["data"]))
    return path


def _collect(events: list[dict[str, Any]], result: PageVisit) -> None:
    for event in events:
        method, params = event.get("method"), event.get("params") or {}
        if method == "Network.requestWillBeSent":
            result.requests.append(str(params.get("request", {}).get("url", "")))
        elif method == "Network.loadingFailed":
            result.failed_requests.append(f"{params.get('errorText')} ({params.get('type')})")
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            result.console_errors.append(" ".join(
                str(arg.get("value", arg.get("description", ""))) for arg in params.get("args",
                                                                                           [])))
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            result.exceptions.append(str(details.get("exception", {}).get("description")
                                         or details.get("text")))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            result.console_errors.append(f"{entry.get('source')}: {entry.get('text')} "
                                         f"{entry.get('url', '')}".strip())
