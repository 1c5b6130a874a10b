"""Async job routes end to end on one unit: queue → real rq worker → real job process → task results (§8)."""

import pytest

pytestmark = pytest.mark.integration


def test_run_then_stop_a_job_through_tasks(api_env, unit_client, run_tasks, mqtt_recorder):
    accepted = unit_client.simulate_post("/unit_api/jobs/run/job_name/stirring",
                                         json={"options": {"target_rpm": 321}, "env": {"JOB_SOURCE": "api"}}).json
    run_tasks()
    done = unit_client.simulate_get(accepted["result_url_path"])
    assert done.status_code == 200
    assert done.json == {"task_id": accepted["task_id"], "result_url_path": accepted["result_url_path"],
                         "status": "succeeded", "result": {"ok": True}}
    mqtt_recorder.wait_for(api_env.topic("stirring", "$state"), lambda p: p == b"ready", timeout=30)
    running = unit_client.simulate_get("/unit_api/jobs/running").json
    assert [(r["job_name"], r["job_source"], r["experiment"]) for r in running] == [("stirring", "api", api_env.experiment)]
    settings = unit_client.simulate_get("/unit_api/jobs/settings/job_name/stirring").json["settings"]
    assert settings["target_rpm"] == 321.0

    stop = unit_client.simulate_post("/unit_api/jobs/stop", json={"job_name": "stirring"}).json
    run_tasks()
    result = unit_client.simulate_get(stop["result_url_path"]).json
    assert result["status"] == "succeeded"
    assert [s["job_name"] for s in result["result"]["stopped"]] == ["stirring"]
    mqtt_recorder.wait_for(api_env.topic("stirring", "$state"), lambda p: p == b"disconnected", timeout=15)
    assert unit_client.simulate_get("/unit_api/jobs/running").json == []
    # results stay readable
    assert unit_client.simulate_get(stop["result_url_path"]).json["status"] == "succeeded"


def test_a_job_that_exits_at_once_is_a_failed_task_with_its_last_line(api_env, unit_client, run_tasks):
    # an option the job does not know passes the API (it checks the settings it knows) and the job refuses it
    accepted = unit_client.simulate_post("/unit_api/jobs/run/job_name/stirring",
                                         json={"options": {"no_such_option": 1}}).json
    run_tasks()
    failed = unit_client.simulate_get(accepted["result_url_path"])
    assert failed.status_code == 200
    assert failed.json["status"] == "failed"
    assert "exited with code 2" in failed.json["error"]
    assert "no-such-option" in failed.json["cause"] or "no_such_option" in failed.json["cause"]
    assert failed.json["remediation"]


def test_stop_all_spares_nothing_short_lived(api_env, unit_client, run_tasks, mqtt_recorder):
    unit_client.simulate_post("/unit_api/jobs/run/job_name/stirring", json={})
    run_tasks()
    mqtt_recorder.wait_for(api_env.topic("stirring", "$state"), lambda p: p == b"ready", timeout=30)
    stop = unit_client.simulate_patch("/unit_api/jobs/stop/all").json
    run_tasks()
    assert unit_client.simulate_get(stop["result_url_path"]).json["result"]["stopped"][0]["job_name"] == "stirring"
    assert unit_client.simulate_get("/unit_api/jobs/running").json == []
