"""Two real units on this machine (leader + worker: own DOT_PIOREACTOR, port, gunicorn, rq worker):
run a job on the worker through the leader's /api, see it running, change a setting, stop it."""

import time

import httpx
import pytest

from reactorkit.core.testing import LocalCluster, MQTTRecorder, free_port

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    down = f"127.0.0.1:{free_port()}"  # a worker that is in the inventory but not running
    with LocalCluster(tmp_path_factory.mktemp("cluster"), ["worker1"], speedup=10,
                      extra_addresses={"worker2": down}) as cluster:
        cluster.add_workers("worker1", "worker2", experiment="exp1")
        yield cluster


@pytest.fixture(scope="module")
def recorder(cluster):
    recorder = MQTTRecorder(cluster.prefix)
    yield recorder
    recorder.close()


def api(cluster, method, path, **kwargs):
    headers = {**cluster.headers, **kwargs.pop("headers", {})}
    return httpx.request(method, cluster.leader.url + path, timeout=10, headers=headers, **kwargs)


def fan_out(cluster, method, path, expect="succeeded", **kwargs):
    """Call an async leader route and wait for its per-unit result (the task's status must be ``expect``)."""
    accepted = api(cluster, method, path, **kwargs)
    assert accepted.status_code == 202, accepted.text
    done = cluster.wait_task(accepted.json())
    assert done["status"] == expect, done
    if expect != "succeeded":  # the failed units are named in one error body
        failed = sorted(u for u, e in done["result"].items() if not e["ok"])
        assert all(u in done["error"] for u in failed) and done["cause"].startswith(f"{failed[0]}: ")
        assert done["remediation"]
    return done["result"]


def test_job_lifecycle_on_a_worker_through_the_leader(cluster, recorder):
    worker = cluster.units["worker1"]
    # one of the two targets is down: the task is partial, naming it
    result = fan_out(cluster, "POST", "/api/workers/$broadcast/jobs/run/job_name/stirring/experiments/exp1",
                     expect="partial", json={"options": {"target_rpm": 300}})
    assert result["worker1"] == {"ok": True, "unit": "worker1", "value": {"ok": True}}
    # the unit that is down is reported, without failing the call
    assert result["worker2"]["ok"] is False
    assert result["worker2"]["error"]["kind"] == "connection_error" and result["worker2"]["retryable"] is True

    state = f"{cluster.prefix}pioreactor/worker1/exp1/stirring/$state"
    recorder.wait_for(state, lambda p: p == b"ready", timeout=30)

    running = fan_out(cluster, "GET", "/api/workers/worker1/jobs/running")["worker1"]["value"]
    assert [(r["job_name"], r["experiment"], r["unit"]) for r in running] == [("stirring", "exp1", "worker1")]
    assert httpx.get(cluster.leader.url + "/unit_api/jobs/running", headers=cluster.headers).json() == []  # not on the leader

    update = api(cluster, "PATCH", "/api/workers/worker1/jobs/update/job_name/stirring/experiments/exp1",
                 json={"settings": {"target_rpm": 450}})
    assert update.status_code == 202 and update.json() == {"status": "accepted"}
    path = "/api/workers/worker1/jobs/settings/job_name/stirring/setting/target_rpm/experiments/exp1"
    deadline = time.monotonic() + 20
    while True:
        value = fan_out(cluster, "GET", path)["worker1"]
        if value.get("value") == {"target_rpm": 450.0}:
            break
        assert time.monotonic() < deadline, value
        time.sleep(0.2)
    settings = httpx.get(worker.url + "/unit_api/jobs/settings/job_name/stirring", headers=cluster.headers).json()["settings"]
    assert settings["target_rpm"] == 450.0

    stop = api(cluster, "POST", "/api/workers/worker1/jobs/stop/job_name/stirring/experiments/exp1")
    assert stop.status_code == 202
    recorder.wait_for(state, lambda p: p == b"disconnected", timeout=20)
    deadline = time.monotonic() + 10
    while httpx.get(worker.url + "/unit_api/jobs/running", headers=cluster.headers).json():
        assert time.monotonic() < deadline, "stirring still registered after the stop"
        time.sleep(0.1)


def test_a_settings_read_of_a_job_that_is_not_running_is_a_per_unit_404(cluster):
    result = fan_out(cluster, "GET", "/api/workers/worker1/jobs/settings/job_name/od_reading/experiments/exp1",
                     expect="failed")
    envelope = result["worker1"]
    assert envelope["ok"] is False and envelope["status_code"] == 404
    assert envelope["error"]["kind"] == "http_error" and envelope["retryable"] is False
    assert "od_reading" in envelope["error"]["message"]


def test_versions_and_clocks_of_every_unit(cluster):
    versions = fan_out(cluster, "GET", "/api/units/$broadcast/versions/app", expect="partial")
    assert sorted(versions) == ["leader", "worker1", "worker2"]
    assert versions["leader"]["ok"] and versions["worker1"]["ok"] and not versions["worker2"]["ok"]
    assert versions["worker1"]["value"]["version"] == versions["leader"]["value"]["version"]
    clocks = fan_out(cluster, "GET", "/api/units/worker1/system/utc_clock")
    assert clocks["worker1"]["value"]["clock_time"].endswith("Z")
    assert "status" not in clocks["worker1"]["value"]  # "status": "success" is stripped


def test_worker_descriptors_are_proxied(cluster):
    jobs = api(cluster, "GET", "/api/workers/worker1/jobs/descriptors")
    assert jobs.status_code == 200
    assert "stirring" in {j["job_name"] for j in jobs.json()}
    bad = api(cluster, "GET", "/api/workers/worker1/automations/descriptors/ph")
    assert bad.status_code == 400 and bad.json()["remediation"] == "Use one of: dosing, led, temperature."
