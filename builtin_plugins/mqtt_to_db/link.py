"""The ingestion job's own MQTT connection over gmqtt (its ``$state``, last will, logs, commands).

:class:`GmqttLink` is what :meth:`MqttToDb.connect_mqtt <reactorkit.builtin_plugins.mqtt_to_db.job.MqttToDb>`
returns instead of the framework's paho client: the process already runs gmqtt
on an asyncio loop for receiving, and without paho it leaves paho's modules
(and the ``urllib.request``/``http.client``/``email`` chain paho imports) out of
its memory (~3 MB of the ingestion's idle RSS without a launcher, see docs/benchmarks.md).

It keeps the framework's contract (:meth:`~reactorkit.core.job.BackgroundJob.connect_mqtt`):
clean session, MQTT 5, the last will (``lost`` on ``$state``, QoS 2, retained) sent
with every CONNECT, ``on_connect`` on every (re)connect (subscriptions, then the
job re-announces its settings and ``$state``), reconnects every
:data:`RECONNECT_DELAY_S` without end. A message published while the broker is
away is held (QoS ≥ 1, at most :data:`MAX_HELD`; beyond, it is dropped and counted in
:attr:`GmqttLink.dropped`: the states are announced again on reconnecting and the units' outboxes send
again what was not acknowledged) and sent on the reconnect before
``on_connect`` runs (so that the re-announced current values come last); QoS 0
messages are dropped meanwhile, as paho does.

The loop runs in a thread of its own, started here; the ingestion's receiving
client runs on it too (:attr:`loop`). :meth:`loop_stop` stops it.
"""

from __future__ import annotations

import socket
import threading
from typing import Any, Callable

from reactorkit.plugin import import_asyncio

asyncio = import_asyncio()  # its connections' check of their socket does not import ssl (a broker without TLS)

RECONNECT_DELAY_S = 1
MAX_HELD = 10_000


class _Properties:
    """MQTT 5 user properties as the framework reads them (``UserProperty``: ``[(key, value), …]``)."""

    __slots__ = ("UserProperty",)

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self.UserProperty = pairs


class LinkMessage:
    """A received message: ``topic`` (str), ``payload`` (bytes), ``qos``, ``retain``, ``properties``
    (:class:`_Properties` or None)."""

    __slots__ = ("topic", "payload", "qos", "retain", "properties")

    def __init__(self, topic: str, payload: bytes, qos: int, retain: bool, properties: Any) -> None:
        self.topic, self.payload, self.qos, self.retain, self.properties = topic, payload, qos, retain, properties


class PublishInfo:
    """What :meth:`GmqttLink.publish` returns."""

    def __init__(self, link: "GmqttLink", qos: int) -> None:
        self._link = link
        self._qos = qos

    def wait_for_publish(self, timeout: float | None = None) -> bool:
        """Wait until the message was written (QoS 0) or acknowledged by the broker (QoS 1: PUBACK,
        QoS 2: PUBCOMP; with every QoS ≥ 1 message published before it). False after ``timeout`` s."""
        return self._link.wait_sent(self._qos, timeout)


class GmqttLink:
    """A gmqtt client with the subset of paho's client the job framework uses.

    Args:
        host, port: The broker.
        client_id: MQTT client id.
        will: ``(topic, payload, qos, retain)``.
        on_connect: ``on_connect(link)`` on every (re)connect, on the loop's thread.
        on_message: ``on_message(link, None, LinkMessage)`` for every message, on the loop's thread.
        username, password: Credentials (none when ``username`` is empty).
        ssl: An ``ssl.SSLContext`` or False.
        timeout: Seconds to wait for the first connection.

    Raises:
        ConnectionError: the broker did not accept the connection within ``timeout``.
    """

    def __init__(self, host: str, port: int, *, client_id: str, will: tuple[str, Any, int, bool],
                 on_connect: Callable[["GmqttLink"], Any], on_message: Callable[..., Any],
                 username: str = "", password: str | None = None, ssl: Any = False, timeout: float = 5.0) -> None:
        import gmqtt
        from gmqtt.mqtt.constants import UNLIMITED_RECONNECTS
        from gmqtt.storage import PersistentStorage

        self._gmqtt = gmqtt
        self._on_connect_cb = on_connect
        self._on_message_cb = on_message
        self._held: list[Any] = []
        #: QoS ≥ 1 messages published while the broker was away and not kept (:data:`MAX_HELD` were held)
        self.dropped = 0
        #: ``keep(topic, payload: bytes, qos, retain) -> (pairs, qos)``, when set, for every message published:
        #: MQTT 5 user properties to add (``[(key, value), …]``; the ingestion marks the log lines it
        #: stores itself) and the QoS to publish it with
        self.keep: Callable[[str, bytes, int, bool], tuple[list[tuple[str, str]], int]] | None = None
        #: reads after which the connection's ACK was sent at once (:meth:`_ack_at_once`)
        self.quick_acks = 0
        self._storage = PersistentStorage()  # QoS ≥ 1 messages until their PUBACK/PUBCOMP
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="mqtt-link", daemon=True)
        topic, payload, qos, retain = will
        client = gmqtt.Client(client_id, clean_session=True, persistent_storage=self._storage,
                              will_message=gmqtt.Message(topic, payload, qos=qos, retain=retain))
        client.set_config({"reconnect_retries": UNLIMITED_RECONNECTS, "reconnect_delay": RECONNECT_DELAY_S})
        if username:
            client.set_auth_credentials(username, password or None)
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        self.client = client
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(client.connect(host, port, keepalive=60, ssl=ssl), self.loop).result(timeout)
        except BaseException as exc:
            self.loop_stop()
            raise ConnectionError(f"cannot reach the MQTT broker at {host}:{port}: {exc or type(exc).__name__}") from exc

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def _on_loop(self) -> bool:
        return threading.current_thread() is self._thread

    # ------------------------------------------------------------ callbacks
    def _ack_at_once(self) -> None:
        """Have the connection acknowledge every TCP segment it receives at once (``TCP_QUICKACK``, set again
        after each read: Linux clears it), not after the delayed-ACK timer (~40 ms).

        The broker's SUBACK, PUBACK and PUBCOMP are packets this client does not answer; when the job publishes
        before one of them arrives, its ACK waits for that timer, and a broker with Nagle's algorithm on
        (mosquitto's default) holds its next small packet to this client until then: the PUBREC of
        ``$state`` = ``ready`` came ~41 ms late behind the PUBCOMP of ``init`` (tcpdump), and the ``$state``
        reached the subscribers as late. Uses gmqtt's connection (``_connection``, its ``_transport`` and
        ``_protocol``, as in gmqtt 0.8); without them, ``TCP_QUICKACK`` (not Linux) or a socket, nothing is done.
        """
        option = getattr(socket, "TCP_QUICKACK", None)
        connection = getattr(self.client, "_connection", None)
        transport = getattr(connection, "_transport", None)
        protocol = getattr(connection, "_protocol", None)
        sock = transport.get_extra_info("socket") if transport is not None else None
        if option is None or sock is None or protocol is None or getattr(protocol, "_rk_quick_ack", False):
            return
        received = protocol.data_received

        def data_received(data: bytes) -> None:
            received(data)
            try:
                sock.setsockopt(socket.IPPROTO_TCP, option, 1)
                self.quick_acks += 1
            except OSError:  # the connection is closing
                pass

        protocol.data_received = data_received
        protocol._rk_quick_ack = True
        try:
            sock.setsockopt(socket.IPPROTO_TCP, option, 1)
        except OSError:
            pass

    def _on_connect(self, client: Any, flags: Any, rc: Any, properties: Any) -> None:
        self._ack_at_once()
        held, self._held = self._held, []
        for message in held:
            client.publish(message)
        self._on_connect_cb(self)

    def _on_message(self, client: Any, topic: str, payload: bytes, qos: int, properties: dict[str, Any]) -> int:
        pairs = properties.get("user_property")
        message = LinkMessage(topic, payload, qos, bool(properties.get("retain")),
                              _Properties(list(pairs)) if pairs else None)
        self._on_message_cb(self, None, message)
        return 0

    # -------------------------------------------------------- paho's subset
    def publish(self, topic: str, payload: Any = None, qos: int = 0, retain: bool = False,
                properties: Any = None) -> PublishInfo:
        """Publish from any thread (in order); ``properties`` may carry ``UserProperty`` pairs."""
        pairs = list(getattr(properties, "UserProperty", None) or ()) if properties is not None else []
        if payload is None:
            data = b""
        elif isinstance(payload, (bytes, bytearray)):
            data = bytes(payload)
        else:
            data = str(payload).encode()
        keep = self.keep
        if keep is not None:
            added, qos = keep(topic, data, qos, retain)
            pairs.extend(added)
        extra = {"user_property": pairs} if pairs else {}
        message = self._gmqtt.Message(topic, data, qos=qos, retain=retain, **extra)
        if self._on_loop():
            self._publish_now(message)
        else:
            self.loop.call_soon_threadsafe(self._publish_now, message)
        return PublishInfo(self, qos)

    def _publish_now(self, message: Any) -> None:
        if self.client.is_connected:
            self.client.publish(message)
        elif message.qos > 0:
            if len(self._held) < MAX_HELD:
                self._held.append(message)
            else:
                self.dropped += 1

    def subscribe(self, topic: str, qos: int = 0) -> None:
        """Subscribe (from any thread)."""
        if self._on_loop():
            self.client.subscribe(topic, qos=qos)
        else:
            self.loop.call_soon_threadsafe(self.client.subscribe, topic, qos)

    def wait_sent(self, qos: int, timeout: float | None) -> bool:
        """Wait until what was published so far is written (and, with ``qos`` ≥ 1, acknowledged)."""
        if self._on_loop() or self.loop.is_closed():
            return False

        async def sent() -> None:
            if qos > 0:
                await self._storage.wait_empty()

        try:
            asyncio.run_coroutine_threadsafe(sent(), self.loop).result(timeout)
            return True
        except Exception:  # timed out, or the loop stopped
            return False

    def disconnect(self) -> None:
        """Disconnect cleanly (the broker discards the last will)."""
        if self.loop.is_closed() or not self.loop.is_running():
            return
        future = asyncio.run_coroutine_threadsafe(self.client.disconnect(), self.loop)
        if not self._on_loop():
            try:
                future.result(2)
            except Exception:  # the broker may be gone already
                pass

    def loop_stop(self) -> None:
        """Stop the loop (and whatever else runs on it) and its thread."""
        if not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.loop.stop)
        if self._thread.is_alive() and not self._on_loop():
            self._thread.join(5)
