"""shakedown.netproxy (layer L1): a fault-injecting TCP proxy, like Toxiproxy in Python.

A server process (``python -m shakedown.netproxy --control-port P``, or
``spawn_proxy_server``) serves named proxies listen → upstream and is driven over an HTTP/JSON
control API, from Python with ``ProxyControl``. Toxics (latency, bandwidth, timeout,
reset_peer, slicer, limit_data, down) act per direction, stack, and take effect on open
connections when added or removed; a proxy created with ``identify`` tells each connection's
source (the connecting process's ``SHAKEDOWN_SOURCE``) so a toxic with ``sources`` acts on
those connections only. Knows nothing of services or topologies.
"""

from __future__ import annotations

from ._client import ProxyControl
from ._launch import server_command, spawn_proxy_server
from ._proxy import ProxyInfo
from ._source import SOURCE_VARIABLE
from ._toxics import TOXIC_TYPES, ToxicInfo

__all__ = [
    "SOURCE_VARIABLE",
    "TOXIC_TYPES",
    "ProxyControl",
    "ProxyInfo",
    "ToxicInfo",
    "server_command",
    "spawn_proxy_server",
]
