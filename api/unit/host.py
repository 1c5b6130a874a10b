"""The unit's host: free disk space, memory and IPv4 address (the web UI shows them on its pages).

* ``GET /unit_api/system/disk_space`` → ``{"available_bytes", "total_bytes"}`` of the
  filesystem holding ``$DOT_PIOREACTOR`` (the unit's data);
* ``GET /unit_api/system/memory`` → ``{"available_bytes", "total_bytes"}`` (psutil's
  ``virtual_memory``: available is what a new process could use without swapping);
* ``GET /unit_api/system/ipv4`` → ``{"ipv4_address"}``: the address this unit's outgoing
  traffic uses (a UDP socket "connected" to a public address, no packet sent), else
  the hostname's, else ``null``.
"""

from __future__ import annotations

import shutil
import socket
from typing import Any

import falcon

from reactorkit.api.openapi.schemas.common import INT, STR, nullable, obj, op
from reactorkit.core.paths import dot_pioreactor

SPACE = obj(("available_bytes", "total_bytes"), available_bytes=INT, total_bytes=INT)
PROBE_ADDRESS = ("192.0.2.1", 9)  # TEST-NET-1 (RFC 5737): routable in form, never answered


def disk_space() -> dict[str, int]:
    """Free and total bytes of the filesystem holding ``$DOT_PIOREACTOR`` (or its nearest existing parent)."""
    path = dot_pioreactor()
    while not path.exists() and path != path.parent:
        path = path.parent
    usage = shutil.disk_usage(path)
    return {"available_bytes": usage.free, "total_bytes": usage.total}


def memory() -> dict[str, int]:
    """Available and total bytes of RAM (psutil)."""
    import psutil

    stats = psutil.virtual_memory()
    return {"available_bytes": int(stats.available), "total_bytes": int(stats.total)}


def ipv4_address() -> str | None:
    """This host's IPv4 address on its default route, else its hostname's, else None."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(PROBE_ADDRESS)  # UDP: chooses the outgoing interface, sends nothing
            address = probe.getsockname()[0]
            if address and address != "0.0.0.0":
                return address
    except OSError:
        pass
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return None


class _HostResource:
    def __init__(self, *_: Any) -> None:
        pass


class DiskSpace(_HostResource):
    """``GET /unit_api/system/disk_space``."""

    openapi = {"GET": op("Free and total bytes of the disk holding the unit's data.", ok=SPACE)}

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = disk_space()
        resp.cache_control = ["max-age=10"]


class Memory(_HostResource):
    """``GET /unit_api/system/memory``."""

    openapi = {"GET": op("Available and total bytes of memory.", ok=SPACE)}

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = memory()
        resp.cache_control = ["max-age=10"]


class Ipv4(_HostResource):
    """``GET /unit_api/system/ipv4``."""

    openapi = {"GET": op("This unit's IPv4 address (null when it has none).",
                         ok=obj(("ipv4_address",), ipv4_address=nullable(STR)))}

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"ipv4_address": ipv4_address()}


ROUTES = {
    "/unit_api/system/disk_space": DiskSpace,
    "/unit_api/system/memory": Memory,
    "/unit_api/system/ipv4": Ipv4,
}


def mount(app: Any) -> None:
    """Add the host routes to ``app`` (every unit)."""
    for path, resource in ROUTES.items():
        app.add_route(path, resource())
