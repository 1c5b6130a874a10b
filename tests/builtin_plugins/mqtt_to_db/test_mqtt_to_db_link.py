"""The ingestion's own MQTT connection (GmqttLink) against a mosquitto of the test's own."""

import threading

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from reactorkit.builtin_plugins.mqtt_to_db import link as link_module
from reactorkit.builtin_plugins.mqtt_to_db.link import GmqttLink
from reactorkit.core.fault_drills import wait_until

pytestmark = pytest.mark.integration


class Listener:
    """A paho MQTT 5 subscriber to ``t/#`` on ``port``: ``(topic, payload, retain, user properties)`` received."""

    def __init__(self, port: int) -> None:
        self.messages: list[tuple[str, bytes, bool, list]] = []
        subscribed = threading.Event()
        self.client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
        self.client.on_connect = lambda c, *_: c.subscribe("t/#", qos=1)
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.on_message = lambda c, u, m: self.messages.append(
            (m.topic, m.payload, bool(m.retain), list(getattr(m.properties, "UserProperty", None) or [])))
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert subscribed.wait(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def connect(port: int, connects: list, received: list) -> GmqttLink:
    return GmqttLink("127.0.0.1", port, client_id="link-test", will=("t/state", "lost", 2, True),
                     on_connect=connects.append, on_message=lambda link, _, message: received.append(message))


def test_a_message_published_while_the_broker_is_away_goes_out_once_it_is_back(private_broker):
    connects: list = []
    link = connect(private_broker.port, connects, [])
    try:
        assert connects == [link]
        private_broker.stop()
        wait_until(lambda: not link.client.is_connected, 20, 0.05, what="the link sees the broker gone")
        link.publish("t/value", "kept", qos=1, retain=True)  # held until the broker is back
        link.publish("t/gone", "dropped", qos=0, retain=True)  # QoS 0 while away: dropped, as paho does
        private_broker.start()
        wait_until(lambda: len(connects) == 2, 30, 0.05, what="the link reconnected")
        listener = Listener(private_broker.port)
        try:
            wait_until(lambda: ("t/value", b"kept") in [(t, p) for t, p, *_ in listener.messages], 20, 0.05,
                       what="the held message")
            assert all(t != "t/gone" for t, *_ in listener.messages)
        finally:
            listener.close()
    finally:
        link.disconnect()
        link.loop_stop()


def test_what_is_held_while_the_broker_is_away_is_bounded_and_the_rest_counted(private_broker, monkeypatch):
    monkeypatch.setattr(link_module, "MAX_HELD", 2)
    connects: list = []
    link = connect(private_broker.port, connects, [])
    try:
        private_broker.stop()
        wait_until(lambda: not link.client.is_connected, 20, 0.05, what="the link sees the broker gone")
        for i in range(3):
            link.publish(f"t/held/{i}", str(i), qos=1, retain=True)
        link.wait_sent(0, 10)  # the three publications have run on the loop
        assert link.dropped == 1
        private_broker.start()
        wait_until(lambda: len(connects) == 2, 30, 0.05, what="the link reconnected")
        assert link.publish("t/after", "x", qos=1, retain=True).wait_for_publish(10)
        listener = Listener(private_broker.port)
        try:
            wait_until(lambda: "t/after" in [t for t, *_ in listener.messages], 20, 0.05, what="the retained values")
            assert sorted(t for t, *_ in listener.messages if t.startswith("t/held/")) == ["t/held/0", "t/held/1"]
        finally:
            listener.close()
    finally:
        link.disconnect()
        link.loop_stop()


def test_keep_adds_user_properties_and_messages_arrive_with_theirs(private_broker):
    received: list = []
    link = connect(private_broker.port, [], received)
    listener = Listener(private_broker.port)
    try:
        link.keep = lambda topic, payload, qos, retain: (([("rk-stored", "1")], 1) if topic == "t/kept" else ([], qos))
        link.subscribe("t/in", qos=1)
        link.publish("t/kept", b"a", qos=0)
        assert link.publish("t/plain", "b", qos=2).wait_for_publish(10)
        wait_until(lambda: len(listener.messages) >= 2, 20, 0.05, what="both messages")
        by_topic = {t: (p, props) for t, p, _, props in listener.messages}
        assert by_topic["t/kept"] == (b"a", [("rk-stored", "1")])
        assert by_topic["t/plain"] == (b"b", [])

        props = paho.Properties(paho.PacketTypes.PUBLISH)
        props.UserProperty = [("rk-stream", "s1"), ("rk-seq", "7")]
        listener.client.publish("t/in", b"c", qos=1, retain=True, properties=props).wait_for_publish(10)
        wait_until(lambda: received, 20, 0.05, what="the message on the link")
        message = received[0]
        assert (message.topic, message.payload, message.retain) == ("t/in", b"c", False)  # live, not the stored one
        assert message.properties.UserProperty == [("rk-stream", "s1"), ("rk-seq", "7")]
    finally:
        listener.close()
        link.disconnect()
        link.loop_stop()


@pytest.mark.skipif(not hasattr(__import__("socket"), "TCP_QUICKACK"), reason="TCP_QUICKACK is Linux's")
def test_it_acknowledges_what_it_receives_at_once_on_every_connection(private_broker):
    """TCP_QUICKACK is set again after every read, on the first connection and on the one after a reconnect:
    a broker with Nagle's algorithm on holds its next small packet to a client until the client has
    acknowledged the last one (otherwise ~40 ms, the delayed-ACK timer)."""
    connects: list = []
    received: list = []
    link = connect(private_broker.port, connects, received)
    sender = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    try:
        for round_ in range(2):
            subscribed_before = link.quick_acks
            link.subscribe("t/in", qos=1)
            sender.connect("127.0.0.1", private_broker.port)
            sender.loop_start()
            # retained: it reaches the link whether its subscription is in place before or after it
            sender.publish("t/in", f"m{round_}", qos=1, retain=True).wait_for_publish(10)
            wait_until(lambda: any(m.payload == f"m{round_}".encode() for m in received), 20, 0.05,
                       what="the message reached the link")
            assert link.quick_acks > subscribed_before  # set again after the reads of this connection
            sender.disconnect()
            sender.loop_stop()
            if round_ == 0:
                private_broker.stop()
                wait_until(lambda: not link.client.is_connected, 20, 0.05, what="the link sees the broker gone")
                private_broker.start()
                wait_until(lambda: len(connects) == 2, 30, 0.05, what="the link reconnected")
    finally:
        link.disconnect()
        link.loop_stop()
