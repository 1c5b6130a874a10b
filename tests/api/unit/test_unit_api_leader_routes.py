"""Leader variants: target resolution, async fan-out envelopes, MQTT publishes, proxies (§1.2, §8)."""

import socket

import pytest
from redis import Redis
from rq.job import Job

from reactorkit.core.leader_db import LeaderDB
from reactorkit.core.config import set_config
from reactorkit.core.tasks import redis_url

pytestmark = pytest.mark.integration  # real Redis queue and mosquitto


def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def cluster(api_env):
    """The leader is ``api_env.unit``; workers pio01 (assigned to exp1), pio02 (idle), pio03 (inactive, exp1)."""
    port = closed_port()
    api_env.write_config(
        f"[cluster.topology]\nleader_hostname = {api_env.unit}\n\n"
        f"[cluster.addresses]\npio01 = 127.0.0.1:{port}\npio02 = 127.0.0.1:{port}\npio03 = 127.0.0.1:{port}\n"
    )
    set_config(None)
    db = LeaderDB()  # the same file as the app's database
    for unit in ("pio01", "pio02", "pio03"):
        db.add_worker(unit, "pioreactor_20ml", "1.5")
    db.set_worker_active("pio03", False)
    db.execute("INSERT INTO experiments (experiment, created_at) VALUES ('exp1', '2026-01-01T00:00:00.000Z')")
    db.execute("INSERT INTO experiments (experiment, created_at) VALUES ('idle', '2026-01-01T00:00:00.000Z')")
    db.assign("pio01", "exp1")
    db.assign("pio03", "exp1")
    return api_env


def queued(task_id):
    job = Job.fetch(task_id, connection=Redis.from_url(redis_url()))
    return job.args, job.kwargs


def test_run_goes_to_active_assigned_workers_with_their_environment(cluster, leader_client):
    result = leader_client.simulate_post("/api/workers/$broadcast/jobs/run/job_name/stirring/experiments/exp1",
                                         json={"options": {"target_rpm": 200}, "env": {"JOB_SOURCE": "ui"}})
    assert result.status_code == 202
    assert result.json["unit"] == cluster.unit and result.json["status"] == "accepted"
    assert result.json["result_url_path"] == f"/unit_api/task_results/{result.json['task_id']}"
    args, kwargs = queued(result.json["task_id"])
    assert args[:3] == ("POST", ["pio01"], "/unit_api/jobs/run/job_name/stirring")
    body = kwargs["json_per_unit"]["pio01"]
    assert body["options"] == {"target_rpm": 200}
    assert body["env"] == {"JOB_SOURCE": "ui", "EXPERIMENT": "exp1", "HOSTNAME": "pio01", "ACTIVE": "1",
                           "MODEL_NAME": "pioreactor_20ml", "MODEL_VERSION": "1.5"}


def test_run_in_the_universal_experiment_goes_to_every_active_worker(cluster, leader_client):
    result = leader_client.simulate_post("/api/units/$broadcast/jobs/run/job_name/stirring/experiments/$experiment")
    assert queued(result.json["task_id"])[0][1] == ["pio01", "pio02"]


@pytest.mark.parametrize("path, status", [
    ("/api/workers/nobody/jobs/run/job_name/stirring/experiments/exp1", 400),
    ("/api/workers/pio02/jobs/run/job_name/stirring/experiments/exp1", 404),
    ("/api/workers/pio03/jobs/run/job_name/stirring/experiments/exp1", 404),
    ("/api/workers/$broadcast/jobs/run/job_name/stirring/experiments/idle", 404),
    ("/api/workers/$broadcast/jobs/run/job_name/stirring/experiments/no_such_exp", 404),
])
def test_run_targets_that_do_not_exist_or_fit_are_refused(cluster, leader_client, path, status):
    result = leader_client.simulate_post(path, json={})
    assert result.status_code == status
    assert result.json["status"] == status and result.json["cause"]


def test_run_body_is_checked_on_the_leader_too(cluster, leader_client):
    result = leader_client.simulate_post("/api/workers/pio01/jobs/run/job_name/stirring/experiments/exp1",
                                         json={"config_overrides": "pwm_hz=100"})
    assert result.status_code == 400 and "'config_overrides'" in result.json["cause"]


def test_broadcast_reads_resolve_per_family(cluster, leader_client):
    workers = leader_client.simulate_get("/api/workers/$broadcast/jobs/running").json
    assert queued(workers["task_id"])[0][1] == ["pio01", "pio02"]
    units = leader_client.simulate_get("/api/units/$broadcast/versions/app").json
    assert queued(units["task_id"])[0][1:3] == (sorted([cluster.unit, "pio01", "pio02", "pio03"]),
                                                "/unit_api/versions/app")
    caps = leader_client.simulate_get("/api/units/pio02/capabilities").json
    args, kwargs = queued(caps["task_id"])
    assert args[1:3] == (["pio02"], "/unit_api/capabilities") and kwargs["timeout"] == 15.0
    assert leader_client.simulate_get("/api/workers/nobody/jobs/running").status_code == 400


def test_job_settings_read_for_a_broadcast_means_the_assigned_workers(cluster, leader_client):
    one = leader_client.simulate_get(
        "/api/workers/$broadcast/jobs/settings/job_name/stirring/setting/target_rpm/experiments/exp1").json
    assert queued(one["task_id"])[0][1:3] == (["pio01"], "/unit_api/jobs/settings/job_name/stirring/setting/target_rpm")
    many = leader_client.simulate_get("/api/workers/pio02/jobs/settings/job_name/stirring/experiments/exp1").json
    assert queued(many["task_id"])[0][1:3] == (["pio02"], "/unit_api/jobs/settings/job_name/stirring")


def test_a_fan_out_task_whose_only_target_is_unreachable_failed_and_says_so(cluster, leader_client, run_tasks):
    accepted = leader_client.simulate_get("/api/workers/pio01/jobs/running").json
    run_tasks()
    done = leader_client.simulate_get(accepted["result_url_path"])
    assert done.status_code == 200 and done.json["status"] == "failed"
    assert done.json["error"] == "The call failed on its only target, pio01."
    assert done.json["cause"].startswith("pio01: ") and "pio01" in done.json["remediation"]
    envelope = done.json["result"]["pio01"]
    assert envelope["ok"] is False and envelope["unit"] == "pio01"
    assert envelope["error"]["kind"] == "connection_error" and envelope["retryable"] is True


def test_stop_by_experiment_is_queued_for_the_assigned_workers(cluster, leader_client):
    result = leader_client.simulate_post("/api/workers/$broadcast/jobs/stop/experiments/exp1")
    assert result.status_code == 202 and result.json["status"] == "success"
    args, _ = queued(result.json["task_id"])
    assert args == ("POST", ["pio01", "pio03"], "/unit_api/jobs/stop", {"experiment": "exp1"})


def test_update_and_single_stop_publish_set_messages(cluster, leader_client, mqtt_recorder):
    root = f"{cluster.prefix}pioreactor"
    update = leader_client.simulate_patch("/api/workers/pio01/jobs/update/job_name/stirring/experiments/exp1",
                                          json={"settings": {"target_rpm": 300}})
    assert update.status_code == 202 and update.json == {"status": "accepted"}
    assert mqtt_recorder.wait_for(f"{root}/pio01/exp1/stirring/target_rpm/set") == b"300"
    leader_client.simulate_patch("/api/units/$broadcast/jobs/update/job_name/stirring/experiments/exp1",
                                 json={"settings": {"enable_dodging_od": False}})
    assert mqtt_recorder.wait_for(f"{root}/$broadcast/exp1/stirring/enable_dodging_od/set") == b"False"
    stop = leader_client.simulate_post("/api/workers/pio01/jobs/stop/job_name/stirring/experiments/exp1")
    assert stop.status_code == 202 and stop.json == {"status": "accepted"}
    assert mqtt_recorder.wait_for(f"{root}/pio01/exp1/stirring/$state/set") == b"disconnected"


def test_update_needs_settings_and_a_known_unit(cluster, leader_client):
    path = "/api/workers/{}/jobs/update/job_name/stirring/experiments/exp1"
    assert leader_client.simulate_patch(path.format("pio01"), json={"settings": [1]}).status_code == 400
    assert leader_client.simulate_patch(path.format("nobody"), json={"settings": {"a": 1}}).status_code == 400


def test_blink_asks_each_active_worker_to_flicker(cluster, leader_client, mqtt_recorder):
    result = leader_client.simulate_post("/api/workers/$broadcast/blink")
    assert result.status_code == 202 and result.json == {"status": "success"}
    for unit in ("pio01", "pio02"):
        mqtt_recorder.wait_for(f"{cluster.prefix}pioreactor/{unit}/$experiment/monitor/flicker_led_response_okay")


def test_worker_descriptor_proxy_refuses_broadcast_and_reports_unreachable_workers(cluster, leader_client):
    refused = leader_client.simulate_get("/api/workers/$broadcast/jobs/descriptors")
    assert refused.status_code == 400
    unreachable = leader_client.simulate_get("/api/workers/pio01/automations/descriptors/dosing")
    assert unreachable.status_code == 502 and unreachable.json["status"] == 502


def test_cluster_clock_needs_an_iso_time(cluster, leader_client):
    missing = leader_client.simulate_post("/api/system/utc_clock", json={})
    assert missing.status_code == 400 and "'utc_clock_time'" in missing.json["cause"]
    wrong = leader_client.simulate_post("/api/system/utc_clock", json={"utc_clock_time": "yesterday"})
    assert wrong.status_code == 400 and "'utc_clock_time'" in wrong.json["cause"]
    ok = leader_client.simulate_post("/api/system/utc_clock", json={"utc_clock_time": "2026-01-31T12:45:00Z"})
    assert ok.status_code == 202
    args, _ = queued(ok.json["task_id"])
    assert args[1] == sorted([cluster.unit, "pio01", "pio02", "pio03"])
    assert args[3] == {"utc_clock_time": "2026-01-31T12:45:00Z"}
