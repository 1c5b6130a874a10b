"""End to end on this machine: a leader (gunicorn, rq worker, mqtt_to_db_streaming) and a worker (gunicorn, rq
worker) with their own ports and $DOT_PIOREACTOR. Jobs started on the worker through the leader's /api publish
readings over MQTT; they arrive in the leader's time-series and log endpoints; unassigning stops them."""

import time

import httpx
import pytest

from reactorkit.core.testing import LocalCluster, MQTTRecorder, pio_command

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    import subprocess

    with LocalCluster(tmp_path_factory.mktemp("leader_cluster"), ["worker1"], speedup=10) as cluster:
        log = open(cluster.leader.root / "mqtt_to_db.log", "wb")
        writer = subprocess.Popen(pio_command("run", "mqtt_to_db_streaming"), env=cluster.leader.env, stdout=log,
                                  stderr=subprocess.STDOUT)
        cluster.leader.procs.append(writer)
        yield cluster


@pytest.fixture(scope="module")
def recorder(cluster):
    recorder = MQTTRecorder(cluster.prefix)
    recorder.wait_for(f"{cluster.prefix}pioreactor/leader/$experiment/mqtt_to_db_streaming/$state",
                      lambda p: p == b"ready", timeout=30)
    yield recorder
    recorder.close()


def api(cluster, method, path, **kwargs):
    headers = {**cluster.headers, **kwargs.pop("headers", {})}
    response = httpx.request(method, cluster.leader.url + path, timeout=15, headers=headers, **kwargs)
    return response


def poll(fetch, accept, timeout=60.0):
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if accept(value):
            return value
        assert time.monotonic() < deadline, f"gave up waiting; last value: {value!r:.500}"
        time.sleep(0.5)


def test_readings_of_a_worker_arrive_in_the_leaders_endpoints(cluster, recorder):
    assert api(cluster, "POST", "/api/experiments", json={"experiment": "exp1", "description": "e2e"}).status_code == 201
    assert api(cluster, "PUT", "/api/workers", json={"pioreactor_unit": "worker1", "model_name": "pioreactor_20ml",
                                                      "model_version": "1.5"}).status_code == 201
    assert api(cluster, "PUT", "/api/experiments/exp1/workers", json={"pioreactor_unit": "worker1"}).status_code == 200
    assignment = recorder.wait_for(f"{cluster.prefix}pioreactor/worker1/$experiment/assignment", timeout=10)
    assert b'"experiment": "exp1"' in assignment

    for job, options in (("stirring", {"target_rpm": 400}), ("od_reading", {})):
        accepted = api(cluster, "POST", f"/api/workers/worker1/jobs/run/job_name/{job}/experiments/exp1",
                       json={"options": options})
        assert accepted.status_code == 202, accepted.text
        done = cluster.wait_task(accepted.json())
        assert done["status"] == "succeeded" and done["result"]["worker1"]["ok"], done

    rpm = poll(lambda: api(cluster, "GET", "/api/experiments/exp1/time_series/stirring_rates/measured_rpm").json(),
               lambda body: body["series"] == ["worker1"] and len(body["data"][0]) >= 2)
    assert all(0 < p["y"] < 2000 for p in rpm["data"][0])

    od = poll(lambda: api(cluster, "GET", "/api/experiments/exp1/time_series/od_readings").json(),
              lambda body: body["series"] and len(body["data"][0]) >= 3)
    assert od["series"] == ["worker1-2"]
    assert [p["x"] for p in od["data"][0]] == sorted(p["x"] for p in od["data"][0])
    per_unit = api(cluster, "GET", "/api/workers/worker1/experiments/exp1/time_series/od_readings").json()
    assert per_unit["series"] == ["worker1-2"]



def test_logs_of_the_worker_and_of_the_ui_arrive_in_the_log_endpoints(cluster, recorder):
    # a setting change makes the stirring job log "Updated target_rpm …" (INFO) over MQTT
    update = api(cluster, "PATCH", "/api/workers/worker1/jobs/update/job_name/stirring/experiments/exp1",
                 json={"settings": {"target_rpm": 450}})
    assert update.status_code == 202
    posted = api(cluster, "POST", "/api/workers/worker1/experiments/exp1/logs",
                 json={"message": "Added fresh media by hand", "level": "NOTICE", "source_": "ui"})
    assert posted.status_code == 202
    logs = poll(lambda: api(cluster, "GET", "/api/workers/worker1/experiments/exp1/logs").json(),
                lambda rows: {"stirring", "ui"} <= {r["task"] for r in rows})
    assert all(r["pioreactor_unit"] in ("worker1", "$broadcast") and r["experiment"] == "exp1" for r in logs)
    ui = next(r for r in logs if r["task"] == "ui")
    assert (ui["message"], ui["level"], ui["source"]) == ("Added fresh media by hand", "NOTICE", "ui")
    recent = api(cluster, "GET", "/api/experiments/exp1/recent_logs").json()
    assert any("target_rpm" in r["message"] for r in recent)


def test_unassigning_stops_the_workers_jobs(cluster, recorder):
    state = f"{cluster.prefix}pioreactor/worker1/exp1/stirring/$state"
    recorder.wait_for(state, lambda p: p == b"ready", timeout=30)
    result = api(cluster, "DELETE", "/api/experiments/exp1/workers")
    assert result.status_code == 202
    recorder.wait_for(state, lambda p: p == b"disconnected", timeout=40)
    assert api(cluster, "GET", "/api/workers/worker1/experiment").status_code == 404
    history = api(cluster, "GET", "/api/experiments/exp1/historical_worker_assignments").json()
    assert history[0]["pioreactor_unit"] == "worker1" and history[0]["is_currently_assigned_to_experiment"] == 0


def test_deleting_the_experiment_runs_as_a_task_on_the_leader(cluster):
    accepted = api(cluster, "DELETE", "/api/experiments/exp1")
    assert accepted.status_code == 202
    done = cluster.wait_task(accepted.json())
    assert done["status"] == "succeeded" and done["result"]["deleted"] is True, done
    assert api(cluster, "GET", "/api/experiments/exp1").status_code == 404
    assert api(cluster, "GET", "/api/experiments/exp1/time_series/od_readings").status_code == 404
    db = cluster.leader_db()
    try:
        assert db.query("SELECT count(*) AS n FROM od_readings WHERE experiment = 'exp1'")[0]["n"] == 0
    finally:
        db.close()


def test_the_leader_survives_bad_requests(cluster):
    bad = api(cluster, "POST", "/api/experiments", content=b"{nope", headers={"content-type": "application/json"})
    assert bad.status_code == 400 and bad.json()["status"] == 400
    assert api(cluster, "GET", "/api/experiments/exp1/time_series/od_readings",
               params={"target_points": "0"}).status_code == 400
    assert api(cluster, "GET", "/api/not/a/route").json()["status"] == 404
    assert api(cluster, "GET", "/api/experiments").status_code == 200
