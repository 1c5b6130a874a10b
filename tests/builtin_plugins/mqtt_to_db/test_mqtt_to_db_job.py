"""The mqtt_to_db_streaming job as a real process against a real mosquitto: storing, skipping, surviving."""

import json
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from reactorkit.core.testing import stop_process

pytestmark = pytest.mark.integration


def rows(root: Path, sql: str) -> list[tuple]:
    path = root / "storage" / "pioreactor.sqlite"
    if not path.exists():
        return []
    return _fetch(sqlite3.connect(path, timeout=15), sql)


def _fetch(conn: sqlite3.Connection, sql: str) -> list[tuple]:
    """Rows of ``sql`` on ``conn`` (closed after), none while the table is not there yet."""
    try:
        return conn.execute(sql).fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        conn.close()


def scalar(root: Path, sql: str) -> int:
    found = rows(root, sql)
    return found[0][0] if found else 0


def wait_until(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise TimeoutError("condition not met in time")


def rpm(value: float, second: int) -> str:
    return json.dumps({"measured_rpm": value, "timestamp": f"2026-01-01T00:00:{second:02d}.000000Z"})


def job_is_ready(recorder, unit_env):
    return recorder.wait_for(unit_env.topic("mqtt_to_db_streaming", "$state").replace(
        f"/{unit_env.experiment}/", "/$experiment/"), lambda p: p == b"ready", timeout=20)


def test_stores_mapped_messages_and_skips_the_rest(unit_env, mqtt_recorder, spawn_job):
    unit_env.unit = "leader"
    retained_before = unit_env.topic("stirring", "measured_rpm")
    mqtt_recorder.publish(retained_before, rpm(111, 0), retain=True)  # the state a late subscriber gets
    job = spawn_job("mqtt_to_db_streaming")
    job_is_ready(mqtt_recorder, unit_env)

    for i in range(1, 6):
        mqtt_recorder.publish(unit_env.topic("stirring", "measured_rpm"), rpm(400 + i, i))
    mqtt_recorder.publish(unit_env.topic("stirring", "measured_rpm"), b"definitely not json")
    mqtt_recorder.publish(unit_env.topic("stirring", "measured_rpm"), json.dumps({"measured_rpm": 1}))  # no timestamp
    mqtt_recorder.publish(f"{unit_env.prefix}pioreactor/w1/_testing_x/stirring/measured_rpm", rpm(999, 9))
    mqtt_recorder.publish(unit_env.topic("logs", "app", "info"), json.dumps(
        {"message": "hello", "level": "INFO", "task": "stirring", "timestamp": "2026-01-01T00:00:07Z", "source": "app"}))
    mqtt_recorder.publish(unit_env.topic("stirring", "measured_rpm"), rpm(406, 8))  # after the bad ones

    stored = wait_until(lambda: (r := rows(unit_env.root, "SELECT measured_rpm FROM stirring_rates ORDER BY timestamp"))
                        and len(r) >= 6 and r)
    assert [v for (v,) in stored] == [401, 402, 403, 404, 405, 406]
    assert rows(unit_env.root, "SELECT pioreactor_unit, experiment, level, message FROM logs WHERE task = 'stirring'") == [
        ("leader", unit_env.experiment, "INFO", "hello")]
    warnings = wait_until(lambda: rows(unit_env.root, "SELECT message FROM logs WHERE level = 'WARNING'"))
    assert "malformed" in warnings[0][0]
    assert job.poll() is None  # malformed payloads never stop the job
    mqtt_recorder.publish(retained_before, b"", retain=True)
    assert stop_process(job) == 0


# The burst is published at most BURST_AHEAD messages ahead of the slower of its two subscribers on the machine's
# mosquitto: the job (measured by the rows it has stored) and the test's recorder (QoS 2 on the whole prefix).
# Published all at once, the QoS 1 messages a subscriber has not taken yet pile up in the broker: the job's
# connection allows 65,535 in flight, but the recorder's 20, and past max_queued_messages (1000 by default)
# mosquitto drops the newest for it (a recorder held up during the burst got 1,020 of 3,000), as it would for the
# job with a smaller receive maximum. Checked every BURST_AHEAD // 2 messages, no backlog exceeds
# 1.5 × BURST_AHEAD (600) plus the 20 in flight.
BURST = 3000
BURST_AHEAD = 400


def test_throughput_burst_is_stored_completely(unit_env, mqtt_recorder, spawn_job):
    unit_env.unit = "leader"
    job = spawn_job("mqtt_to_db_streaming")
    job_is_ready(mqtt_recorder, unit_env)
    topic = unit_env.topic("stirring", "measured_rpm")

    def stored() -> int:
        return scalar(unit_env.root, "SELECT count(*) FROM stirring_rates")

    def keep_pace(i: int) -> None:
        """Before publishing message ``i``: every BURST_AHEAD // 2 messages, wait until both subscribers have
        message ``i - BURST_AHEAD`` (the job stores them in order of arrival, in batches)."""
        behind = i - BURST_AHEAD
        if behind < 0 or behind % (BURST_AHEAD // 2):
            return
        wait_until(lambda: stored() > behind, timeout=120)
        mark = f'"measured_rpm": {behind},'.encode()
        mqtt_recorder.wait_for(topic, lambda p: mark in p, timeout=120)

    client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2)
    client.max_inflight_messages_set(500)
    client.connect("127.0.0.1", 1883)
    client.loop_start()
    infos = []
    for i in range(BURST):
        keep_pace(i)
        infos.append(client.publish(topic, json.dumps({"measured_rpm": i, "timestamp": f"2026-01-01T00:{i // 6000 % 60:02d}:"
                                                                                       f"{i // 100 % 60:02d}.{i % 100:02d}0000Z"}),
                                    qos=1))
    for info in infos:
        info.wait_for_publish(10)
    client.disconnect()
    client.loop_stop()
    count = wait_until(lambda: (n := stored()) >= BURST and n, timeout=120)
    assert count == BURST
    values = rows(unit_env.root, "SELECT measured_rpm FROM stirring_rates")
    assert sorted(v for (v,) in values) == list(range(BURST))  # every message once: none lost, none twice
    assert stop_process(job) == 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """A private mosquitto (persistent sessions) on its own port, restartable."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.conf = folder / "mosquitto.conf"
        self.conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
                             f"persistence_location {folder}/\nuser root\n")
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen([shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c", str(self.conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: self._accepts(), timeout=10)

    def _accepts(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None


@pytest.fixture
def broker(tmp_path):
    if not (shutil.which("mosquitto") or Path("/usr/sbin/mosquitto").exists()):
        pytest.skip("mosquitto is not installed")
    b = Broker(tmp_path / "broker")
    b.start()
    yield b
    b.stop()


def publish_all(port: int, messages: list[tuple[str, str]]) -> None:
    client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2)
    client.connect("127.0.0.1", port)
    client.loop_start()
    for info in [client.publish(t, p, qos=1) for t, p in messages]:
        info.wait_for_publish(10)
    client.disconnect()
    client.loop_stop()


def test_survives_a_broker_restart_without_losing_messages(unit_env, spawn_job, broker):
    unit_env.unit = "leader"
    unit_env.write_config(f"[mqtt]\nbroker_address = 127.0.0.1\nbroker_port = {broker.port}\n")
    job = spawn_job("mqtt_to_db_streaming")
    topic = unit_env.topic("stirring", "measured_rpm")
    wait_until(lambda: scalar(unit_env.root, "SELECT count(*) FROM logs WHERE message LIKE 'Storing%'"))
    publish_all(broker.port, [(topic, rpm(i, i)) for i in range(20)])
    wait_until(lambda: scalar(unit_env.root, "SELECT count(*) FROM stirring_rates") >= 20)

    broker.stop()
    time.sleep(1.0)
    broker.start()
    # published while the job is still reconnecting: the broker keeps them in the job's persistent session
    publish_all(broker.port, [(topic, rpm(100 + i, 20 + i)) for i in range(20)])
    count = wait_until(lambda: (n := scalar(unit_env.root, "SELECT count(DISTINCT measured_rpm) FROM stirring_rates"))
                       >= 40 and n, timeout=40)
    assert count == 40
    assert job.poll() is None
    assert stop_process(job) == 0


def open_database_files(pid: int, root: Path) -> int:
    """How many descriptors of process ``pid`` are open on the leader database's WAL (one per connection: SQLite
    may keep a closed connection's descriptor of the database file itself while another one holds locks)."""
    path = str(root / "storage" / "pioreactor.sqlite-wal")
    count = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            count += str(fd.readlink()) == path
        except OSError:
            continue
    return count


def checkpointed(root: Path, sql: str) -> list[tuple]:
    """Rows of ``sql`` in the database file alone (``immutable``: the WAL is not read)."""
    return _fetch(sqlite3.connect(f"file:{root / 'storage' / 'pioreactor.sqlite'}?immutable=1", uri=True), sql)


def test_idle_ingestion_closes_its_connections_and_opens_them_again_for_new_rows(unit_env, mqtt_recorder, spawn_job):
    unit_env.unit = "leader"
    job = spawn_job("mqtt_to_db_streaming")
    job_is_ready(mqtt_recorder, unit_env)
    sql = "SELECT measured_rpm FROM stirring_rates ORDER BY timestamp"

    mqtt_recorder.publish(unit_env.topic("stirring", "measured_rpm"), rpm(401, 1))
    assert wait_until(lambda: checkpointed(unit_env.root, sql)) == [(401,)]  # moved into the database file
    # nothing more to write or move: the writer and the checkpointer close their connections
    assert wait_until(lambda: open_database_files(job.pid, unit_env.root) == 0)

    for i in (2, 3):
        mqtt_recorder.publish(unit_env.topic("stirring", "measured_rpm"), rpm(400 + i, i))
        assert wait_until(lambda: len(checkpointed(unit_env.root, sql)) == i and checkpointed(unit_env.root, sql)) == [
            (400 + k,) for k in range(1, i + 1)]  # opened again for the new rows
        assert wait_until(lambda: open_database_files(job.pid, unit_env.root) == 0)
    assert job.poll() is None
    assert stop_process(job) == 0


# ------------------------------------------------------- the job's own connection (gmqtt, no paho client)
PAHO_PROBE = """
import sys
from reactorkit.builtin_plugins.mqtt_to_db.job import MqttToDb
from reactorkit.core.config import load_config, set_config
config = load_config()
set_config(config)
job = MqttToDb(unit="leader", config=config)
job._post_init()
print(" ".join(sorted(m for m in sys.modules if m in ("paho.mqtt.client", "urllib.request", "http.client"))) or "-",
      flush=True)
job.clean_up()
"""


def state_topic(unit_env) -> str:
    return f"{unit_env.prefix}pioreactor/leader/$experiment/mqtt_to_db_streaming/$state"


def test_the_ingestion_process_runs_without_pahos_client(unit_env, mqtt_recorder):
    unit_env.unit = "leader"
    since = time.monotonic()
    out = subprocess.run([sys.executable, "-c", PAHO_PROBE], env=unit_env.env(), capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr.decode()[-2000:]
    assert out.stdout.decode().split() == ["-"]  # its state went out over gmqtt
    mqtt_recorder.wait_for(state_topic(unit_env), lambda p: p == b"ready", since=since)
    mqtt_recorder.wait_for(state_topic(unit_env), lambda p: p == b"disconnected", since=since)


# the job made in a process with its own registry and the process's configuration (no config given)
GIVEN_REGISTRY = """
from reactorkit.builtin_plugins.mqtt_to_db.job import MqttToDb
from reactorkit.core.config import load_config, set_config
from reactorkit.plugin import installed_storage
set_config(load_config())
job = MqttToDb(unit="leader", registry=installed_storage())
print(job.state, len(job.router.subscriptions) > 0, flush=True)
job.clean_up()
"""


def test_a_job_given_its_registry_without_a_config_uses_the_processs_configuration(unit_env, mqtt_recorder):
    unit_env.unit = "leader"
    since = time.monotonic()
    out = subprocess.run([sys.executable, "-c", GIVEN_REGISTRY], env=unit_env.env(), capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr.decode()[-2000:]
    assert out.stdout.decode().split() == ["ready", "True"]
    mqtt_recorder.wait_for(state_topic(unit_env), lambda p: p == b"ready", since=since)


def test_its_own_log_lines_are_stored_once_and_published_live(unit_env, mqtt_recorder, spawn_job):
    unit_env.unit = "leader"
    job = spawn_job("mqtt_to_db_streaming")
    job_is_ready(mqtt_recorder, unit_env)
    wait_until(lambda: scalar(unit_env.root, "SELECT count(*) FROM logs WHERE message LIKE 'Storing%'"))
    # published after the log line's row was committed: once this reading is stored, a copy of the line that
    # came back through the broker (sent before it) would be stored too
    mqtt_recorder.publish(unit_env.topic("stirring", "measured_rpm"), rpm(401, 1))
    wait_until(lambda: scalar(unit_env.root, "SELECT count(*) FROM stirring_rates"))
    assert scalar(unit_env.root, "SELECT count(*) FROM logs WHERE message LIKE 'Storing%'") == 1
    live = mqtt_recorder.json_values(f"{unit_env.prefix}pioreactor/leader/$experiment/logs/app/info")
    assert any(m["message"].startswith("Storing") and m["task"] == "mqtt_to_db_streaming" for m in live)
    assert stop_process(job) == 0
    # logged after its writer ended: stored by the stopping job itself, once
    assert scalar(unit_env.root, "SELECT count(*) FROM logs WHERE message = 'Disconnected.' "
                                 "AND task = 'mqtt_to_db_streaming'") == 1


def test_its_own_log_lines_still_queued_when_it_stops_are_stored(unit_env, mqtt_recorder, spawn_job):
    """Published live marked as stored, they are with neither the broker nor an outbox: the stopping job
    stores them itself once its writer has ended (its writer here writes only when it stops)."""
    unit_env.unit = "leader"
    job = spawn_job("mqtt_to_db_streaming", "--flush-interval-s", "3600", "--batch-size", "100000")
    job_is_ready(mqtt_recorder, unit_env)
    assert stop_process(job) == 0
    stored = [m for (m,) in rows(unit_env.root, "SELECT message FROM logs WHERE task = 'mqtt_to_db_streaming' "
                                                "ORDER BY timestamp, rowid")]
    assert [m.split(" ", 1)[0] for m in stored] == ["Ready", "Storing", "Disconnected."]


class OrderedSubscriber:
    """A QoS 1 subscriber that keeps ``(topic, payload, qos)`` of every message in the order the broker sent them
    (a QoS 2 subscription would hand a QoS 2 message over only on its PUBREL, after later QoS 1 ones)."""

    def __init__(self, pattern: str) -> None:
        self.messages: list[tuple[str, bytes, int]] = []
        self._cond = threading.Condition()
        subscribed = threading.Event()
        self.client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
        self.client.on_connect = lambda c, *_: c.subscribe(pattern, qos=1)
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", 1883)
        self.client.loop_start()
        assert subscribed.wait(60)

    def _on_message(self, client, userdata, message) -> None:
        with self._cond:
            self.messages.append((message.topic, message.payload, message.qos))
            self._cond.notify_all()

    def wait_for(self, predicate, timeout: float = 30.0) -> None:
        with self._cond:
            assert self._cond.wait_for(lambda: any(predicate(*m) for m in self.messages), timeout)

    def seen(self) -> list[tuple[str, bytes, int]]:
        with self._cond:
            return list(self.messages)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_its_state_reaches_subscribers_before_its_log_lines_which_go_out_with_qos_1(unit_env, spawn_job):
    """No log line of its own goes out just before its ``$state`` = ``ready``, nor overtakes it at the broker,
    and its log lines go out with QoS 1: with a broker that has Nagle's algorithm on (mosquitto's default), a
    message a subscriber does not answer (QoS 0), or one sent just before the ``$state``, made the
    ``$state`` wait for a delayed ACK (~40 ms; see ``MqttToDb._keep_own``)."""
    unit_env.unit = "leader"
    root = f"{unit_env.prefix}pioreactor/leader/$experiment"
    subscriber = OrderedSubscriber(f"{root}/#")
    try:
        job = spawn_job("mqtt_to_db_streaming")
        own_line = lambda t, p, q: t.startswith(f"{root}/logs/") and json.loads(p)["task"] == "mqtt_to_db_streaming"
        subscriber.wait_for(lambda t, p, q: own_line(t, p, q) and json.loads(p)["message"].startswith("Storing"))
        seen = subscriber.seen()
        states = [i for i, (t, p, _) in enumerate(seen) if t == f"{root}/mqtt_to_db_streaming/$state"]
        ready = [i for i in states if seen[i][1] == b"ready"]
        lines = [(i, q, json.loads(p)["message"].split(" ", 1)[0]) for i, (t, p, q) in enumerate(seen)
                 if own_line(t, p, q)]
        assert [seen[i][1] for i in states] == [b"init", b"ready"]
        assert [word for _, _, word in lines] == ["Ready", "Storing"]
        assert all(i > ready[0] for i, _, _ in lines)  # after its ready, in the broker's order
        assert {q for _, q, _ in lines} == {1}
        assert stop_process(job) == 0
    finally:
        subscriber.close()


def test_a_line_an_earlier_start_stored_is_not_stored_again(unit_env, mqtt_recorder, spawn_job):
    """A line of its own that an earlier process of the job published (QoS 1, marked as stored) just as it
    stopped stays in the receiving client's persistent session: the next start skips it. A value that is
    not one of its client ids is stored."""
    unit_env.unit = "leader"
    job = spawn_job("mqtt_to_db_streaming")
    job_is_ready(mqtt_recorder, unit_env)
    topic = f"{unit_env.prefix}pioreactor/leader/$experiment/logs/app/info"
    client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    client.connect("127.0.0.1", 1883)
    client.loop_start()
    try:
        for i, value in enumerate(("mqtt_to_db_streaming-leader-$experiment-1", "mqtt_to_db_streaming-leader-$experiment-x")):
            props = paho.Properties(paho.PacketTypes.PUBLISH)
            props.UserProperty = [("rk-stored", value)]
            line = {"message": f"line {i}", "level": "INFO", "task": "mqtt_to_db_streaming",
                    "timestamp": f"2026-01-01T00:00:0{i}Z", "source": "app"}
            client.publish(topic, json.dumps(line), qos=1, properties=props).wait_for_publish(10)
        wait_until(lambda: scalar(unit_env.root, "SELECT count(*) FROM logs WHERE message = 'line 1'"))
        assert scalar(unit_env.root, "SELECT count(*) FROM logs WHERE message = 'line 0'") == 0
    finally:
        client.disconnect()
        client.loop_stop()
    assert stop_process(job) == 0


def test_others_cannot_make_it_skip_real_data_with_its_stored_marker(unit_env, mqtt_recorder, spawn_job):
    """Only this process's own log lines carrying its own marker are skipped; a unit's readings and log lines
    are stored whatever user properties they carry (the marker copied from a live line, or made up)."""
    unit_env.unit = "leader"
    job = spawn_job("mqtt_to_db_streaming")
    job_is_ready(mqtt_recorder, unit_env)
    own_logs = f"{unit_env.prefix}pioreactor/leader/$experiment/logs/#"
    marks: list[tuple[str, str]] = []
    subscribed = threading.Event()
    client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    client.on_connect = lambda c, *_: c.subscribe(own_logs, qos=1)
    client.on_subscribe = lambda *_: subscribed.set()
    client.on_message = lambda c, u, m: marks.extend(
        p for p in (getattr(m.properties, "UserProperty", None) or []) if p[0] == "rk-stored")
    client.connect("127.0.0.1", 1883)
    client.loop_start()
    try:
        assert subscribed.wait(60)
        # an unknown setting: the job logs a warning, published live with its marker
        mqtt_recorder.publish(f"{unit_env.prefix}pioreactor/leader/$experiment/mqtt_to_db_streaming/nothing/set", "1")
        copied = wait_until(lambda: marks and marks[0])
        made_up = ("rk-stored", "1")

        def publish(topic: str, payload: str, mark: tuple[str, str]) -> None:
            props = paho.Properties(paho.PacketTypes.PUBLISH)
            props.UserProperty = [mark]
            client.publish(topic, payload, qos=1, properties=props).wait_for_publish(10)

        worker = unit_env.topic("logs", "app", "info").replace("/leader/", "/worker1/")
        for i, mark in enumerate((copied, made_up)):
            line = {"message": f"spoofed {i}", "level": "INFO", "task": "stirring",
                    "timestamp": f"2026-01-01T00:00:0{i}Z", "source": "app"}
            publish(worker, json.dumps(line), mark)
            publish(f"{unit_env.prefix}pioreactor/leader/$experiment/logs/app/info",
                    json.dumps({**line, "message": f"leader {i}"}), mark)
            publish(unit_env.topic("stirring", "measured_rpm"), rpm(500 + i, i), mark)
        wait_until(lambda: scalar(unit_env.root, "SELECT count(*) FROM stirring_rates") == 2)
        wait_until(lambda: scalar(unit_env.root, "SELECT count(*) FROM logs WHERE message LIKE 'spoofed %'") == 2)
        # on the job's own log topic a made-up value is stored too (the copied one passes for the job's own line)
        wait_until(lambda: scalar(unit_env.root, "SELECT count(*) FROM logs WHERE message = 'leader 1'") == 1)
        assert scalar(unit_env.root, "SELECT count(*) FROM logs WHERE message LIKE '%is not a settable setting%'") == 1
    finally:
        client.disconnect()
        client.loop_stop()
    assert stop_process(job) == 0


def test_its_last_will_and_states_go_out_on_its_own_connection(unit_env, mqtt_recorder, spawn_job):
    unit_env.unit = "leader"
    first = spawn_job("mqtt_to_db_streaming")
    job_is_ready(mqtt_recorder, unit_env)
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    mqtt_recorder.wait_for(state_topic(unit_env), lambda p: p == b"lost", timeout=30)  # the broker's last will
    since = time.monotonic()
    second = spawn_job("mqtt_to_db_streaming")
    mqtt_recorder.wait_for(state_topic(unit_env), lambda p: p == b"ready", since=since)
    since = time.monotonic()
    mqtt_recorder.publish(state_topic(unit_env) + "/set", "disconnected")
    mqtt_recorder.wait_for(state_topic(unit_env), lambda p: p == b"disconnected", since=since)
    assert second.wait(30) == 0


def test_its_log_lines_of_a_broker_outage_are_stored_and_it_obeys_commands_after(unit_env, spawn_job, broker):
    unit_env.unit = "leader"
    unit_env.write_config(f"[mqtt]\nbroker_address = 127.0.0.1\nbroker_port = {broker.port}\n")
    job = spawn_job("mqtt_to_db_streaming")
    wait_until(lambda: scalar(unit_env.root, "SELECT count(*) FROM logs WHERE message LIKE 'Storing%'"))
    broker.stop()
    broker.start()
    # logged while the broker was away (the job's own line: stored without the broker)
    wait_until(lambda: scalar(unit_env.root, "SELECT count(*) FROM logs WHERE message LIKE 'lost the broker%'"),
               timeout=40)
    # subscribed again on the new broker: a stop command there is obeyed
    client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    topic = f"{unit_env.prefix}pioreactor/leader/$experiment/mqtt_to_db_streaming/$state"
    try:
        def stopped_on_command() -> bool:  # sent again until its connection is back and subscribed
            client.publish(topic + "/set", "disconnected", qos=1).wait_for_publish(5)
            return job.poll() is not None

        wait_until(stopped_on_command, timeout=40)
    finally:
        client.disconnect()
        client.loop_stop()
    assert job.wait(30) == 0


def test_after_a_broker_restart_it_announces_its_state_again_and_its_last_will_still_holds(unit_env, spawn_job, broker):
    unit_env.unit = "leader"
    unit_env.write_config(f"[mqtt]\nbroker_address = 127.0.0.1\nbroker_port = {broker.port}\n")
    topic = f"{unit_env.prefix}pioreactor/leader/$experiment/mqtt_to_db_streaming/$state"
    states: list[tuple[bytes, bool]] = []
    client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    client.on_connect = lambda c, *_: c.subscribe(topic, qos=2)
    client.on_message = lambda c, u, m: states.append((m.payload, bool(m.retain)))
    client.reconnect_delay_set(1, 1)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        job = spawn_job("mqtt_to_db_streaming")
        wait_until(lambda: (b"ready", False) in states)
        broker.stop()
        seen = len(states)
        # a broker that kept nothing: a $state there (retained or live) is the job's announcement on reconnecting
        broker.conf.write_text(broker.conf.read_text().replace("persistence true", "persistence false"))
        broker.start()
        wait_until(lambda: any(p == b"ready" for p, _ in states[seen:]), timeout=40)
        job.send_signal(signal.SIGKILL)
        job.wait(10)
        wait_until(lambda: (b"lost", False) in states[seen:], timeout=40)  # the will, sent with the new CONNECT
    finally:
        client.disconnect()
        client.loop_stop()


# ------------------------------------------------------------------------------ its start
START_PROBE = """
import sys, threading
from reactorkit.builtin_plugins.mqtt_to_db import job as jobs
from reactorkit.core.config import load_config, set_config
config = load_config()
set_config(config)
events = []
trimmed = threading.Event()

def recording_trim():
    events.append("heap trimmed while " + Probe.instance.state)
    trimmed.set()

jobs.release_free_heap = recording_trim

class Probe(jobs.MqttToDb):
    instance = None

    def connect_mqtt(self, **kwargs):
        Probe.instance = self
        # the writer migrates the database while the base class connects, not after
        events.append(f"migrated while connecting: {self._migrated.wait(10)}")
        return super().connect_mqtt(**kwargs)

job = Probe(unit="leader", config=config)
trimmed.wait(10)
print(" | ".join(events), flush=True)
job.clean_up()
"""


def test_it_migrates_while_it_connects_and_gives_the_heap_back_once_ready(unit_env, mqtt_recorder):
    unit_env.unit = "leader"
    out = subprocess.run([sys.executable, "-c", START_PROBE], env=unit_env.env(), capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr.decode()[-2000:]
    # ctypes' import for the heap's trim (~2 ms) comes after ready, not during the start
    assert out.stdout.decode().strip() == "migrated while connecting: True | heap trimmed while ready"
    assert scalar(unit_env.root, "SELECT count(*) FROM schema_migrations WHERE component = 'core'") == 1


NO_BROKER_PROBE = """
import threading
from reactorkit.builtin_plugins.mqtt_to_db.job import MqttToDb
from reactorkit.core.config import load_config, set_config
config = load_config()
set_config(config)
try:
    MqttToDb(unit="leader", config=config)
except ConnectionError:
    print("refused", flush=True)
writers = [t for t in threading.enumerate() if t.name == "mqtt_to_db-writer"]
for t in writers:
    t.join(10)
print("writers left:", sum(t.is_alive() for t in writers), flush=True)
"""


def test_a_start_without_a_broker_fails_and_leaves_no_writer_running(unit_env):
    unit_env.unit = "leader"
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    unit_env.write_config(f"[mqtt]\nbroker_address = 127.0.0.1\nbroker_port = {port}\n")
    out = subprocess.run([sys.executable, "-c", NO_BROKER_PROBE], env=unit_env.env(), capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr.decode()[-2000:]
    assert out.stdout.decode().split("\n")[:2] == ["refused", "writers left: 0"]
    # the migration it started before connecting was done all the same
    assert scalar(unit_env.root, "SELECT count(*) FROM schema_migrations WHERE component = 'core'") == 1


# a job whose way to ready fails after its constructor returned: before ready, or once ready
FAILED_START_PROBE = """
import os, sys, threading
from pathlib import Path
from reactorkit.builtin_plugins.mqtt_to_db.job import MqttToDb
from reactorkit.core.config import load_config, set_config
config = load_config()
set_config(config)

class FailsBeforeReady(MqttToDb):
    def _post_init(self):
        raise RuntimeError("refused before ready")

class FailsOnceReady(MqttToDb):
    def _post_init(self):
        super()._post_init()
        raise RuntimeError("refused once ready")

def wal_descriptors(job):
    wal = str(job.db.path) + "-wal"
    return sum(os.path.realpath(f"/proc/self/fd/{fd}") == wal for fd in os.listdir("/proc/self/fd"))

for cls in (FailsBeforeReady, FailsOnceReady):
    made = []
    original_init = cls.__init__
    def keep(self, *a, _init=original_init, **k):
        made.append(self)
        _init(self, *a, **k)
    cls.__init__ = keep
    try:
        cls(unit="leader", config=config)
    except RuntimeError as exc:
        print(exc, end=": ")
    job = made[0]
    threads = [t for t in threading.enumerate() if t.name.startswith("mqtt_to_db-")]
    for t in threads:
        t.join(20)
    print("threads left", sum(t.is_alive() for t in threads), "| database descriptors", wal_descriptors(job),
          "|", job.state, flush=True)
"""


def test_a_start_that_fails_on_its_way_to_ready_ends_the_writer_and_closes_its_database(unit_env, mqtt_recorder):
    unit_env.unit = "leader"
    out = subprocess.run([sys.executable, "-c", FAILED_START_PROBE], env=unit_env.env(), capture_output=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr.decode()[-2000:]
    assert out.stdout.decode().splitlines() == [
        "refused before ready: threads left 0 | database descriptors 0 | disconnected",
        "refused once ready: threads left 0 | database descriptors 0 | disconnected",
    ]
