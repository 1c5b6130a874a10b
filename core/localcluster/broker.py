"""The MQTT broker of a leader: mosquitto with a TCP listener and MQTT over WebSocket.

The web UI reads job state over MQTT-over-WebSocket (``ws://<leader>:9001/mqtt``;
mosquitto accepts any path, ``/mqtt`` included), so a leader's broker listens on
both. :func:`mosquitto_config` is the one place its configuration is written:
a real leader uses the standard ports (``pio cluster broker-config`` prints it),
``pio cluster up`` and ``pio demo`` run their own mosquitto on free ports with the
file under the cluster root, supervised and stopped with the cluster.
"""

from __future__ import annotations

import shutil
import socket
import time
from pathlib import Path

MQTT_PORT = 1883
WEBSOCKET_PORT = 9001
WEBSOCKET_PATH = "/mqtt"


def mosquitto_config(*, tcp_port: int = MQTT_PORT, ws_port: int = WEBSOCKET_PORT, bind_tcp: str | None = None,
                     bind_ws: str | None = None, data_dir: Path | None = None, log_file: Path | None = None,
                     user: str | None = None, password_file: Path | None = None, acl_file: Path | None = None,
                     tls: dict[str, str] | None = None) -> str:
    """The ``mosquitto.conf`` of a leader's broker.

    Args:
        tcp_port: MQTT over TCP (jobs, mqtt_to_db, clients), 1883 on a real leader.
        ws_port: MQTT over WebSocket (the web UI), 9001 on a real leader.
        bind_tcp / bind_ws: Address to bind each listener to (None: every interface).
        data_dir: Where retained messages persist across restarts (None: in memory only).
        log_file: Where the broker logs (None: stderr).
        user: The user mosquitto runs as when started by root (it switches to ``mosquitto`` otherwise,
            which cannot write ``data_dir`` or ``log_file`` under another user's folder).
        password_file, acl_file: Credentials and access control (:mod:`reactorkit.core.auth.mqtt`); with them
            anonymous clients are refused. Without them the broker is open (a closed bench only).
        tls: ``{"certfile", "keyfile"[, "cafile"]}``: both listeners speak TLS (MQTT over TLS, WSS).

    Returns:
        The file's text.
    """
    secured = password_file is not None
    lines = ["# mosquitto.conf written by reactorkit (MQTT over TCP, and over WebSocket for the web UI)",
             "per_listener_settings false", f"allow_anonymous {'false' if secured else 'true'}",
             "max_queued_messages 10000",
             # small MQTT packets (PUBREC, PUBREL, a $state) go out at once instead of waiting behind an
             # unacknowledged segment for the peer's delayed ACK (Nagle's algorithm, on by default): measured
             # ~40 ms on a job's QoS 2 $state whose log lines share its connection (seen ready by a subscriber
             # 84-94 ms after its start from the launcher, 44-58 ms with this; README, job start)
             "set_tcp_nodelay true", ""]
    if secured:
        lines += [f"password_file {password_file}"] + ([f"acl_file {acl_file}"] if acl_file else []) + [""]
    if user:
        lines += [f"user {user}", ""]
    tls_lines = [f"{key} {value}" for key, value in (tls or {}).items() if key in ("certfile", "keyfile", "cafile")]
    lines += [f"listener {tcp_port}" + (f" {bind_tcp}" if bind_tcp else ""), "protocol mqtt", *tls_lines, ""]
    lines += [f"listener {ws_port}" + (f" {bind_ws}" if bind_ws else ""), "protocol websockets", *tls_lines, ""]
    if data_dir is not None:
        lines += ["persistence true", f"persistence_location {data_dir}/", "autosave_interval 30", ""]
    else:
        lines += ["persistence false", ""]
    if log_file is not None:
        lines += [f"log_dest file {log_file}"]
    else:
        lines += ["log_dest stderr"]
    lines += ["log_type error", "log_type warning", "log_type notice", "connection_messages false", ""]
    return "\n".join(lines)


def mosquitto_binary() -> str:
    """The ``mosquitto`` executable (PATH, or /usr/sbin where Debian puts it).

    Raises:
        FileNotFoundError: mosquitto is not installed (``apt-get install -y mosquitto``).
    """
    found = shutil.which("mosquitto") or next(
        (str(p) for p in (Path("/usr/sbin/mosquitto"), Path("/usr/local/sbin/mosquitto")) if p.exists()), None)
    if found is None:
        raise FileNotFoundError("mosquitto is not installed; install it with: apt-get install -y mosquitto")
    return found


def wait_for_port(port: int, host: str = "127.0.0.1", timeout_s: float = 15.0) -> None:
    """Block until ``host:port`` accepts a TCP connection.

    Raises:
        TimeoutError: nothing listens there within ``timeout_s``.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {host}:{port} after {timeout_s:g} s") from None
            time.sleep(0.05)
