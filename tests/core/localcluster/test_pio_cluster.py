"""`pio cluster up/status/down`: a local cluster in the background under supervisord."""

import json
import os
import subprocess
import threading
import time

import httpx
import pytest

from reactorkit.core.localcluster.layout import ClusterLayout
from reactorkit.core.testing import pio_command, processes_under

pytestmark = pytest.mark.integration


def pio(*args, env):
    return subprocess.run(pio_command(*args), env=env, capture_output=True, text=True, timeout=180)


def assert_broker_speaks_websocket(layout):
    """The cluster's own mosquitto: MQTT over WebSocket at /mqtt (as the web UI connects), topics with no prefix,
    and [mqtt] in the leader's config.ini saying where it is."""
    import configparser
    import threading

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    config = configparser.ConfigParser(interpolation=None)
    config.read(layout.unit_dir(layout.leader) / "config.ini")
    assert config["mqtt"]["broker_ws_port"] == str(layout.mqtt_ws_port) and config["mqtt"]["ws_protocol"] == "ws"
    assert config["mqtt"]["broker_port"] == str(layout.mqtt_port) and config["mqtt"]["topic_prefix"] == ""
    assert config.has_section("ui.overview.charts") and config["logging"]["ui_log_level"]
    received = threading.Event()
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, transport="websockets")
    client.ws_set_options(path="/mqtt")
    client.on_connect = lambda c, *_: c.subscribe("pioreactor/+/+/ws_probe", qos=1)
    client.on_subscribe = lambda c, *_: c.publish("pioreactor/leader/exp/ws_probe", "1", qos=1)
    client.on_message = lambda *_: received.set()
    client.username_pw_set(*layout.mqtt_credentials())
    client.connect("127.0.0.1", layout.mqtt_ws_port)
    client.loop_start()
    try:
        assert received.wait(15), "no message came back over the WebSocket listener"
    finally:
        client.disconnect()
        client.loop_stop()


def mqtt_client(layout, credentials):
    """A connected paho client on the cluster's broker, or the refusal's reason code."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    outcome: dict = {}
    done = threading.Event()

    def on_connect(c, userdata, flags, reason_code, properties=None):
        outcome["rc"] = reason_code
        done.set()

    client.on_connect = on_connect
    if credentials:
        client.username_pw_set(*credentials)
    client.connect("127.0.0.1", layout.mqtt_port)
    client.loop_start()
    assert done.wait(15), "the broker did not answer the connection"
    return client, outcome["rc"]


def assert_broker_enforces_credentials_and_acls(layout):
    """Anonymous clients are refused; a worker publishes only under its own topics; the UI's read user writes
    nothing and its control user only the /set topics. A refused publish (MQTT 3.1.1) is dropped by the broker,
    so what a subscriber receives is the proof."""
    anonymous, rc = mqtt_client(layout, None)
    anonymous.loop_stop()
    assert rc != 0  # not authorised
    wrong, rc = mqtt_client(layout, ("worker1", "not-the-password"))
    wrong.loop_stop()
    assert rc != 0

    received: list[str] = []
    watcher, rc = mqtt_client(layout, layout.mqtt_credentials())  # the leader reads everything
    assert rc == 0
    subscribed = threading.Event()
    watcher.on_message = lambda c, u, m: received.append(m.topic)
    watcher.on_subscribe = lambda *_: subscribed.set()
    watcher.subscribe("pioreactor/#", qos=1)
    assert subscribed.wait(15)
    ui = json.loads((layout.unit_dir(layout.leader) / "storage" / "mqtt_ui_credentials.json").read_text())
    attempts = [
        (layout.mqtt_credentials("worker1"), "pioreactor/worker1/acl/stirring/target_rpm", True),
        (layout.mqtt_credentials("worker1"), "pioreactor/leader/acl/stirring/target_rpm/set", False),
        (layout.mqtt_credentials("worker1"), "pioreactor/$broadcast/acl/stirring/target_rpm/set", False),
        ((ui["read"]["username"], ui["read"]["password"]), "pioreactor/worker1/acl/stirring/target_rpm/set", False),
        ((ui["control"]["username"], ui["control"]["password"]), "pioreactor/worker1/acl/stirring/$state", False),
        ((ui["control"]["username"], ui["control"]["password"]), "pioreactor/worker1/acl/stirring/target_rpm/set",
         True),
    ]
    for credentials, topic, _ in attempts:
        publisher, rc = mqtt_client(layout, credentials)
        assert rc == 0, credentials[0]
        publisher.publish(topic, "1", qos=1).wait_for_publish(10)
        publisher.disconnect()
        publisher.loop_stop()
    marker, rc = mqtt_client(layout, layout.mqtt_credentials())
    marker.publish("pioreactor/leader/acl/marker", "1", qos=1).wait_for_publish(10)  # everything before it arrived
    marker.disconnect()
    marker.loop_stop()
    deadline = time.monotonic() + 15
    while "pioreactor/leader/acl/marker" not in received and time.monotonic() < deadline:
        time.sleep(0.05)
    watcher.disconnect()
    watcher.loop_stop()
    assert [t for _, t, allowed in attempts if allowed] == [t for t in received if "/acl/" in t and "marker" not in t]


def assert_every_unit_s_monitor_is_ready(layout):
    """Each unit's monitor, started by supervisord, says ``ready`` and its versions on the cluster's broker (what the
    UI's Inventory reads for the status dot and the software version)."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from reactorkit import __version__

    states: dict[str, bytes] = {}
    apps: dict[str, str] = {}
    changed = threading.Condition()

    def on_message(client, userdata, message):
        unit, setting = message.topic.split("/")[1], message.topic.split("/")[-1]
        with changed:
            if setting == "$state":
                states[unit] = message.payload
            elif setting == "versions" and message.payload:
                apps[unit] = json.loads(message.payload)["app"]
            changed.notify_all()

    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2)
    client.on_connect = lambda c, *_: c.subscribe("pioreactor/+/$experiment/monitor/#", qos=1)
    client.on_message = on_message
    client.username_pw_set(*layout.mqtt_credentials())
    client.connect("127.0.0.1", layout.mqtt_port)
    client.loop_start()
    wanted = set(layout.units)
    try:
        with changed:
            changed.wait_for(lambda: all(states.get(u) == b"ready" and u in apps for u in wanted), timeout=60)
            assert {u: states.get(u) for u in wanted} == {u: b"ready" for u in wanted}
            assert {u: apps.get(u) for u in wanted} == {u: __version__ for u in wanted}
    finally:
        client.disconnect()
        client.loop_stop()


def test_up_status_down(tmp_path):
    root = tmp_path / "state"
    env = {**os.environ, "DOT_PIOREACTOR": str(root)}  # the cluster lives under $DOT_PIOREACTOR by default
    up = pio("cluster", "up", "--workers", "1", env=env)
    try:
        assert up.returncode == 0, up.stderr
        layout = ClusterLayout.load(root / "localcluster")
        assert f"Leader API: {layout.url()}" in up.stdout
        assert f"API token:  admin, kept in {layout.admin_token_file}" in up.stdout
        assert httpx.get(f"{layout.url()}/api/workers", timeout=10).status_code == 401  # authentication is on
        workers = httpx.get(f"{layout.url()}/api/workers", timeout=10, headers=layout.headers()).json()
        assert [w["pioreactor_unit"] for w in workers] == ["worker1"]
        assert httpx.get(f"{layout.url('worker1')}/unit_api/health").json()["pioreactor_unit"] == "worker1"

        assert_broker_speaks_websocket(layout)
        assert_broker_enforces_credentials_and_acls(layout)
        status = pio("cluster", "status", env=env).stdout
        assert_every_unit_s_monitor_is_ready(layout)
        for program in ("broker", "leader-api", "leader-worker", "leader-mqtt_to_db", "leader-monitor", "worker1-api",
                        "worker1-worker", "worker1-monitor"):
            line = next(l for l in status.splitlines() if l.strip().startswith(program))
            assert "RUNNING" in line

        again = pio("cluster", "up", env=env)
        assert again.returncode != 0 and "already running" in again.stderr
    finally:
        down = pio("cluster", "down", env=env)
    assert down.returncode == 0, down.stderr
    assert "stopped" in pio("cluster", "status", env=env).stdout
    assert processes_under(root) == []


def test_two_clusters_coexist_under_their_own_roots(tmp_path):
    env = dict(os.environ)
    roots = [tmp_path / "a", tmp_path / "b"]
    try:
        for root in roots:
            result = pio("cluster", "up", "--workers", "1", "--root", str(root), env=env)
            assert result.returncode == 0, result.stderr
        layouts = [ClusterLayout.load(r) for r in roots]
        assert layouts[0].queue() != layouts[1].queue()  # one Redis, separate queues
        assert layouts[0].mqtt_port != layouts[1].mqtt_port  # each its own broker
        assert layouts[0].url() != layouts[1].url()
        for layout in layouts:
            assert httpx.get(f"{layout.url()}/unit_api/health").status_code == 200
    finally:
        for root in roots:
            pio("cluster", "down", "--root", str(root), env=env)
    for root in roots:
        assert processes_under(root) == []
