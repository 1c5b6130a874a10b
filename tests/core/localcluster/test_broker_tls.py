"""The broker configuration with credentials and TLS: a self-signed certificate (the README's example), a unit
connecting with its user over TLS, and a client without the certificate refused."""

from __future__ import annotations

import getpass
import ssl
import subprocess
import sys
import threading

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from reactorkit.core.auth.mqtt import provision_broker
from reactorkit.core.cluster import free_port
from reactorkit.core.config import Config
from reactorkit.core.localcluster.broker import mosquitto_binary, mosquitto_config, wait_for_port
from reactorkit.core.mqtt import create_client
from reactorkit.core.testing import stop_process

pytestmark = pytest.mark.integration


@pytest.fixture
def tls_broker(tmp_path):
    cert, key = tmp_path / "leader.crt", tmp_path / "leader.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    passwords, acl = provision_broker(tmp_path / "broker", ("leader", tmp_path / "leader"),
                                      [("worker1", tmp_path / "worker1")])
    port, ws_port = free_port(), free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(mosquitto_config(tcp_port=port, ws_port=ws_port, bind_tcp="127.0.0.1", bind_ws="127.0.0.1",
                                     log_file=tmp_path / "mosquitto.log", user=getpass.getuser(),
                                     password_file=passwords, acl_file=acl,
                                     tls={"certfile": str(cert), "keyfile": str(key)}))
    proc = subprocess.Popen([mosquitto_binary(), "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port)
        yield port, cert, tmp_path
    finally:
        stop_process(proc)


def unit_config(port: int, cert, root, unit: str) -> Config:
    config = Config()
    username, password = (root / unit / "storage" / "mqtt_credentials.ini").read_text().split("\n")[1:3]
    config.read_string(f"[mqtt]\nbroker_address = 127.0.0.1\nbroker_port = {port}\ntls_ca_file = {cert}\n"
                       f"{username}\n{password}\n")
    return config


def test_a_unit_talks_to_the_broker_over_tls_with_its_own_user(tls_broker):
    port, cert, root = tls_broker
    got = threading.Event()
    listener = create_client(config=unit_config(port, cert, root, "leader"), outbox=False,
                             on_connect=lambda c: c.subscribe("pioreactor/worker1/tls/#", qos=1),
                             on_message=lambda *_: got.set())
    publisher = create_client(config=unit_config(port, cert, root, "worker1"), outbox=False)
    try:
        publisher.publish("pioreactor/worker1/tls/probe", "1", qos=1).wait_for_publish(10)
        assert got.wait(15)
    finally:
        for client in (listener, publisher):
            client.disconnect()
            client.loop_stop()


def test_plain_mqtt_and_an_untrusted_certificate_are_refused(tls_broker):
    port, cert, root = tls_broker
    plain = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2)
    plain.username_pw_set("leader", "x")
    outcome: list[str] = []
    answered = threading.Event()
    plain.on_connect = lambda *a: (outcome.append("connected"), answered.set())
    plain.on_disconnect = lambda *a: (outcome.append("dropped"), answered.set())
    plain.connect("127.0.0.1", port)
    plain.loop_start()
    try:
        assert answered.wait(15) and outcome[0] == "dropped"  # the TLS listener hangs up on plain MQTT
    finally:
        plain.disconnect()
        plain.loop_stop()
    untrusted = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2)
    untrusted.tls_set_context(ssl.create_default_context())  # the system's CAs do not know the self-signed one
    with pytest.raises(ssl.SSLError):
        untrusted.connect("127.0.0.1", port)


# a job's client as `pio run` makes it: ssl put off until its first use, paho's ssl a view that serves placeholders
# for the classes of its except clauses while _ssl is not imported; the TLS context imports it first
TLS_WITH_SSL_DEFERRED = """
import sys, threading
from reactorkit.core.deferred_imports import defer
defer("ssl")
from reactorkit.core.config import Config
from reactorkit.core.mqtt import create_client
config = Config()
config.read_string(sys.stdin.read())
got = []
done = threading.Event()
def on_message(client, userdata, message):
    got.append(len(message.payload))
    if len(got) == 20:
        done.set()
client = create_client(config=config, outbox=False, on_connect=lambda c: c.subscribe("pioreactor/worker1/tls/#", qos=1),
                       on_message=on_message)
import paho.mqtt.client as paho, _ssl
print(type(paho.ssl).__name__, paho.ssl.SSLWantReadError is _ssl.SSLWantReadError, type(client.socket()).__name__)
for i in range(20):  # large enough for reads and writes that would block on the TLS socket
    client.publish(f"pioreactor/worker1/tls/{i}", b"x" * 200_000, qos=1)
print(done.wait(30), sorted(set(got)))
client.disconnect()
client.loop_stop()
"""


def run_against_tls_broker(script: str, tls_broker: tuple) -> subprocess.CompletedProcess:
    """``script`` run in a fresh interpreter, given on stdin the ``[mqtt]`` settings of ``tls_broker`` (its port,
    CA certificate and the leader's credentials)."""
    port, cert, root = tls_broker
    username, password = (root / "leader" / "storage" / "mqtt_credentials.ini").read_text().split("\n")[1:3]
    settings = f"[mqtt]\nbroker_address = 127.0.0.1\nbroker_port = {port}\ntls_ca_file = {cert}\n{username}\n{password}\n"
    return subprocess.run([sys.executable, "-c", script], input=settings, capture_output=True, text=True, timeout=60)


def test_a_client_made_with_ssl_deferred_talks_over_tls(tls_broker):
    result = run_against_tls_broker(TLS_WITH_SSL_DEFERRED, tls_broker)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.splitlines() == ["ExceptClauseView True SSLSocket", "True [200000]"]


# the ingestion's gmqtt link as `pio run` makes it: ssl put off until its first use, asyncio's check of each
# connection's socket reading a view of it; the TLS context imports ssl first, and the connection is asyncio's TLS
GMQTT_TLS_WITH_SSL_DEFERRED = """
import sys, threading
from reactorkit.core.deferred_imports import defer
defer("ssl")
from reactorkit.core.config import Config
from reactorkit.core.mqtt import broker_settings, tls_context
from reactorkit.builtin_plugins.mqtt_to_db.link import GmqttLink
import asyncio.base_events
config = Config()
config.read_string(sys.stdin.read())
print(type(asyncio.base_events.ssl).__name__, type(sys.modules["ssl"]).__name__)
host, port, username, password = broker_settings(config)
got = threading.Event()
def on_message(link, userdata, message):
    if message.payload == b"over tls":
        got.set()
link = GmqttLink(host, port, client_id="tls-link", will=("pioreactor/worker1/tls/$state", "lost", 1, False),
                 on_connect=lambda l: l.subscribe("pioreactor/worker1/tls/#", qos=1), on_message=on_message,
                 username=username, password=password, ssl=tls_context(config))
link.publish("pioreactor/worker1/tls/x", "over tls", qos=1)
transport = link.client._connection._transport
print(got.wait(30), transport.get_extra_info("sslcontext") is not None, type(sys.modules["ssl"]).__name__)
link.disconnect()
link.loop_stop()
"""


def test_the_ingestions_link_made_with_ssl_deferred_talks_over_tls(tls_broker):
    result = run_against_tls_broker(GMQTT_TLS_WITH_SSL_DEFERRED, tls_broker)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.splitlines() == ["InstanceCheckView ImportedOnUse", "True True module"]
