"""MQTT client and topic helpers (paho-mqtt 2.x).

Topics follow the contract: ``pioreactor/{unit}/{experiment}/{job}/{setting}``.
paho is imported by the functions that connect, not with this module: a process whose only
MQTT connection is another client (the leader's ingestion, gmqtt) never loads it.
A deployment (or a test) may put every topic under a prefix with
``$MQTT_TOPIC_PREFIX`` or ``[mqtt] topic_prefix`` (e.g. ``"test-1234/"``) so
that several clusters can share one broker without seeing each other.
"""

from __future__ import annotations

import os
import sys
import threading
import uuid
from typing import TYPE_CHECKING, Any, Callable

from reactorkit.core.config import Config, get_config

if TYPE_CHECKING:
    import paho.mqtt.client as mqtt

QOS_AT_MOST_ONCE, QOS_AT_LEAST_ONCE, QOS_EXACTLY_ONCE = 0, 1, 2


def topic_prefix(config: Config | None = None) -> str:
    """The prefix put before ``pioreactor/`` (empty by default)."""
    env = os.environ.get("MQTT_TOPIC_PREFIX")
    if env is not None:
        return env
    return (config or get_config()).get("mqtt", "topic_prefix", fallback="") or ""


def root_topic(config: Config | None = None) -> str:
    """``{prefix}pioreactor``: the root of every topic of this cluster."""
    return f"{topic_prefix(config)}pioreactor"


def job_topic(unit: str, experiment: str, job_name: str, *rest: str, config: Config | None = None) -> str:
    """``{root}/{unit}/{experiment}/{job_name}/{rest…}``."""
    return "/".join((root_topic(config), unit, experiment, job_name, *rest))


def split_topic(topic: str, config: Config | None = None) -> list[str]:
    """The segments after the root: ``[unit, experiment, job, …]``.

    Raises:
        ValueError: the topic is not under this cluster's root.
    """
    root = root_topic(config) + "/"
    if not topic.startswith(root):
        raise ValueError(f"topic {topic!r} is not under {root!r}")
    return topic[len(root):].split("/")


def import_paho() -> Any:
    """``paho.mqtt.client``, imported without what it does not use here: its ``import urllib.request`` (with
    http.client, email, tempfile, shutil, bz2 and lzma: about half of paho's import time) finds a stand-in
    (:func:`reactorkit.core.deferred_imports.defer`) that imports urllib.request at the first read of one
    of its attributes, by paho or by anyone. paho reads it only for proxy settings, and only when PySocks is
    installed (a proxy for the broker's connection), so a job process that connects directly never imports it.

    When ``ssl`` is put off too (``pio run``), paho's ``ssl`` is made a
    :class:`~reactorkit.core.deferred_imports.ExceptClauseView` of its stand-in: paho reads
    ``ssl.SSLWantReadError``/``ssl.SSLWantWriteError`` only in the ``except`` clauses of its socket reads and
    writes, which then do not import ``_ssl`` (2.4-4.7 ms) while no TLS connection can exist.
    """
    from reactorkit.core.deferred_imports import defer, except_clause_view

    if "paho.mqtt.client" not in sys.modules:
        defer("urllib.request")
    import paho.mqtt.client

    client = paho.mqtt.client
    view = except_clause_view(client.__dict__.get("ssl"))
    if view is not client.__dict__.get("ssl"):
        client.ssl = view
    return client


def create_client(
    *,
    client_id: str | None = None,
    will: tuple[str, str | bytes, int, bool] | None = None,
    on_connect: Callable[[mqtt.Client], Any] | None = None,
    on_message: Callable[[mqtt.Client, Any, mqtt.MQTTMessage], Any] | None = None,
    config: Config | None = None,
    start_loop: bool = True,
    timeout: float = 5.0,
    outbox: bool = True,
    unit: str | None = None,
) -> mqtt.Client:
    """Connect a paho client (MQTT 5) to the broker of ``[mqtt]``.

    Messages it publishes on topics the leader stores go through the unit's
    durable outbox (:mod:`reactorkit.core.outbox_client`): kept on disk until
    the leader has committed them, resent after broker, leader or network
    faults. Lost connections are retried with back-off (1 s doubling to 4 s),
    and ``on_connect`` runs again on every reconnect.

    Args:
        client_id: Defaults to a random id.
        will: ``(topic, payload, qos, retain)`` last will.
        on_connect: Called (with the client) on every (re)connect; subscribe there.
        on_message: paho ``on_message`` callback.
        start_loop: Start paho's network thread and wait until connected.
        timeout: Seconds to wait for the connection.
        outbox: Keep messages on stored topics in the unit's outbox (default True).
        unit: The unit whose outbox is used (default ``$HOSTNAME``).

    Raises:
        ConnectionError: the broker did not accept the connection in time.
    """
    mqtt = import_paho()
    from paho.mqtt.enums import CallbackAPIVersion

    from reactorkit.core.config import get_unit_name
    from reactorkit.core.outbox_client import OutboxClient

    config = config or get_config()
    client = OutboxClient(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=client_id or f"reactorkit-{uuid.uuid4().hex[:12]}",
        protocol=mqtt.MQTTv5,
    )
    if outbox:
        client.use_outbox(unit=unit or get_unit_name(), config=config)
    host, port, username, password = broker_settings(config)
    if username:
        client.username_pw_set(username, password)
    context = tls_context(config)
    if context is not None:
        client.tls_set_context(context)
    if will is not None:
        client.will_set(*will)
    connected = threading.Event()

    def _on_connect(c: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if reason_code == 0 or getattr(reason_code, "value", 1) == 0:
            _no_delay(c)
            if on_connect is not None:
                on_connect(c)
            c.outbox_on_connect()
            connected.set()

    client.on_connect = _on_connect
    if on_message is not None:
        client.on_message = on_message
    client.reconnect_delay_set(min_delay=1, max_delay=4)
    try:
        client.connect(host, port, keepalive=60, clean_start=True)
    except OSError as exc:
        raise ConnectionError(f"cannot reach the MQTT broker at {host}:{port}: {exc}") from exc
    _no_delay(client)
    if start_loop:
        client.loop_start()
        if not connected.wait(timeout):
            client.loop_stop()
            raise ConnectionError(f"the MQTT broker at {host}:{port} did not accept the connection within {timeout} s")
    return client


def broker_settings(config: Config) -> tuple[str, int, str, str | None]:
    """``(host, port, username, password)`` of the unit's broker, from ``[mqtt]``: ``broker_address``
    (default ``127.0.0.1``), ``broker_port`` (default 1883), ``username`` (``""``: anonymous) and ``password``
    (None when empty or without a username).

    Raises:
        ValueError: ``broker_port`` is not an integer.
    """
    host = config.get("mqtt", "broker_address", fallback="127.0.0.1")
    port = config.getint("mqtt", "broker_port", fallback=1883)
    username = config.get("mqtt", "username", fallback="")
    password = (config.get("mqtt", "password", fallback="") or None) if username else None
    return host, port, username, password


def tls_context(config: Config) -> Any:
    """An ``ssl.SSLContext`` for the broker when ``[mqtt] tls_ca_file`` names the CA (or self-signed
    certificate) that signed the broker's certificate; None for plain MQTT."""
    ca_file = config.get("mqtt", "tls_ca_file", fallback="").strip()
    if not ca_file:
        return None
    import ssl

    return ssl.create_default_context(cafile=ca_file)


def _no_delay(client: mqtt.Client) -> None:
    """Disable Nagle's algorithm: small publishes (a setting, a QoS 2 handshake) go out at once
    instead of waiting ~40 ms for the previous segment's acknowledgement."""
    import socket

    sock = client.socket()
    if sock is not None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, AttributeError):
            pass


def publish_messages(messages: Any, *, qos: int = QOS_AT_LEAST_ONCE, retain: bool = False,
                     config: Config | None = None, timeout: float = 10.0) -> None:
    """Publish ``(topic, payload)`` pairs on one short connection (``paho.mqtt.publish.multiple``) and
    return once the broker has taken them (PUBACK/PUBCOMP of each, in order).

    For commands (``…/set``) and announcements, which the leader does not store: they do not go
    through the unit's durable outbox. A message the leader stores is published by a client of
    :func:`create_client`, whose outbox keeps it until the leader has committed it.

    Raises:
        ConnectionError: the broker cannot be reached, refuses the connection, or has not taken
            every message within ``timeout`` seconds.
    """
    import paho.mqtt.client as mqtt
    import paho.mqtt.publish as publish

    msgs = [{"topic": topic, "payload": payload, "qos": qos, "retain": retain} for topic, payload in messages]
    if not msgs:
        return
    config = config or get_config()
    host, port, username, password = broker_settings(config)
    auth = {"username": username, "password": password} if username else None
    failure: list[BaseException] = []

    def run() -> None:
        try:
            publish.multiple(msgs, hostname=host, port=port, auth=auth, tls=tls_context(config),
                             protocol=mqtt.MQTTv5, client_id=f"reactorkit-{uuid.uuid4().hex[:12]}")
        except BaseException as exc:  # reported below, in the caller's thread
            failure.append(exc)

    # publish.multiple has no timeout of its own (it reconnects until every message is taken)
    thread = threading.Thread(target=run, name="mqtt-publish", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise ConnectionError(f"the MQTT broker at {host}:{port} did not take {len(msgs)} message(s) within {timeout} s")
    if failure:
        raise ConnectionError(f"cannot publish to the MQTT broker at {host}:{port}: {failure[0]}") from failure[0]
