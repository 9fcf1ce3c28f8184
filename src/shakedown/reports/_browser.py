"""Open a report in headless Chromium and see what a reader would see: Playwright for Python
drives the machine's own Chromium (``executable_path``: no browser download, so it works on a
machine that reaches only package registries), records every request the page makes, console
errors and uncaught exceptions, evaluates checks in the page and optionally saves a full-page
screenshot. Used by the tests (the report's plots are drawn, nothing is fetched from the
network) and by ``shakedown report --screenshot``."""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import MissingBinaryError, ShakedownError

# Without the background-networking flags Chromium keeps trying hosts a closed network refuses.
FLAGS = ("--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
         "--disable-component-update", "--disable-sync", "--hide-scrollbars")
CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
INSTALL = "apt-get install -y chromium"
PLAYWRIGHT_INSTALL = "pip install playwright  (no browser download: Debian's Chromium is used)"

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


def visit(path: Path, *, checks: dict[str, str] | None = None, screenshot: Path | None = None,
          width: int = 1280, height: int = 900, settle: float = 1.0,
          timeout: float = 60.0) -> PageVisit:
    """Load ``path`` (a local file) in headless Chromium; evaluate each JavaScript expression
    of ``checks`` after the load (retried until truthy or ``timeout``); record requests,
    console errors and exceptions; save a full-page PNG to ``screenshot``."""
    binary = require_chromium()
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise MissingBinaryError("playwright", kind="report browser check",
                                 searched=["the playwright package of this Python"],
                                 install=PLAYWRIGHT_INSTALL) from None
    result = PageVisit(path.resolve().as_uri())
    try:
        with sync_playwright() as driver:
            browser = driver.chromium.launch(executable_path=str(binary), args=list(FLAGS),
                                             timeout=timeout * 1000)
            try:
                page = browser.new_page(viewport={"width": width, "height": height})
                _record(page, result)
                page.goto(result.url, wait_until="load", timeout=timeout * 1000)
                page.wait_for_timeout(settle * 1000)
                deadline = time.monotonic() + timeout
                for name, expression in (checks or {}).items():
                    result.checks[name] = _until_truthy(page, expression, deadline)
                if screenshot is not None:
                    screenshot.parent.mkdir(parents=True, exist_ok=True)
                    page.screenshot(path=str(screenshot), full_page=True)
                    result.screenshot = screenshot
            finally:
                browser.close()
    except PlaywrightError as exc:
        raise ShakedownError(f"chromium could not show {path}: {exc.message.splitlines()[0]}",
                             checked=[f"{binary} driven by Playwright"],
                             fix=["check that Chromium starts: chromium --headless about:blank",
                                  "or point SHAKEDOWN_CHROMIUM at another browser"]) from None
    return result


def _record(page: Any, result: PageVisit) -> None:
    page.on("request", lambda request: result.requests.append(request.url))
    page.on("requestfailed", lambda request: result.failed_requests.append(
        f"{request.failure} ({request.resource_type})"))
    page.on("console", lambda message: result.console_errors.append(message.text)
            if message.type in ("error", "assert") else None)
    page.on("pageerror", lambda error: result.exceptions.append(str(error)))


def _until_truthy(page: Any, expression: str, deadline: float) -> Any:
    while True:
        try:
            value = page.evaluate(expression)
        except Exception as exc:  # playwright's Error: the check itself is wrong
            raise ShakedownError(f"the page check {expression[:80]!r} raised: {exc}") from None
        if value or time.monotonic() > deadline:
            return value
        page.wait_for_timeout(250)
