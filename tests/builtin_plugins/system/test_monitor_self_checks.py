"""The monitor's self-checks: each check on fakes, then the job as a real process (and in this process) on a real
broker with the unit's own topic prefix."""

from __future__ import annotations

import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from reactorkit.builtin_plugins.system import self_checks as sc
from reactorkit.core.cluster import free_port
from reactorkit.core.fault_drills import wait_until
from reactorkit.core.clock import parse_iso


# ------------------------------------------------------------------ each check, on fakes
def test_disk_below_the_threshold_is_a_warning_with_code_3():
    low = sc.check_disk("/dot", 10, lambda path: 7)
    assert (low.ok, low.level, low.code) == (False, logging.WARNING, sc.DISK_ERROR_CODE)
    assert "7 %" in low.message and "/dot" in low.message and "min_free_disk_space_percent" in low.message
    fine = sc.check_disk("/dot", 10, lambda path: 10)
    assert (fine.ok, fine.level, fine.code) == (True, logging.DEBUG, None)
    with pytest.raises(OSError):
        sc.check_disk("/dot", 10, lambda path: None)


def test_a_web_server_that_does_not_answer_is_an_error_with_code_8():
    seen = []

    def refused(url):
        seen.append(url)
        return "ConnectionRefusedError: [Errno 111] Connection refused"

    down = sc.check_web_server("http://127.0.0.1:4999/", refused)
    assert seen == ["http://127.0.0.1:4999/unit_api/health"]
    assert (down.ok, down.level, down.code) == (False, logging.ERROR, sc.WEB_SERVER_ERROR_CODE)
    assert "Connection refused" in down.message and "pio serve" in down.message
    assert sc.check_web_server("http://127.0.0.1:4999", lambda url: None).ok


def test_an_unreachable_leader_is_a_network_error_with_code_1():
    down = sc.check_leader("leader", "http://leader.local:4999", lambda url: "TimeoutError: timed out")
    assert (down.ok, down.level, down.code) == (False, logging.ERROR, sc.NETWORK_ERROR_CODE)
    assert "leader" in down.message and "leader.local:4999/unit_api/health" in down.message
    assert sc.check_leader("leader", "http://leader.local:4999", lambda url: None).ok


def test_a_lost_broker_is_an_mqtt_error_with_code_2():
    class Client:
        connected = False

        def is_connected(self):
            return self.connected

    client = Client()
    down = sc.check_mqtt(client, "10.0.0.1:1883")
    assert (down.ok, down.level, down.code) == (False, logging.ERROR, sc.MQTT_ERROR_CODE)
    assert "10.0.0.1:1883" in down.message
    client.connected = True
    assert sc.check_mqtt(client, "10.0.0.1:1883").ok


def test_cpu_temperature_is_checked_only_with_a_thermal_zone_and_has_no_code():
    assert sc.check_cpu_temperature(None, 80) is None
    hot = sc.check_cpu_temperature(83.5, 80)
    assert (hot.ok, hot.level, hot.code) == (False, logging.WARNING, None)
    assert "83.5 °C" in hot.message
    assert sc.check_cpu_temperature(80.0, 80).ok


def test_a_heater_pcb_at_the_disable_limit_is_an_error_with_code_6():
    hot = sc.check_pcb_temperature(80.0, 80.0)
    assert (hot.ok, hot.level, hot.code) == (False, logging.ERROR, sc.PCB_TEMPERATURE_ERROR_CODE)
    assert sc.check_pcb_temperature(35.2, 80.0).ok


def test_the_pcb_limit_is_the_model_s_disable_limit_as_the_temperature_plugin_has_it(monkeypatch):
    from reactorkit.builtin_plugins.temperature.limits import heating_limits
    from reactorkit.core.config import Config

    for model in (None, ("pioreactor_20ml", "1.0"), ("pioreactor_40ml", "1.5")):
        if model is None:
            monkeypatch.delenv("MODEL_NAME", raising=False)
            monkeypatch.delenv("MODEL_VERSION", raising=False)
        else:
            monkeypatch.setenv("MODEL_NAME", model[0])
            monkeypatch.setenv("MODEL_VERSION", model[1])
        assert sc.disable_heating_c(Config()) == heating_limits(Config()).disable_c
    config = Config()
    config.read_string("[temperature_automation.config]\nmax_temp_to_disable_heating = 70\n")
    assert sc.disable_heating_c(config) == 70.0


def test_an_api_that_answers_at_the_second_try_passes_and_one_that_never_does_fails_after_three(monkeypatch):
    from types import SimpleNamespace

    from reactorkit.builtin_plugins.system.monitor import Monitor

    waits = []
    stop = SimpleNamespace(wait=lambda s: waits.append(s) or False)
    job = SimpleNamespace(_threshold=lambda key: 15.0, _stop_refreshing=stop)
    answers = iter(["ConnectionRefusedError: refused", None])
    monkeypatch.setattr(sc, "http_health", lambda url, verify=True: next(answers))
    assert Monitor.probe(job, "http://127.0.0.1:1/unit_api/health") is None  # the API came up (a unit's boot)
    assert waits == [15.0]
    monkeypatch.setattr(sc, "http_health", lambda url, verify=True: "ConnectionRefusedError: refused")
    waits.clear()
    assert Monitor.probe(job, "http://x") == "ConnectionRefusedError: refused; 3 tries, 15 s apart"
    assert waits == [15.0, 15.0]
    stop.wait = lambda s: True  # the monitor stops meanwhile: no more tries
    assert Monitor.probe(job, "http://x") == "ConnectionRefusedError: refused; 1 tries, 15 s apart"


class _Health(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self):  # noqa: N802 - http.server's name
        self.send_response(self.status if self.path == "/unit_api/health" else 404)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


@pytest.fixture
def health_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_http_health_judges_an_answer_as_the_leader_s_reachability_probe_does(health_server):
    url = f"http://127.0.0.1:{health_server.server_address[1]}/unit_api/health"
    assert sc.http_health(url) is None
    _Health.status = 503
    try:
        assert sc.http_health(url) == "HTTP 503"
    finally:
        _Health.status = 200
    assert sc.http_health(f"http://127.0.0.1:{free_port()}/unit_api/health").startswith("ConnectionRefusedError")


# ------------------------------------------------------------------ the job, a real process on a real broker
def code_topic(unit_env) -> str:
    return f"{unit_env.prefix}pioreactor/{unit_env.unit}/$experiment/monitor/flicker_led_with_error_code"


def log_topic(unit_env, level: str) -> str:
    return f"{unit_env.prefix}pioreactor/{unit_env.unit}/$experiment/logs/app/{level}"


def standalone(unit_env, extra: str = "", api_port: int | None = None) -> None:
    """config.ini of a unit that is its own leader (no network check), its API on ``api_port``."""
    unit_env.write_config(
        f"[cluster.topology]\nleader_hostname = {unit_env.unit}\nleader_address = 127.0.0.1\n"
        f"[cluster.addresses]\n{unit_env.unit} = 127.0.0.1:{api_port or free_port()}\n{extra}")


@pytest.mark.integration
def test_low_free_disk_space_is_logged_and_code_3_published(unit_env, mqtt_recorder, spawn_job, health_server):
    # a threshold above the real free space, rather than a full disk
    standalone(unit_env, "[monitor.config]\nmin_free_disk_space_percent = 100\n", health_server.server_address[1])
    since = time.monotonic()
    spawn_job("monitor")
    assert mqtt_recorder.wait_for(code_topic(unit_env), lambda p: p == b"3", since=since) == b"3"
    warning = json.loads(mqtt_recorder.wait_for(log_topic(unit_env, "warning"), lambda p: b"disk" in p, since=since))
    assert warning["task"] == "monitor"
    assert str(unit_env.root) in warning["message"] and "min_free_disk_space_percent = 100" in warning["message"]


@pytest.mark.integration
def test_an_api_that_does_not_answer_is_logged_and_code_8_published(unit_env, mqtt_recorder, spawn_job):
    standalone(unit_env, "[monitor.config]\nhttp_retry_wait_seconds = 0.2\n")  # nothing listens on the unit's port
    since = time.monotonic()
    proc = spawn_job("monitor")
    assert mqtt_recorder.wait_for(code_topic(unit_env), lambda p: p == b"8", since=since) == b"8"
    error = json.loads(mqtt_recorder.wait_for(log_topic(unit_env, "error"), lambda p: b"web server" in p, since=since))
    assert "/unit_api/health" in error["message"] and "pio serve" in error["message"]
    assert "3 tries, 0.2 s apart" in error["message"]
    mqtt_recorder.wait_for(f"{unit_env.prefix}pioreactor/{unit_env.unit}/$experiment/monitor/$state",
                           lambda p: p == b"ready", since=since)
    assert proc.poll() is None


@pytest.mark.integration
def test_an_answering_api_passes_with_a_debug_line_in_the_log_file(unit_env, mqtt_recorder, spawn_job, health_server):
    standalone(unit_env, api_port=health_server.server_address[1])
    since = time.monotonic()
    spawn_job("monitor")
    mqtt_recorder.wait_for(f"{unit_env.prefix}pioreactor/{unit_env.unit}/$experiment/monitor/$state",
                           lambda p: p == b"ready", since=since)
    log_file = unit_env.root / "logs" / "pioreactor.log"
    wait_until(lambda: log_file.exists() and "Self-check web_server" in log_file.read_text(), 60,
               what="the web_server self-check's line in the log file")
    line = next(x for x in log_file.read_text().splitlines() if "Self-check web_server" in x)
    assert "DEBUG" in line and "answers http://127.0.0.1:" in line
    assert not [p for p in mqtt_recorder.values(code_topic(unit_env)) if p == b"8"]


def warnings_with_timestamps(mqtt_recorder, unit_env, count: int, since: float) -> list[float]:
    """Simulated epoch seconds of the first ``count`` disk warnings (one per self-check round), in arrival order."""
    topic = log_topic(unit_env, "warning")
    seen: list[str] = []
    while len(seen) < count:
        payload = mqtt_recorder.wait_for(
            topic, lambda p: b"disk" in p and json.loads(p)["timestamp"] not in seen, since=since, timeout=120)
        seen.append(json.loads(payload)["timestamp"])
    return [parse_iso(stamp) for stamp in seen]


@pytest.mark.integration
def test_self_checks_repeat_every_interval_of_simulated_time(unit_env, mqtt_recorder, spawn_job, health_server):
    unit_env.speedup = 600.0  # 0.5 h of simulated time = 3 wall seconds
    standalone(unit_env, "[monitor.config]\nmin_free_disk_space_percent = 100\nself_check_interval_hours = 0.5\n",
               health_server.server_address[1])
    since = time.monotonic()
    spawn_job("monitor")
    stamps = warnings_with_timestamps(mqtt_recorder, unit_env, 3, since)
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    # once at start, then one round per 1800 simulated seconds, never more often. A late wake-up of the timer's
    # thread on a busy machine shifts a line by wall tenths of a second, x 600 in simulated seconds: the bound
    # leaves 1.5 wall s for that and still fails an interval read in other units or rounds run twice (gaps of a
    # few simulated seconds); one read in wall hours never gets a second round (wait_for's timeout)
    assert all(gap >= 0.5 * 1800 for gap in gaps), gaps


@pytest.mark.integration
def test_a_check_that_raises_is_logged_and_the_job_goes_on(unit_env, mqtt_recorder, spawn_job, health_server):
    unit_env.speedup = 600.0
    standalone(unit_env, "[monitor.config]\nmin_free_disk_space_percent = 100\nself_check_interval_hours = 0.5\n",
               health_server.server_address[1])
    storage = unit_env.root / "storage"
    storage.mkdir(exist_ok=True)
    # the simulated vessel's temperature sensor does not answer: its read raises HardwareError
    (storage / f"simulated_faults_{unit_env.unit}.json").write_text(json.dumps({"temperature_sensor": True}))
    since = time.monotonic()
    proc = spawn_job("monitor")
    error = json.loads(mqtt_recorder.wait_for(log_topic(unit_env, "error"), lambda p: b"heater_pcb" in p, since=since))
    assert "could not run" in error["message"] and "HardwareError" in error["message"]
    warnings_with_timestamps(mqtt_recorder, unit_env, 2, since)  # the next round ran
    assert proc.poll() is None
    mqtt_recorder.publish(f"{unit_env.prefix}pioreactor/{unit_env.unit}/$experiment/monitor/flicker_led_response_okay",
                          "1")
    mqtt_recorder.wait_for(log_topic(unit_env, "info"), lambda p: b"blink" in p, since=since)
    assert [p for p in mqtt_recorder.values(
        f"{unit_env.prefix}pioreactor/{unit_env.unit}/$experiment/monitor/$state")][-1] == b"ready"


# ------------------------------------------------------------------ the job in this process
@pytest.fixture
def monitor_env(unit_env, monkeypatch):
    from reactorkit.builtin_plugins.system.monitor import Monitor
    from reactorkit.core.config import set_config

    unit_env.apply(monkeypatch)
    monkeypatch.setattr(Monitor, "_install_signal_handlers", lambda self: None)
    set_config(None)
    yield unit_env
    set_config(None)


@pytest.mark.integration
def test_every_check_runs_when_one_raises(monitor_env, mqtt_recorder, monkeypatch):
    from reactorkit.builtin_plugins.system.monitor import Monitor
    from reactorkit.core.config import load_config

    standalone(monitor_env, "[monitor.config]\nhttp_retry_wait_seconds = 0\n")

    def broken(self):
        raise RuntimeError("broken on purpose")

    monkeypatch.setattr(Monitor, "check_disk", broken)
    job = Monitor(monitor_env.unit, config=load_config(), self_check_interval_hours=1000)
    try:
        findings = job.self_check()
        assert [f.check for f in findings][:2] == ["mqtt", "web_server"]  # disk raised, the next ones ran
        assert job.state == "ready"
        error = json.loads(mqtt_recorder.wait_for(log_topic(monitor_env, "error"), lambda p: b"broken on purpose" in p))
        assert "'disk' could not run" in error["message"]
    finally:
        job.clean_up()


class PersistentSubscriber:
    """A paho client with a persistent session (clean_session False) on ``topic``: the broker keeps what is
    published there while this client is away, across its own clean restart (``persistence true``)."""

    def __init__(self, topic: str, port: int) -> None:
        import uuid

        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.payloads: list[bytes] = []
        self.cond = threading.Condition()
        subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"persist-{uuid.uuid4().hex[:8]}",
                                  clean_session=False)
        self.client.reconnect_delay_set(min_delay=1, max_delay=2)
        self.client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert subscribed.wait(10), "persistent subscriber could not subscribe"

    def _on_message(self, client, userdata, message) -> None:
        with self.cond:
            self.payloads.append(message.payload)
            self.cond.notify_all()

    def wait_for(self, payload: bytes, count: int = 1, timeout: float = 60.0) -> None:
        """Until ``payload`` has come ``count`` times."""
        with self.cond:
            assert self.cond.wait_for(lambda: self.payloads.count(payload) >= count, timeout), self.payloads

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.mark.integration
def test_codes_found_while_the_broker_is_away_are_logged_locally_and_published_at_reconnection(
        unit_env, private_broker, monkeypatch):
    from reactorkit.builtin_plugins.system.monitor import Monitor
    from reactorkit.core.config import load_config, set_config

    unit_env.apply(monkeypatch)
    monkeypatch.setattr(Monitor, "_install_signal_handlers", lambda self: None)
    standalone(unit_env, private_broker.config_ini() + "[monitor.config]\nhttp_retry_wait_seconds = 0\n")
    set_config(None)
    codes = PersistentSubscriber(code_topic(unit_env), private_broker.port)
    job = Monitor(unit_env.unit, config=load_config(), self_check_interval_hours=1000)
    try:
        codes.wait_for(b"8")  # the start's round: nothing answers on the unit's port
        private_broker.stop()
        wait_until(lambda: not job.mqtt.is_connected(), 60, 0.05, what="the monitor seeing the broker go")
        findings = {f.check: f for f in job.self_check()}
        assert not findings["mqtt"].ok and not findings["web_server"].ok
        log = (unit_env.root / "logs" / "pioreactor.log").read_text()
        assert f"Not connected to the MQTT broker at 127.0.0.1:{private_broker.port}" in log
        assert b"2" not in codes.payloads
        private_broker.start()
        codes.wait_for(b"2")  # published at the reconnection, with the web server's 8 found meanwhile
        codes.wait_for(b"8", count=2)
        log_file = unit_env.root / "logs" / "pioreactor.log"
        wait_until(lambda: "Connected to the MQTT broker again" in log_file.read_text(), 60, 0.05,
                   what="the line about the reconnection")
    finally:
        job.clean_up()
        codes.close()
        set_config(None)
