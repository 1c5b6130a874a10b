"""The monitor's self-checks: each check on fakes."""

from __future__ import annotations

import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from reactorkit.builtin_plugins.system import self_checks as sc
from reactorkit.core.cluster import free_port


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
