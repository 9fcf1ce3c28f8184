"""The proxy server process: the registry of named proxies, the Toxiproxy-like control API
routes on top of it, and ``main`` (``python -m shakedown.netproxy --control-port P``), which
runs until SIGTERM or SIGINT and then closes every listener and connection.

Control API (JSON bodies; errors are 4xx with ``{error, checked, fix}``):
  GET    /version                         {"version": ...}
  GET    /proxies                         {name: proxy}
  POST   /proxies                         {name, listen: "host:port", upstream: "host:port",
                                           identify?: bool (tell each connection's source)}
  GET    /proxies/NAME                    proxy
  DELETE /proxies/NAME
  GET    /proxies/NAME/toxics             [toxic]
  POST   /proxies/NAME/toxics             {type, name?, stream?, toxicity?, attributes?}
  GET    /proxies/NAME/toxics/TOXIC       toxic
  DELETE /proxies/NAME/toxics/TOXIC
  POST   /reset                           remove every toxic, re-enable every proxy
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import logging
import resource
import signal
import socket
import sys
from collections.abc import Mapping, Sequence

from shakedown.errors import FaultError, did_you_mean

from ._errors import BadRequestError, ConflictError, NotFoundError, http_status
from ._http import HttpServer
from ._proxy import Endpoint, Proxy, ProxyInfo
from ._toxics import NAME_PATTERN, ToxicInfo, parse_toxic

log = logging.getLogger("shakedown.netproxy")

VERSION = "shakedown-netproxy 1"


class ProxyServer:
    """The named proxies of one server process and the operations of the control API."""

    def __init__(self) -> None:
        self.proxies: dict[str, Proxy] = {}

    def create(self, body: object) -> ProxyInfo:
        name, listen, upstream, identify = _parse_proxy(body, self.proxies)
        proxy = Proxy(name, listen, upstream, identify)
        proxy.open()
        self.proxies[name] = proxy
        log.info("proxy %s: %s -> %s", name, proxy.listen, upstream)
        return proxy.info()

    def get(self, name: str) -> Proxy:
        try:
            return self.proxies[name]
        except KeyError:
            raise NotFoundError(
                f"no proxy named {name!r}{did_you_mean(name, self.proxies)}",
                checked=[f"proxies: {', '.join(self.proxies) or 'none'}"],
                fix=["create it first with POST /proxies"],
            ) from None

    def delete(self, name: str) -> None:
        self.get(name).shutdown()
        del self.proxies[name]
        log.info("proxy %s: deleted", name)

    def add_toxic(self, proxy_name: str, body: object) -> ToxicInfo:
        proxy = self.get(proxy_name)
        spec = parse_toxic(proxy_name, body, proxy.toxics)
        proxy.add_toxic(spec)
        log.info("proxy %s: + toxic %s %s", proxy_name, spec.name, spec.info())
        return spec.info()

    def remove_toxic(self, proxy_name: str, toxic_name: str) -> None:
        self.get(proxy_name).remove_toxic(toxic_name)
        log.info("proxy %s: - toxic %s", proxy_name, toxic_name)

    def reset(self) -> None:
        """Remove all toxics of all proxies; raise the first failure after trying them all."""
        failures: list[FaultError] = []
        for proxy in self.proxies.values():
            try:
                proxy.remove_all_toxics()
            except FaultError as error:
                failures.append(error)
        log.info("reset")
        if failures:
            raise failures[0]

    def shutdown(self) -> None:
        for proxy in self.proxies.values():
            proxy.shutdown()
        self.proxies.clear()

    def route(self, method: str, path: list[str], body: object) -> tuple[int, object]:
        """Answer one control API request: (HTTP status, JSON payload or None)."""
        try:
            return self._route(method, path, body)
        except FaultError as error:
            return http_status(error), {
                "error": error.what, "checked": error.checked, "fix": error.fix
            }

    def _route(self, method: str, path: list[str], body: object) -> tuple[int, object]:
        match method, path:
            case "GET", ["version"]:
                return 200, {"version": VERSION}
            case "GET", ["proxies"]:
                return 200, {name: p.info() for name, p in self.proxies.items()}
            case "POST", ["proxies"]:
                return 201, self.create(body)
            case "GET", ["proxies", name]:
                return 200, self.get(name).info()
            case "DELETE", ["proxies", name]:
                self.delete(name)
                return 204, None
            case "GET", ["proxies", name, "toxics"]:
                return 200, [t.info() for t in self.get(name).toxics.values()]
            case "POST", ["proxies", name, "toxics"]:
                return 200, self.add_toxic(name, body)
            case "GET", ["proxies", name, "toxics", toxic]:
                return 200, self.get(name).toxic(toxic).info()
            case "DELETE", ["proxies", name, "toxics", toxic]:
                self.remove_toxic(name, toxic)
                return 204, None
            case "POST", ["reset"]:
                self.reset()
                return 204, None
        raise NotFoundError(
            f"no control API route {method} /{'/'.join(path)}",
            checked=["routes: /version, /proxies[/NAME[/toxics[/TOXIC]]], /reset"],
            fix=["see the docstring of shakedown.netproxy._server"],
        )


def _parse_proxy(
    body: object, existing: Mapping[str, Proxy]
) -> tuple[str, Endpoint, Endpoint, bool]:
    usage = ["body: {name, listen: '127.0.0.1:PORT', upstream: 'HOST:PORT', identify?: bool}"]
    required = {"name", "listen", "upstream"}
    if (not isinstance(body, Mapping) or not required <= set(body)
            or set(body) - {*required, "identify"}):
        raise BadRequestError("a proxy needs exactly name, listen and upstream (and "
                              "optionally identify)", checked=usage,
                              fix=["send those fields"])
    identify = body.get("identify", False)
    if not isinstance(identify, bool):
        raise BadRequestError(f"identify must be true or false, got {identify!r}",
                              checked=usage, fix=["send a JSON boolean"])
    name = body["name"]
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise BadRequestError(f"proxy name {name!r} is not valid",
                              checked=[f"pattern {NAME_PATTERN.pattern}"],
                              fix=["use letters, digits, _ . : -"])
    if name in existing:
        raise ConflictError(f"a proxy named {name!r} exists already",
                            checked=[f"proxies: {', '.join(existing)}"],
                            fix=["delete it first or choose another name"])
    listen = _endpoint(name, "listen", body["listen"])
    if not ipaddress.ip_address(listen.host).is_loopback:
        # Services listen on loopback only (DESIGN.md, Secrets); so does their proxy.
        raise BadRequestError(f"proxy {name!r}: listen address {listen} is not loopback",
                              checked=usage, fix=["listen on 127.0.0.1"])
    return name, listen, _endpoint(name, "upstream", body["upstream"]), identify


def _endpoint(proxy: str, field: str, value: object) -> Endpoint:
    """Parse and resolve 'host:port' once, so no connection waits on name resolution."""
    host, _, port_text = value.rpartition(":") if isinstance(value, str) else ("", "", "")
    host = host.strip("[]")
    if not host or not port_text.isdigit() or int(port_text) > 65535:
        raise BadRequestError(f"proxy {proxy!r}: {field} must be 'host:port', got {value!r}",
                              checked=[field], fix=[f"e.g. {field}: '127.0.0.1:6379'"])
    try:
        family, _, _, _, address = socket.getaddrinfo(
            host, int(port_text), type=socket.SOCK_STREAM
        )[0]
    except socket.gaierror as error:
        raise BadRequestError(f"proxy {proxy!r}: {field} host {host!r} does not resolve: {error}",
                              checked=[f"getaddrinfo({host!r})"], fix=["use an IP address"]
                              ) from None
    return Endpoint(str(address[0]), int(port_text), family, address)


async def serve(host: str, port: int) -> int:
    """Run the control API and the proxies until SIGTERM/SIGINT; return the exit status."""
    loop = asyncio.get_running_loop()
    server = ProxyServer()
    http = HttpServer(server.route)
    try:
        await http.start(host, port)
    except OSError as error:
        print(f"netproxy: cannot listen on {host}:{port}: {error.strerror}", file=sys.stderr)
        return 2
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    log.info("control API on %s:%d", host, port)
    await stop.wait()
    log.info("stopping: closing every proxy and connection")
    server.shutdown()
    await http.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m shakedown.netproxy", description="fault-injecting TCP proxy server"
    )
    parser.add_argument("--control-port", type=int, required=True)
    parser.add_argument("--control-host", default="127.0.0.1")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr,
        format="%(asctime)s netproxy %(levelname)s %(message)s",
    )
    _raise_fd_limit()
    return asyncio.run(serve(args.control_host, args.control_port))


def _raise_fd_limit() -> None:
    # Each connection costs 6 descriptors (2 sockets, 2 pipes): 1024 would cap it near 170.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
