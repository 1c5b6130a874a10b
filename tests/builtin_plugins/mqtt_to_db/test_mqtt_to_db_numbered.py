"""Numbered messages (a unit's outbox) against the real job: stored once, acknowledged to the unit after the commit."""

import json
import sqlite3

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from reactorkit.core.fault_drills import wait_until
from reactorkit.core.testing import stop_process

pytestmark = pytest.mark.integration


def numbered(stream, seq):
    props = Properties(PacketTypes.PUBLISH)
    props.UserProperty = [("rk-stream", stream), ("rk-seq", str(seq))]
    return props


def rows(root):
    try:
        with sqlite3.connect(root / "storage" / "pioreactor.sqlite", timeout=15) as conn:
            return conn.execute("SELECT measured_rpm FROM stirring_rates ORDER BY measured_rpm").fetchall()
    except sqlite3.OperationalError:
        return []


def test_copies_of_a_numbered_reading_are_stored_once_and_acknowledged(unit_env, mqtt_recorder, spawn_job):
    unit_env.unit = "leader"
    spawn_job("mqtt_to_db_streaming")
    mqtt_recorder.wait_for(f"{unit_env.prefix}pioreactor/leader/$experiment/mqtt_to_db_streaming/$state",
                           lambda p: p == b"ready", timeout=30)
    client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    client.connect("127.0.0.1", 1883)
    client.loop_start()
    topic = f"{unit_env.prefix}pioreactor/worker9/exp/stirring/measured_rpm"
    first = json.dumps({"measured_rpm": 400, "timestamp": "2026-01-01T00:00:01.000Z"})
    second = json.dumps({"measured_rpm": 401, "timestamp": "2026-01-01T00:00:02.000Z"})
    infos = [client.publish(topic, first, qos=1, properties=numbered("s1", 1)),
             client.publish(topic, first, qos=1, properties=numbered("s1", 1)),  # a resend
             client.publish(topic, second, qos=1, properties=numbered("s1", 2))]
    for info in infos:
        info.wait_for_publish(5)
    wait_until(lambda: rows(unit_env.root) == [(400.0,), (401.0,)], timeout=20, what="both readings stored")
    client.publish(topic, first, qos=1).wait_for_publish(5)  # the same reading without its numbers (broker restore)
    ack_topic = f"{unit_env.prefix}pioreactor/worker9/$experiment/outbox/ack"
    acks = wait_until(lambda: [json.loads(p) for p in mqtt_recorder.values(ack_topic)], timeout=20,
                      what="acknowledgements")
    acked = sorted({(a[0], n) for ack in acks if ack["stream"] == "s1" for a in ack["acks"]
                    for n in range(a[1], a[2] + 1)})
    assert acked == [(topic, 1), (topic, 2)]
    third = json.dumps({"measured_rpm": 402, "timestamp": "2026-01-01T00:00:03.000Z"})
    client.publish(topic, third, qos=1, properties=numbered("s1", 3)).wait_for_publish(5)
    wait_until(lambda: (402.0,) in rows(unit_env.root), timeout=20, what="a later reading stored")
    assert rows(unit_env.root) == [(400.0,), (401.0,), (402.0,)]
    client.disconnect()
    client.loop_stop()
