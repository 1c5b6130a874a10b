"""/unit_api/jobs: registry reads, setting updates over MQTT, body validation, 404/429 (§2, §8)."""

import json
import os
import time

import pytest

from reactorkit.core.job_registry import JobRegistry

pytestmark = pytest.mark.integration  # real Redis (debounce, queue) and mosquitto (setting updates)


def register(api_env, job_name, experiment="exp1", long_running=False, settings=None):
    registry = JobRegistry()
    try:
        job_id = registry.register(unit=api_env.unit, experiment=experiment, job_name=job_name, pid=os.getpid(),
                                   job_source="user", is_long_running=long_running, started_at="2026-01-01T00:00:00Z")
        for key, value in (settings or {}).items():
            registry.set_setting(job_id, key, value)
        return job_id
    finally:
        registry.close()


def test_running_lists_live_registry_rows(unit_client, api_env):
    assert unit_client.simulate_get("/unit_api/jobs/running").json == []
    register(api_env, "stirring", "exp1")
    register(api_env, "od_reading", "exp2")
    register(api_env, "monitor", "$experiment", long_running=True)
    running = unit_client.simulate_get("/unit_api/jobs/running").json
    assert [r["job_name"] for r in running] == ["stirring", "od_reading", "monitor"]
    assert {"job_id", "unit", "experiment", "job_name", "job_source", "started_at", "pid"} <= set(running[0])
    assert running[0]["unit"] == api_env.unit
    assert [r["job_name"] for r in unit_client.simulate_get("/unit_api/jobs/running/stirring").json] == ["stirring"]
    assert unit_client.simulate_get("/unit_api/jobs/running/growth_rate_calculating").json == []
    by_exp = unit_client.simulate_get("/unit_api/jobs/running/experiments/exp2").json
    assert [r["job_name"] for r in by_exp] == ["od_reading"]
    assert [r["job_name"] for r in unit_client.simulate_get("/unit_api/long_running_jobs/running").json] == ["monitor"]
    assert len(unit_client.simulate_get("/unit_api/jobs").json) == 3


def test_rows_of_dead_processes_are_not_listed(unit_client, api_env):
    registry = JobRegistry()
    registry.register(unit=api_env.unit, experiment="e", job_name="ghost", pid=2 ** 22 + 12345,
                      started_at="2026-01-01T00:00:00Z")
    registry.close()
    assert unit_client.simulate_get("/unit_api/jobs/running").json == []


def test_settings_of_a_running_job(unit_client, api_env):
    register(api_env, "stirring", settings={"target_rpm": 400.0, "$state": "ready"})
    assert unit_client.simulate_get("/unit_api/jobs/settings/job_name/stirring").json == {
        "settings": {"$state": "ready", "target_rpm": 400.0}}
    assert unit_client.simulate_get("/unit_api/jobs/settings/job_name/stirring/setting/target_rpm").json == {
        "target_rpm": 400.0}


def test_settings_of_a_job_that_is_not_running_are_a_404(unit_client, api_env):
    result = unit_client.simulate_get("/unit_api/jobs/settings/job_name/stirring")
    assert result.status_code == 404 and result.json["status"] == 404
    assert "stirring" in result.json["error"]
    register(api_env, "stirring", settings={"target_rpm": 400.0})
    missing = unit_client.simulate_get("/unit_api/jobs/settings/job_name/stirring/setting/volume")
    assert missing.status_code == 404 and "target_rpm" in missing.json["cause"]


def test_updating_settings_publishes_set_messages(unit_client, api_env, mqtt_recorder):
    register(api_env, "stirring", experiment="exp9")
    result = unit_client.simulate_patch("/unit_api/jobs/settings/job_name/stirring",
                                        json={"settings": {"target_rpm": 450, "enable_dodging_od": True}})
    assert result.status_code == 200
    prefix = f"{api_env.prefix}pioreactor/{api_env.unit}/exp9/stirring"
    assert mqtt_recorder.wait_for(f"{prefix}/target_rpm/set") == b"450"
    assert mqtt_recorder.wait_for(f"{prefix}/enable_dodging_od/set") == b"True"


@pytest.mark.parametrize("body, field", [
    ({"settings": "fast"}, "settings"),
    ({}, "settings"),
    ({"settings": {}}, "settings"),
])
def test_bad_setting_updates_are_400_naming_the_field(unit_client, api_env, body, field):
    register(api_env, "stirring")
    result = unit_client.simulate_patch("/unit_api/jobs/settings/job_name/stirring", json=body)
    assert result.status_code == 400
    assert f"'{field}'" in result.json["cause"]


def test_malformed_json_is_a_400(unit_client):
    result = unit_client.simulate_post("/unit_api/jobs/run/job_name/stirring", body="{not json",
                                       headers={"Content-Type": "application/json"})
    assert result.status_code == 400
    assert result.json["error"].startswith("The body is not valid JSON (line 1, column")
    assert result.json["status"] == 400


@pytest.mark.parametrize("body, field", [
    ({"options": ["target_rpm", 200]}, "options"),
    ({"env": "EXPERIMENT=x"}, "env"),
    ({"args": "--quiet"}, "args"),
    ({"config_overrides": [["stirring.config", "pwm_hz"]]}, "config_overrides[0]"),
    ({"options": {"target_rpm": {"value": 1}}}, "options.target_rpm"),
])
def test_wrong_types_in_a_run_body_are_400_naming_the_field(unit_client, body, field):
    result = unit_client.simulate_post("/unit_api/jobs/run/job_name/stirring", json=body)
    assert result.status_code == 400
    assert f"'{field}'" in result.json["cause"]


def test_an_unknown_job_is_a_404(unit_client):
    result = unit_client.simulate_post("/unit_api/jobs/run/job_name/no_such_job", json={})
    assert result.status_code == 404
    assert "no_such_job" in result.json["error"]


def test_run_queues_a_task_and_a_quick_repeat_is_429(unit_client, api_env, monkeypatch):
    from reactorkit.api.unit import jobs

    assert jobs.RUN_DEBOUNCE_MS == 1000  # the contract's window (§8)
    # "quick" means inside the window however slow the machine: the repeat is checked with a 60 s window
    monkeypatch.setattr(jobs, "RUN_DEBOUNCE_MS", 60_000)
    first = unit_client.simulate_post("/unit_api/jobs/run/job_name/stirring", json={"options": {"target_rpm": 300}})
    assert first.status_code == 202
    task_id = first.json["task_id"]
    assert first.json == {"unit": api_env.unit, "task_id": task_id,
                          "result_url_path": f"/unit_api/task_results/{task_id}", "status": "accepted"}
    second = unit_client.simulate_patch("/unit_api/jobs/run/job_name/stirring", json={})
    assert second.status_code == 429 and second.json["status"] == 429
    pending = unit_client.simulate_get(first.json["result_url_path"])
    assert pending.status_code == 202 and pending.json["status"] == "pending"
    # and once the contract's 1 s window has passed, the same job is accepted again
    monkeypatch.setattr(jobs, "RUN_DEBOUNCE_MS", 1000)
    assert unit_client.simulate_post("/unit_api/jobs/run/job_name/od_reading", json={}).status_code == 202
    time.sleep(1.1)
    assert unit_client.simulate_post("/unit_api/jobs/run/job_name/od_reading", json={}).status_code == 202


def test_stop_needs_a_filter(unit_client):
    result = unit_client.simulate_post("/unit_api/jobs/stop", json={})
    assert result.status_code == 400
    assert "job_name" in result.json["cause"]


def test_stop_job_id_must_be_an_integer(unit_client):
    result = unit_client.simulate_post("/unit_api/jobs/stop", json={"job_id": "example_job_id"})
    assert result.status_code == 400 and "'job_id'" in result.json["cause"]
    result = unit_client.simulate_post("/unit_api/jobs/stop", json={"job_name": 3})
    assert result.status_code == 400 and "'job_name'" in result.json["cause"]


def test_unknown_task_is_a_404(unit_client):
    result = unit_client.simulate_get("/unit_api/task_results/does-not-exist")
    assert result.status_code == 404
    assert json.dumps(result.json).count("does-not-exist") >= 1
