"""A unit's outbox keeps only messages on topics the leader stores, from a process's first message on: a setting
(retained, not stored) never goes into it, so it is never sent again over a newer value. Real mosquitto.

The web UI shows what the broker retains: a copy of an old ``target_rpm`` sent again by the outbox made the
Pioreactor page read the old value back about 20 s after the user changed it."""

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from reactorkit.core.outbox import INGESTION_JOB, Outbox, process_token

from test_outbox_copies import close, outbox_publisher, unit  # noqa: F401  (fixture)

pytestmark = pytest.mark.integration

STORED = ["pioreactor/+/+/od_reading/od2"]


def retained_value(topic: str) -> bytes:
    """What the broker hands a new subscriber of ``topic`` (its retained message), read by a fresh client."""
    import threading

    got: list[bytes] = []
    done = threading.Event()
    client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2)
    client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
    client.on_message = lambda c, u, m: (got.append(bytes(m.payload)), done.set())
    client.connect("127.0.0.1", 1883)
    client.loop_start()
    try:
        assert done.wait(30), f"nothing retained on {topic}"
        return got[0]
    finally:
        client.disconnect()
        client.loop_stop()


@pytest.fixture
def ingestion_ready(unit, mqtt_recorder):  # noqa: F811
    """The leader's ingestion says ``ready`` and which topics it stores (retained, as it does), never acknowledging:
    every kept message is sent again and again."""
    base = f"{unit.prefix}pioreactor/leader/$experiment/{INGESTION_JOB}"
    mqtt_recorder.publish(f"{base}/stored_topics", '["pioreactor/+/+/od_reading/od2"]', qos=1, retain=True)
    mqtt_recorder.publish(f"{base}/$state", "ready", qos=1, retain=True)
    yield
    for setting in ("stored_topics", "$state"):
        mqtt_recorder.publish(f"{base}/{setting}", b"", qos=1, retain=True)


def test_a_processs_first_message_on_an_unstored_topic_is_not_kept_nor_sent_again(unit, ingestion_ready,  # noqa: F811
                                                                                      mqtt_recorder, tmp_path):
    outbox_file = tmp_path / "outbox.sqlite"
    known = Outbox(outbox_file)  # an earlier process of the unit learnt the leader's stored topics
    known.set_stored_patterns(STORED, unit.prefix)
    known.close()
    setting, reading = unit.topic("stirring", "target_rpm"), unit.topic("od_reading", "od2")
    publisher = outbox_publisher(unit, outbox_file, resend_after_s="0.5")
    try:
        publisher.publish(setting, "500.0", qos=2, retain=True)  # the job's first message: a retained setting
        publisher.publish(reading, "0.1", qos=2)  # a stored reading: opens the outbox
        kept = {topic for _, topic, *_ in publisher.outbox.pending(process_token(), 0)}
        assert kept == {reading}
        publisher.publish(setting, "650.0", qos=2, retain=True)  # the user changes it
        # the reading (never acknowledged) was sent again at least twice: the outbox has resent what it keeps
        mqtt_recorder.wait_for(reading, lambda p: mqtt_recorder.values(reading).count(b"0.1") >= 3)
        assert mqtt_recorder.values(setting) == [b"500.0", b"650.0"]
        assert retained_value(setting) == b"650.0"
    finally:
        close(publisher)
        mqtt_recorder.publish(setting, b"", qos=1, retain=True)


def test_unstored_messages_left_in_the_outbox_are_dropped_by_the_next_process(unit, ingestion_ready,  # noqa: F811
                                                                              mqtt_recorder, tmp_path):
    outbox_file = tmp_path / "outbox.sqlite"
    setting, reading = unit.topic("stirring", "target_rpm"), unit.topic("od_reading", "od2")
    left = Outbox(outbox_file)  # a file in which an ended process left a setting (kept before the leader said)
    left.set_stored_patterns(STORED, unit.prefix)
    left.append(setting, b"500.0", qos=2, retain=True, owner="999999999:0")  # a process that ended
    left.close()
    publisher = outbox_publisher(unit, outbox_file, resend_after_s="0.5")
    try:
        publisher.publish(setting, "650.0", qos=2, retain=True)
        publisher.publish(reading, "0.1", qos=2)

        def only_the_reading_kept():
            box = Outbox(outbox_file)
            try:
                return {r[0] for r in box.conn.execute("SELECT DISTINCT topic FROM messages")} == {reading}
            finally:
                box.close()

        import time

        deadline = time.monotonic() + 60
        while not only_the_reading_kept():
            assert time.monotonic() < deadline, "the left setting is still in the outbox"
            time.sleep(0.1)
        mqtt_recorder.wait_for(reading, lambda p: mqtt_recorder.values(reading).count(b"0.1") >= 3)
        assert b"500.0" not in mqtt_recorder.values(setting)
        assert retained_value(setting) == b"650.0"
    finally:
        close(publisher)
        mqtt_recorder.publish(setting, b"", qos=1, retain=True)
