"""``?wait=<seconds>`` on async operations: a real Redis queue and a real ``pio worker`` run the tasks."""

from __future__ import annotations

import subprocess
import uuid

import falcon.testing
import pytest

from reactorkit.api.app import create_app
from reactorkit.core.config import DEFAULTS, Config
from reactorkit.core.plugins import Registry
from reactorkit.core.testing import pio_command, stop_process

pytestmark = pytest.mark.integration


@pytest.fixture
def unit(unit_env, monkeypatch):
    """This test's unit: its own state folder, the test Redis DB and its own task queue."""
    unit_env.extra["REACTORKIT_QUEUE_PREFIX"] = f"w{uuid.uuid4().hex[:8]}-"
    for key, value in unit_env.env().items():
        if key in ("DOT_PIOREACTOR", "HOSTNAME", "REDIS_URL", "REACTORKIT_QUEUE_PREFIX", "MQTT_TOPIC_PREFIX",
                   "HARDWARE"):
            monkeypatch.setenv(key, value)
    unit_env.write_config("[ui]\nmax_wait_seconds = 20\n")
    return unit_env


def make_client(unit_env, cap_s: float) -> falcon.testing.TestClient:
    config = Config()
    config.read_string(DEFAULTS)
    config.read_string(f"[ui]\nmax_wait_seconds = {cap_s}\n")
    app = create_app(Registry.installed(), config=config, unit=unit_env.unit, leader=False)
    return falcon.testing.TestClient(app)


@pytest.fixture
def worker(unit):
    log = open(unit.root / "worker.log", "wb")
    proc = subprocess.Popen(pio_command("worker"), env=unit.env(), stdout=log, stderr=subprocess.STDOUT)
    yield proc
    stop_process(proc)


def queued(unit_env) -> int:
    from reactorkit.core.tasks import get_queue

    return len(get_queue(unit_env.unit))


def test_without_wait_an_async_operation_answers_202(unit):
    result = make_client(unit, 20).simulate_post("/unit_api/jobs/stop/all")
    assert result.status_code == 202
    assert result.json["result_url_path"] == f"/unit_api/task_results/{result.json['task_id']}"


def test_a_task_not_finished_in_time_keeps_the_usual_202(unit):
    # no worker runs: the task stays queued
    result = make_client(unit, 20).simulate_post("/unit_api/jobs/stop/all", params={"wait": "0.3"})
    assert result.status_code == 202
    assert result.json["status"] == "accepted" and result.json["task_id"]


def test_wait_is_cut_to_the_configured_cap(unit):
    # asked for an hour; the cap of 0.2 s returns the 202 (the test would otherwise hang)
    result = make_client(unit, 0.2).simulate_post("/unit_api/jobs/stop/all", params={"wait": "3600"})
    assert result.status_code == 202


def test_a_finished_task_is_returned_in_the_same_call(unit, worker):
    result = make_client(unit, 20).simulate_post("/unit_api/jobs/stop/all", params={"wait": "20"})
    assert result.status_code == 200, result.text
    body = result.json
    assert body["status"] == "succeeded" and "result" in body
    assert body["unit"] == unit.unit
    again = make_client(unit, 20).simulate_get(body["result_url_path"])
    assert again.status_code == 200 and again.json["status"] == "succeeded"
    assert again.json["result"] == body["result"]


def test_a_failed_task_is_returned_with_its_error(unit, worker):
    # setting the clock is refused off a Raspberry Pi: the task fails
    result = make_client(unit, 20).simulate_post("/unit_api/system/utc_clock", params={"wait": "20"},
                                                 json={"utc_clock_time": "2026-01-31T12:00:00Z"})
    assert result.status_code == 200, result.text
    assert result.json["status"] == "failed"
    assert "Raspberry Pi" in result.json["error"]
    assert result.json["cause"] and result.json["remediation"]


def test_a_bad_wait_is_a_400_and_queues_nothing(unit):
    client = make_client(unit, 20)
    before = queued(unit)
    for bad in ("soon", "-1", "nan", "inf"):
        result = client.simulate_post("/unit_api/jobs/stop/all", params={"wait": bad})
        assert result.status_code == 400, bad
        assert result.json["error"] == "Invalid query parameter 'wait'."
        assert repr(bad) in result.json["cause"]
    assert queued(unit) == before


def test_wait_does_not_change_synchronous_operations(unit):
    result = make_client(unit, 20).simulate_get("/unit_api/health", params={"wait": "5"})
    assert result.status_code == 200 and result.json["status"] == "ok"


def test_a_cap_saved_through_the_api_is_the_one_applied_and_documented(unit):
    from reactorkit.core.config import forget_config_files

    forget_config_files()  # this process reads this unit's files (the app follows them: no config= given)
    try:
        client = falcon.testing.TestClient(create_app(Registry.installed(), unit=unit.unit, leader=False))
        assert "(at most 20; more is cut to that)" in client.simulate_get("/unit_api/openapi.json").text
        saved = client.simulate_patch("/unit_api/config/specific", json={"code": "[ui]\nmax_wait_seconds = 0\n"})
        assert saved.status_code == 200, saved.text
        assert "(at most 0; more is cut to that)" in client.simulate_get("/unit_api/openapi.json").text
        # no worker runs: asked for an hour, cut to the saved cap (the test would otherwise wait the old 20 s)
        result = client.simulate_post("/unit_api/jobs/stop/all", params={"wait": "3600"})
        assert result.status_code == 202
    finally:
        forget_config_files()
