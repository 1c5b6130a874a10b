"""A job sees each outbox message once: the outbox's resend copies are dropped by the job framework's dispatch,
never a message without the outbox's numbering, nor a new message of a restarted publisher. Real mosquitto."""

import json
import threading

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from reactorkit.core import mqtt as mq
from reactorkit.core.config import load_config, set_config
from reactorkit.core.job import BackgroundJob
from reactorkit.core.outbox import INGESTION_JOB, SEQ_PROPERTY, STREAM_PROPERTY

pytestmark = pytest.mark.integration

ENV_KEYS = ("DOT_PIOREACTOR", "HOSTNAME", "EXPERIMENT", "MQTT_TOPIC_PREFIX", "REACTORKIT_SPEEDUP",
            "REACTORKIT_CLOCK_ORIGIN", "REDIS_URL", "HARDWARE")


class Listener(BackgroundJob):
    """A job subscribed to ``topics`` that records every message its handler is given."""

    job_name = "copy_listener"

    def __init__(self, unit, experiment, topics, **kwargs):
        self.topics = topics
        self.handled = []
        self.cond = threading.Condition()
        super().__init__(unit, experiment, **kwargs)

    def on_mqtt_connect(self, client):
        for topic in self.topics:
            client.subscribe(topic, qos=2)

    def on_message(self, message):
        with self.cond:
            self.handled.append((message.topic, bytes(message.payload)))
            self.cond.notify_all()

    def wait_for(self, payload, count=1, timeout=30.0):
        """Block until the handler was given ``payload`` ``count`` times (TimeoutError after ``timeout`` s)."""
        with self.cond:
            if not self.cond.wait_for(lambda: self.payloads().count(payload) >= count, timeout):
                raise TimeoutError(f"{payload!r} x{count}: handled {self.handled}")

    def payloads(self):
        return [p for _, p in self.handled]


@pytest.fixture
def unit(unit_env, monkeypatch):
    env = unit_env.env()
    for key in ENV_KEYS:
        monkeypatch.setenv(key, env[key])
    set_config(None)
    yield unit_env
    set_config(None)


@pytest.fixture
def listener(unit):
    job = Listener(unit.unit, unit.experiment, [unit.topic("dosing_events"), unit.topic("bioreactor", "+")])
    yield job
    job.clean_up()


def publisher_config(outbox_file, resend_after_s="30"):
    """The unit's config with its outbox in ``outbox_file`` (so the listener's own outbox stays apart)."""
    config = load_config()
    if not config.has_section("outbox"):
        config.add_section("outbox")
    config.set("outbox", "path", str(outbox_file))
    config.set("outbox", "resend_after_s", resend_after_s)
    return config


def outbox_publisher(unit, outbox_file, resend_after_s="30"):
    """A client of the unit's processes: messages on stored topics go through the outbox in ``outbox_file``."""
    return mq.create_client(config=publisher_config(outbox_file, resend_after_s), unit=unit.unit)


def close(client):
    client.disconnect()
    client.loop_stop()


def plain_publisher():
    """An MQTT 5 client without an outbox (as the UI or a Pioreactor client publishes)."""
    client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    client.connect("127.0.0.1", 1883)
    client.loop_start()
    return client


def numbered(stream, seq):
    props = Properties(PacketTypes.PUBLISH)
    props.UserProperty = [(STREAM_PROPERTY, stream), (SEQ_PROPERTY, str(seq))]
    return props


def marker():
    """Properties that make an outbox client publish a message as is (outside its outbox)."""
    props = Properties(PacketTypes.PUBLISH)
    props.UserProperty = [("test", "sentinel")]
    return props


def test_the_outbox_resend_copy_of_a_dosing_event_is_handled_once(unit, listener, mqtt_recorder, tmp_path):
    topic = unit.topic("dosing_events")
    event = json.dumps({"volume_change": 0.5, "event": "add_media", "source_of_event": "test",
                        "timestamp": "2026-01-01T00:00:00.000Z"}).encode()
    # the leader's ingestion says it is ready but never acknowledges: the outbox sends the event again and again
    ready_topic = f"{unit.prefix}pioreactor/leader/$experiment/{INGESTION_JOB}/$state"
    mqtt_recorder.publish(ready_topic, "ready", qos=1, retain=True)
    publisher = outbox_publisher(unit, tmp_path / "outbox.sqlite", resend_after_s="0.5")
    try:
        publisher.publish(topic, event, qos=2)
        # two copies reached the broker (the recorder saw them), then a message after them on the same topic
        # from the same client: once the listener has it, it has been given every copy before it
        mqtt_recorder.wait_for(topic, lambda p: mqtt_recorder.values(topic).count(event) >= 3)
        publisher.publish(topic, b"sentinel", qos=2, properties=marker())
        listener.wait_for(b"sentinel")
        assert listener.payloads().count(event) == 1, listener.handled
    finally:
        close(publisher)
        mqtt_recorder.publish(ready_topic, b"", qos=1, retain=True)


def test_messages_without_the_outbox_numbering_are_never_dropped(unit, listener):
    topic = unit.topic("dosing_events")
    client = plain_publisher()
    try:
        for _ in range(2):  # the same payload twice from the UI or a Pioreactor client: two messages
            client.publish(topic, b'{"same": 1}', qos=2).wait_for_publish(5)
        listener.wait_for(b'{"same": 1}', count=2)
        # the same number from another outbox (another stream: a unit's outbox file made anew) is another message
        client.publish(topic, b"stream a", qos=2, properties=numbered("aaaa", 1)).wait_for_publish(5)
        client.publish(topic, b"stream b", qos=2, properties=numbered("bbbb", 1)).wait_for_publish(5)
        # and so is the same number of the same stream on another topic (numbers are per topic)
        client.publish(unit.topic("bioreactor", "current_volume_ml"), b"14.5", qos=2,
                       properties=numbered("aaaa", 1)).wait_for_publish(5)
        client.publish(topic, b"end", qos=2).wait_for_publish(5)
        listener.wait_for(b"end")
        assert listener.payloads() == [b'{"same": 1}', b'{"same": 1}', b"stream a", b"stream b", b"14.5", b"end"]
    finally:
        close(client)


def test_a_restarted_publisher_or_a_new_outbox_file_is_not_taken_for_a_copy(unit, listener, tmp_path):
    topic = unit.topic("dosing_events")
    first = outbox_publisher(unit, tmp_path / "outbox.sqlite")
    first.publish(topic, b"before the restart", qos=2)
    listener.wait_for(b"before the restart")
    close(first)
    # a new process of the unit: the outbox's numbering goes on from the file
    again = outbox_publisher(unit, tmp_path / "outbox.sqlite")
    try:
        again.publish(topic, b"after the restart", qos=2)
        listener.wait_for(b"after the restart")
        assert again.outbox.last_seq(topic) == 2
    finally:
        close(again)
    # the unit's outbox file lost and made anew: its numbering starts again, under a new stream
    fresh = outbox_publisher(unit, tmp_path / "other" / "outbox.sqlite")
    try:
        fresh.publish(topic, b"a new outbox", qos=2)
        listener.wait_for(b"a new outbox")
        assert fresh.outbox.last_seq(topic) == 1 and fresh.outbox.stream != again.outbox.stream
    finally:
        close(fresh)
    assert listener.payloads() == [b"before the restart", b"after the restart", b"a new outbox"]
