"""A profile runs at speed-up against a real local cluster (gunicorn + rq per unit, stirring on a worker)."""

import json
import textwrap

import httpx
import pytest

pytestmark = pytest.mark.integration

EXPERIMENT = "profile_exp"
PROFILE = textwrap.dedent("""\
    version: "1.0"
    experiment_profile_name: stir and stop
    inputs:
      rpm: 300
    common:
      jobs:
        stirring:
          actions:
            - {type: start, t: 0, options: {target_rpm: "${{ rpm }}"}}
            - {type: update, t: 1h, options: {target_rpm: 550}}
            - {type: log, t: 1.5h, options: {message: "target is ${{ ::stirring:target_rpm }} RPM"}}
            - {type: stop, t: 2h}
        od_reading:
          actions:
            - {type: start, t: 0}
            - {type: stop, t: 2h}
""")


def start_cluster_and_profile(cluster, unit_env, text):
    """Start the cluster at 720× speed-up, assign its worker, save and run the profile; returns the worker name."""
    unit_env.speedup = 720  # 1 h of profile time = 5 s
    for node in cluster.nodes:
        node.env["REACTORKIT_SPEEDUP"] = "720"
    cluster.start()
    worker = cluster.workers[0].name
    db = cluster.leader_db()
    db.execute("INSERT INTO experiments (experiment, created_at, description) VALUES (?, ?, '')",
               (EXPERIMENT, "2026-01-01T00:00:00.000Z"))
    db.add_worker(worker)
    db.assign(worker, EXPERIMENT)
    leader = cluster.leader
    created = httpx.post(f"{leader.url}/api/experiment_profiles", headers=cluster.headers, json={"filename": "stir.yaml", "body": text})
    assert created.status_code == 200, created.text
    fullpath = httpx.get(f"{leader.url}/api/experiment_profiles", headers=cluster.headers).json()[0]["fullpath"]
    accepted = httpx.post(f"{leader.url}/unit_api/jobs/run/job_name/experiment_profile", headers=cluster.headers,
                          json={"args": ["execute", fullpath, EXPERIMENT]})
    assert accepted.status_code == 202, accepted.text
    assert cluster.wait_task(accepted.json(), unit=leader.name)["status"] == "succeeded"
    return worker


def test_profile_starts_updates_and_stops_stirring_at_speed_up(local_cluster, unit_env, mqtt_recorder):
    cluster = local_cluster
    worker = start_cluster_and_profile(cluster, unit_env, PROFILE)
    leader = cluster.leader

    def topic(unit, *parts):
        return "/".join((f"{unit_env.prefix}pioreactor", unit, EXPERIMENT, *parts))

    # the worker's stirring job is started with the input's value, then updated at hour 1
    mqtt_recorder.wait_for(topic(worker, "stirring", "target_rpm"), lambda p: p and float(p) == 300.0, timeout=30)
    mqtt_recorder.wait_for(topic(worker, "stirring", "target_rpm"), lambda p: p and float(p) == 550.0, timeout=30)
    log = mqtt_recorder.wait_for(topic(worker, "logs", "experiment_profile", "notice"), timeout=30)
    assert json.loads(log)["message"] == "target is 550 RPM"
    mqtt_recorder.wait_for(topic(worker, "stirring", "$state"), lambda p: p == b"disconnected", timeout=30)
    # od_reading ran alongside (readings published) and was stopped at hour 2 too
    assert mqtt_recorder.wait_for(topic(worker, "od_reading", "ods"), lambda p: bool(p), timeout=30)
    mqtt_recorder.wait_for(topic(worker, "od_reading", "$state"), lambda p: p == b"disconnected", timeout=30)
    # it ran as the profile's job: its source is experiment_profile/<id>
    profile_topics = [t for t, *_ in mqtt_recorder.messages if t.startswith(topic(leader.name, "experiment_profile"))]
    name_topic = next(t for t in profile_topics if t.endswith("/experiment_profile_name"))
    job_id = name_topic.split("/")[-2]
    assert mqtt_recorder.values(name_topic)[0] == b"stir and stop"
    # the profile ends by itself after its last action
    mqtt_recorder.wait_for(topic(leader.name, "experiment_profile", job_id, "$state"),
                           lambda p: p == b"disconnected", timeout=30)

    recent = httpx.get(f"{leader.url}/api/experiments/{EXPERIMENT}/experiment_profiles/recent", headers=cluster.headers).json()
    assert [r["experiment_profile_name"] for r in recent] == ["stir and stop"]
    assert httpx.get(f"{leader.url}/api/experiments/{EXPERIMENT}/experiment_profiles/running", headers=cluster.headers).json() == []
    jobs = httpx.get(f"{cluster.workers[0].url}/unit_api/jobs", headers=cluster.headers).json()
    assert {j["job_source"] for j in jobs if j["job_name"] == "stirring"} <= {f"experiment_profile/{job_id}"}


def test_stopping_a_profile_early_stops_the_jobs_it_started(local_cluster, unit_env, mqtt_recorder):
    text = PROFILE.replace("t: 2h}", "t: 100h}")  # both stops far away
    worker = start_cluster_and_profile(local_cluster, unit_env, text)
    leader = local_cluster.leader
    state = "/".join((f"{unit_env.prefix}pioreactor", worker, EXPERIMENT, "stirring", "$state"))
    mqtt_recorder.wait_for(state, lambda p: p == b"ready", timeout=30)
    running = httpx.get(f"{leader.url}/api/experiments/{EXPERIMENT}/experiment_profiles/running", headers=local_cluster.headers).json()
    assert [r["settings"]["experiment_profile_name"] for r in running] == ["stir and stop"]

    stop = httpx.post(f"{leader.url}/unit_api/jobs/stop", headers=local_cluster.headers, json={"job_id": running[0]["job_id"]})
    assert local_cluster.wait_task(stop.json(), unit=leader.name)["status"] == "succeeded"
    mqtt_recorder.wait_for(state, lambda p: p == b"disconnected", timeout=30)
    mqtt_recorder.wait_for(state.replace("/stirring/", "/od_reading/"), lambda p: p == b"disconnected", timeout=30)
    assert httpx.get(f"{leader.url}/api/experiments/{EXPERIMENT}/experiment_profiles/running", headers=local_cluster.headers).json() == []
