"""Where the other units of the cluster are.

``[cluster.addresses] <unit> = <host>[:<port>]``; without an entry a unit is
``<unit>.local`` on ``[ui] port``. Several units may share one machine, each on
its own port (``worker1 = 127.0.0.1:5001``).
"""

from __future__ import annotations

from reactorkit.core.config import Config, get_config


def unit_address(unit: str, config: Config | None = None) -> tuple[str, int]:
    """``(host, port)`` of ``unit``'s HTTP API."""
    config = config or get_config()
    default_port = config.getint("ui", "port", fallback=4999)
    raw = config.get("cluster.addresses", unit, fallback=None)
    if not raw:
        if unit == config.get("cluster.topology", "leader_hostname", fallback=None):
            raw = config.get("cluster.topology", "leader_address", fallback=f"{unit}.local")
        else:
            raw = f"{unit}.local"
    host, _, port = raw.rpartition(":") if raw.count(":") == 1 else (raw, "", "")
    return host, int(port) if port else default_port


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
