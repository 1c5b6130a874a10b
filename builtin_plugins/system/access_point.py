"""The leader's local access point: a Wi-Fi network the leader hosts itself (no router needed).

On a Pioreactor image the access point is switched on by creating the flag
file ``/boot/firmware/local_access_point`` (the boot partition, editable from
any computer); NetworkManager then hosts the network named by ``[local_access_point]
ssid``. Here it is reported as *active* only when both hold: the flag file
(``[local_access_point] flag_file``, default ``/boot/firmware/local_access_point``)
exists and NetworkManager (``nmcli``) is installed — without NetworkManager
nothing can host the network, whatever the flag says. Its address is read from
the interface (``[local_access_point] interface``, default ``wlan0``), never
assumed.
"""

from __future__ import annotations

import shutil
import socket
from pathlib import Path
from typing import Any

DEFAULT_FLAG_FILE = "/boot/firmware/local_access_point"
DEFAULT_INTERFACE = "wlan0"
SECTION = "local_access_point"


def _ipv4(interface: str) -> str | None:
    import psutil

    for address in psutil.net_if_addrs().get(interface, ()):
        if address.family == socket.AF_INET:
            return address.address
    return None


def state(config: Any = None) -> dict[str, Any]:
    """The local access point of this unit.

    Returns:
        ``{"active": bool, "flag_file": str, "flag_present": bool, "network_manager": bool, "ssid": str | None,
        "proto": str | None, "interface": str, "address": str | None (IPv4 of the interface while active),
        "reason": str}`` — ``reason`` says in words why it is active or not.
    """
    from reactorkit.plugin import get_config

    config = config or get_config()
    flag = Path(config.get(SECTION, "flag_file", fallback="") or DEFAULT_FLAG_FILE)
    interface = config.get(SECTION, "interface", fallback="") or DEFAULT_INTERFACE
    flag_present = flag.is_file()
    network_manager = shutil.which("nmcli") is not None
    active = flag_present and network_manager
    if active:
        reason = f"{flag} exists and NetworkManager hosts the network."
    elif flag_present:
        reason = f"{flag} exists, but NetworkManager (nmcli) is not installed, so no access point can run."
    else:
        reason = f"{flag} does not exist: the local access point is off."
    return {
        "active": active,
        "flag_file": str(flag),
        "flag_present": flag_present,
        "network_manager": network_manager,
        "ssid": config.get(SECTION, "ssid", fallback=None) or None,
        "proto": config.get(SECTION, "proto", fallback=None) or None,
        "interface": interface,
        "address": _ipv4(interface) if active else None,
        "reason": reason,
    }


def is_active(config: Any = None) -> bool:
    """``state(config)["active"]``."""
    return bool(state(config)["active"])
