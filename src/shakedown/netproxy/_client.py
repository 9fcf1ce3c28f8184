"""``ProxyControl``: the Python client of the proxy server's control API. Errors the server
answers (4xx/5xx with ``{error, checked, fix}``) come back as ``FaultError`` with the same
text. httpx is imported on first use, so importing this package (which the server process
does too) stays fast."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from shakedown.errors import FaultError

from ._proxy import ProxyInfo
from ._toxics import ToxicInfo

if TYPE_CHECKING:
    import httpx


class ProxyControl:
    """Client of one proxy server, e.g. ``ProxyControl("http://127.0.0.1:8474")``."""

    def __init__(self, control_url: str, timeout: float = 5.0) -> None:
        import httpx

        self.url = control_url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, timeout=timeout, trust_env=False)

    def __enter__(self) -> ProxyControl:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- proxies ---------------------------------------------------------------------------------

    def create(
        self, name: str, listen_port: int, upstream_host: str, upstream_port: int,
        identify: bool = False,
    ) -> ProxyInfo:
        """Create a proxy listening on 127.0.0.1:listen_port (0: any free port; the answer's
        ``listen`` says which) towards upstream_host:upstream_port. ``identify``: tell the
        source of each connection, so toxics with ``sources`` can act on some only."""
        body: dict[str, Any] = {
            "name": name,
            "listen": f"127.0.0.1:{listen_port}",
            "upstream": f"{upstream_host}:{upstream_port}",
        }
        if identify:
            body["identify"] = True
        return cast(ProxyInfo, self._call("POST", "/proxies", body))

    def delete(self, name: str) -> None:
        self._call("DELETE", f"/proxies/{_seg(name)}")

    def proxies(self) -> dict[str, ProxyInfo]:
        return cast(dict[str, ProxyInfo], self._call("GET", "/proxies"))

    def proxy(self, name: str) -> ProxyInfo:
        return cast(ProxyInfo, self._call("GET", f"/proxies/{_seg(name)}"))

    # -- toxics ----------------------------------------------------------------------------------

    def add_toxic(
        self,
        proxy: str,
        type: str,
        stream: str = "downstream",
        toxicity: float = 1.0,
        name: str | None = None,
        sources: Sequence[str] = (),
        **attributes: float,
    ) -> str:
        """Add a toxic to ``proxy``; it acts on open connections at once. Returns its name
        (default ``TYPE_STREAM``, or ``down`` for down). ``sources``: act only on connections
        from these sources (the proxy must identify them)."""
        body: dict[str, Any] = {
            "type": type, "stream": stream, "toxicity": toxicity, "attributes": attributes
        }
        if sources:
            body["sources"] = list(sources)
        if name is not None:
            body["name"] = name
        info = cast(ToxicInfo, self._call("POST", f"/proxies/{_seg(proxy)}/toxics", body))
        return info["name"]

    def remove_toxic(self, proxy: str, name: str) -> None:
        self._call("DELETE", f"/proxies/{_seg(proxy)}/toxics/{_seg(name)}")

    def toxics(self, proxy: str) -> list[ToxicInfo]:
        return cast(list[ToxicInfo], self._call("GET", f"/proxies/{_seg(proxy)}/toxics"))

    def reset(self) -> None:
        """Remove every toxic of every proxy and re-enable the proxies that were down."""
        self._call("POST", "/reset")

    # -- server ----------------------------------------------------------------------------------

    def version(self) -> str:
        return str(cast(dict[str, Any], self._call("GET", "/version"))["version"])

    def wait_ready(self, timeout: float = 5.0) -> None:
        """Wait until the control API answers; FaultError after ``timeout`` seconds."""
        import httpx

        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while True:
            try:
                if self._http.get("/version", timeout=0.5).status_code == 200:
                    return
                last = "answered but not with 200"
            except httpx.HTTPError as error:
                last = f"{type(error).__name__}: {error}"
            if time.monotonic() >= deadline:
                raise FaultError(
                    f"proxy server at {self.url} not ready after {timeout:g}s",
                    checked=[f"GET {self.url}/version: {last}"],
                    fix=["look at the proxy server's log", "check that its control port is free"],
                )
            time.sleep(0.005)

    def _call(self, method: str, path: str, body: object = None) -> object:
        import httpx

        try:
            response = self._http.request(method, path, json=body)
        except httpx.HTTPError as error:
            raise FaultError(
                f"proxy server at {self.url} did not answer {method} {path}: {error}",
                checked=[f"{method} {self.url}{path}"],
                fix=["check that the proxy server is running (see its log)"],
            ) from error
        payload = _json(response)
        if response.status_code >= 400:
            raise _as_fault_error(response.status_code, payload)
        return payload


def _json(response: httpx.Response) -> object:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return {"error": response.text}


def _as_fault_error(status: int, payload: object) -> FaultError:
    if isinstance(payload, dict) and isinstance(payload.get("error"), str):
        return FaultError(
            payload["error"],
            checked=[str(item) for item in payload.get("checked") or []],
            fix=[str(item) for item in payload.get("fix") or []],
        )
    return FaultError(f"proxy server answered HTTP {status}: {payload!r}")


def _seg(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe="")
