"""`pio cluster up/status/down`: a local cluster in the background under supervisord."""

import os
import subprocess

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
    client.connect("127.0.0.1", layout.mqtt_ws_port)
    client.loop_start()
    try:
        assert received.wait(15), "no message came back over the WebSocket listener"
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
        workers = httpx.get(f"{layout.url()}/api/workers", timeout=10).json()
        assert [w["pioreactor_unit"] for w in workers] == ["worker1"]
        assert httpx.get(f"{layout.url('worker1')}/unit_api/health").json()["pioreactor_unit"] == "worker1"

        assert_broker_speaks_websocket(layout)
        status = pio("cluster", "status", env=env).stdout
        for program in ("broker", "leader-api", "leader-worker", "leader-mqtt_to_db", "worker1-api", "worker1-worker"):
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
