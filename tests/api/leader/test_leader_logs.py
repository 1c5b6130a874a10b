"""Log endpoints: pagination, levels, recent windows, unit and assignment scoping, publishing."""

import json
import os

import pytest

from reactorkit.core.clock import get_clock, utc_iso_ms
from reactorkit.core.testing import MQTTRecorder


@pytest.fixture
def log(writer):
    now = get_clock().now()

    def add(unit, experiment, message, *, level="INFO", seconds_ago=0.0, task="stirring"):
        writer.execute("INSERT INTO logs (experiment, pioreactor_unit, timestamp, message, source, level, task)"
                       " VALUES (?, ?, ?, ?, 'app', ?, ?)",
                       (experiment, unit, utc_iso_ms(now - seconds_ago), message, level, task))

    return add


def messages(result):
    assert result.status_code == 200, result.text
    return [r["message"] for r in result.json]


def test_all_logs_are_newest_first_and_paged_by_100(api, log):
    for i in range(130):
        log("w1", "exp1", f"m{i}", seconds_ago=130 - i)
    page1 = messages(api.simulate_get("/api/logs"))
    page2 = messages(api.simulate_get("/api/logs", params={"skip": "100"}))
    assert len(page1) == 100 and page1[0] == "m129" and page1[-1] == "m30"
    assert page2 == [f"m{i}" for i in range(29, -1, -1)]
    row = api.simulate_get("/api/logs").json[0]
    assert set(row) == {"timestamp", "level", "pioreactor_unit", "message", "task", "source", "experiment"}


def test_min_level_includes_higher_levels_and_defaults_to_info(api, log):
    for i, level in enumerate(("DEBUG", "INFO", "NOTICE", "WARNING", "ERROR")):
        log("w1", "exp1", level.lower(), level=level, seconds_ago=10 - i)
    assert messages(api.simulate_get("/api/logs")) == ["error", "warning", "notice", "info"]
    assert messages(api.simulate_get("/api/logs", params={"min_level": "warning"})) == ["error", "warning"]
    assert len(messages(api.simulate_get("/api/logs", params={"min_level": "DEBUG"}))) == 5
    bad = api.simulate_get("/api/logs", params={"min_level": "loud"})
    assert bad.status_code == 400 and "min_level" in bad.json["cause"]
    assert api.simulate_get("/api/logs", params={"skip": "-1"}).status_code == 400
    assert api.simulate_get("/api/logs", params={"skip": "two"}).status_code == 400


def test_experiment_logs_and_recent_logs(api, cluster, log, db):
    cluster.experiment("exp1")
    db.execute("UPDATE experiments SET created_at = ? WHERE experiment = 'exp1'",
               (utc_iso_ms(get_clock().now() - 3 * 86400),))
    log("w1", "exp1", "fresh", seconds_ago=60)
    log("w1", "other", "elsewhere", seconds_ago=60)
    log("w1", "exp1", "yesterday", seconds_ago=25 * 3600)
    assert messages(api.simulate_get("/api/experiments/exp1/logs")) == ["fresh", "yesterday"]
    assert messages(api.simulate_get("/api/experiments/exp1/recent_logs")) == ["fresh"]


def test_recent_logs_start_at_the_experiment_creation(api, cluster, log, db):
    cluster.experiment("exp1")
    db.execute("UPDATE experiments SET created_at = ? WHERE experiment = 'exp1'",
               (utc_iso_ms(get_clock().now() - 3600),))
    log("w1", "exp1", "after creation", seconds_ago=60)
    log("w1", "exp1", "a previous run with that name", seconds_ago=7200)
    assert messages(api.simulate_get("/api/experiments/exp1/recent_logs")) == ["after creation"]


def test_recent_logs_are_at_most_50(api, cluster, log):
    cluster.experiment("exp1")
    for i in range(60):
        log("w1", "exp1", f"m{i}", seconds_ago=-i - 1)
    assert len(messages(api.simulate_get("/api/experiments/exp1/recent_logs"))) == 50


def test_unit_logs_include_broadcast_rows_and_system_logs_are_universal(api, cluster, log):
    cluster.worker("w1")
    log("w1", "exp1", "mine", seconds_ago=3)
    log("$broadcast", "exp1", "everyone", seconds_ago=2)
    log("w2", "exp1", "not mine", seconds_ago=1)
    log("w1", "$experiment", "system", seconds_ago=0)
    assert messages(api.simulate_get("/api/units/w1/logs")) == ["system", "everyone", "mine"]
    assert messages(api.simulate_get("/api/units/w1/system_logs")) == ["system"]
    assert api.simulate_get("/api/units/ghost/logs").status_code == 404


def test_worker_experiment_logs_are_limited_to_its_assignment(api, cluster, log, db):
    cluster.experiment("exp1")
    cluster.worker("w1")
    log("w1", "exp1", "before assignment", seconds_ago=600)
    cluster.assign("w1", "exp1")
    log("w1", "exp1", "while assigned", seconds_ago=-1)
    assert messages(api.simulate_get("/api/workers/w1/experiments/exp1/logs")) == ["while assigned"]
    assert messages(api.simulate_get("/api/workers/w1/experiments/exp1/recent_logs")) == ["while assigned"]
    unknown = api.simulate_get("/api/workers/ghost/experiments/exp1/recent_logs")
    assert unknown.status_code == 200 and unknown.json == []  # as the web UI expects (no 404)


def test_publishing_a_log_validates_the_body(api, cluster):
    cluster.experiment("exp1")
    cluster.worker("w1")
    url = "/api/workers/w1/experiments/exp1/logs"
    assert api.simulate_post(url, json={"level": "INFO"}).status_code == 400
    bad_level = api.simulate_post(url, json={"message": "x", "level": "LOUD"})
    assert bad_level.status_code == 400 and "'level'" in bad_level.json["cause"]
    bad_time = api.simulate_post(url, json={"message": "x", "timestamp": "yesterday"})
    assert bad_time.status_code == 400 and "'timestamp'" in bad_time.json["cause"]
    assert api.simulate_post("/api/workers/ghost/experiments/exp1/logs", json={"message": "x"}).status_code == 404


@pytest.mark.integration
def test_publishing_a_log_sends_it_over_mqtt(api, cluster):
    cluster.experiment("exp1")
    cluster.worker("w1")
    cluster.worker("w2")
    cluster.assign("w1", "exp1")
    cluster.assign("w2", "exp1")
    prefix = os.environ["MQTT_TOPIC_PREFIX"]
    recorder = MQTTRecorder(prefix)
    try:
        result = api.simulate_post("/api/workers/$broadcast/experiments/exp1/logs",
                                   json={"message": "Added 1 mL", "level": "notice", "task": "ui",
                                         "timestamp": "2026-01-31T12:45:00.000Z", "source_": "ui"})
        assert result.status_code == 202 and result.json == {"status": "accepted"}
        for unit in ("w1", "w2"):
            payload = json.loads(recorder.wait_for(f"{prefix}pioreactor/{unit}/exp1/logs/ui/notice", timeout=30))
            assert payload == {"message": "Added 1 mL", "level": "NOTICE", "task": "ui",
                               "timestamp": "2026-01-31T12:45:00.000Z", "source": "ui"}
    finally:
        recorder.close()
