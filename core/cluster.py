"""Where the other units of the cluster are.

``[cluster.addresses] <unit> = <host>[:<port>]``; without an entry a unit is
``<unit>.local`` on ``[ui] port``. Several units may share one machine, each on
its own port (``worker1 = 127.0.0.1:5001``).
"""

from __future__ import annotations

from typing import Any, Iterable

from reactorkit.core.config import Config, get_config


def unit_address(unit: str, config: Config | None = None) -> tuple[str, int]:
    """``(host, port)`` of ``unit``'s HTTP API.

    Raises:
        ValueError: its address (or ``[ui] port``) names a port that is not a number.
    """
    return unit_addresses([unit], config)[unit]


def unit_addresses(units: Iterable[str], config: Config | None = None) -> dict[str, tuple[str, int]]:
    """``{unit: (host, port)}`` of each of ``units`` (:func:`unit_address`; the settings every unit shares are
    read once, not once per unit).

    Raises:
        ValueError: the address of one of ``units`` (or ``[ui] port``) names a port that is not a number
            (the others' are not returned either: look them up one by one to keep them).
    """
    config = config or get_config()
    default_port = config.getint("ui", "port", fallback=4999)
    addresses = dict(config.items("cluster.addresses")) if config.has_section("cluster.addresses") else {}
    leader = config.get("cluster.topology", "leader_hostname", fallback=None)
    out = {}
    for unit in units:
        raw = addresses.get(unit)
        if not raw:
            if unit == leader:
                raw = config.get("cluster.topology", "leader_address", fallback=f"{unit}.local")
            else:
                raw = f"{unit}.local"
        host, _, port = raw.rpartition(":") if raw.count(":") == 1 else (raw, "", "")
        out[unit] = (host, int(port) if port else default_port)
    return out


def unit_url(unit: str, config: Config | None = None) -> str:
    """``{proto}://{host}:{port}`` of ``unit`` (``[ui] proto``, default http)."""
    config = config or get_config()
    host, port = unit_address(unit, config)
    return f"{config.get('ui', 'proto', fallback='http')}://{host}:{port}"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (for units sharing one machine)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_answering(url: str, deadline: float, failed: Any = None) -> bool:
    """Poll ``{url}/unit_api/health`` every 0.2 s until it answers 200.

    Args:
        url: A unit's base URL, e.g. ``http://127.0.0.1:4999``.
        deadline: ``time.monotonic()`` value after which to give up.
        failed: Optional ``() -> bool``: true when waiting longer is pointless (its process has exited).

    Returns:
        True once it answered; False when the deadline passed or ``failed()`` was true first.
    """
    import time

    import httpx

    while True:
        try:
            if httpx.get(f"{url}/unit_api/health", timeout=1).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or (failed is not None and failed()):
            return False
        time.sleep(0.2)
