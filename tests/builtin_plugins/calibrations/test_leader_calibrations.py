"""Leader ``/api/workers/{unit}/…`` calibration routes on a real local cluster (gunicorn + rq per unit).

Fan-outs answer 202 and their task holds one envelope per worker; sessions are
proxied synchronously to one worker, whose hardware actions run as tasks on
its own queue; the zipped calibrations of the workers are merged under
``<unit>/``.
"""

import io
import statistics
import zipfile

import httpx
import pytest
import yaml

from reactorkit.core.hardware.vessel import Vessel, VesselParameters, VesselState
from reactorkit.core.testing import LocalCluster

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with LocalCluster(tmp_path_factory.mktemp("calcluster"), ["worker1"], speedup=20) as cluster:
        cluster.add_workers("worker1")
        yield cluster


def api(cluster, method, path, **kwargs):
    headers = {**cluster.headers, **kwargs.pop("headers", {})}
    return httpx.request(method, cluster.leader.url + path, timeout=60, headers=headers, **kwargs)


def fan_out(cluster, method, path, expect="succeeded", **kwargs):
    accepted = api(cluster, method, path, **kwargs)
    assert accepted.status_code == 202, accepted.text
    done = cluster.wait_task(accepted.json())
    assert done["status"] == expect, done
    return done["result"]


PUMP = {
    "calibration_type": "simple_peristaltic_pump", "calibration_name": "lab-pump",
    "calibrated_on_pioreactor_unit": "worker1", "created_at": "2026-01-02T03:04:05.000000Z",
    "curve_data_": {"type": "poly", "coefficients": [0.55, 0.0]}, "x": "Duration", "y": "Volume",
    "recorded_data": {"x": [1.0, 2.0], "y": [0.55, 1.1]}, "hz": 250.0, "dc": 100.0, "voltage": -1.0,
}


def test_calibrations_fan_out_to_workers_as_tasks(cluster):
    created = fan_out(cluster, "POST", "/api/workers/worker1/calibrations/media_pump",
                      json={"calibration_data": yaml.safe_dump(PUMP)})
    assert created["worker1"]["ok"] is True
    assert created["worker1"]["value"]["path"].endswith("media_pump/lab-pump.yaml")

    fan_out(cluster, "PATCH", "/api/workers/$broadcast/active_calibrations/media_pump/lab-pump")
    active = fan_out(cluster, "GET", "/api/workers/$broadcast/active_calibrations")
    assert active["worker1"]["value"]["media_pump"]["calibration_name"] == "lab-pump"
    listed = fan_out(cluster, "GET", "/api/workers/worker1/calibrations/media_pump")
    assert [c["is_active"] for c in listed["worker1"]["value"]] == [True]

    missing = fan_out(cluster, "GET", "/api/workers/worker1/calibrations/media_pump/nothing", expect="failed")
    assert missing["worker1"]["ok"] is False and missing["worker1"]["status_code"] == 404

    archive = api(cluster, "GET", "/api/workers/$broadcast/zipped_calibrations")
    assert archive.status_code == 200 and archive.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(archive.content)) as zipped:
        assert zipped.namelist() == ["worker1/media_pump/lab-pump.yaml"]

    protocols = fan_out(cluster, "GET", "/api/workers/worker1/calibration_protocols")
    assert "media_pump_duration_based" in [p["id"] for p in protocols["worker1"]["value"]]


def test_unknown_units_and_broadcast_sessions_are_400(cluster):
    unknown = api(cluster, "GET", "/api/workers/nobody/calibrations")
    assert unknown.status_code == 400 and unknown.json()["status"] == 400
    broadcast = api(cluster, "POST", "/api/workers/$broadcast/calibrations/sessions",
                    json={"target_device": "od90", "protocol_name": "standards"})
    assert broadcast.status_code == 400 and "$broadcast" in broadcast.json()["error"]


def true_voltage(od600, samples=40):
    vessel = Vessel(VesselParameters(noise_fraction=0.0), VesselState(t=0.0, od=od600))
    return statistics.fmean(vessel.photodiode_voltages({2: "90"}, 80.0)[2] for _ in range(samples))


def test_od_session_through_the_leader_runs_on_the_worker(cluster):
    base = "/api/workers/worker1/calibrations/sessions"
    started = api(cluster, "POST", base, json={"target_device": "od90", "protocol_name": "standards"})
    assert started.status_code == 201, started.text
    sid = started.json()["session"]["session_id"]
    standards = [1.5, 0.6, 0.2]

    def answer(step):
        if step["step_id"] == "settings":
            return {"calibration_name": "via-leader", "ir_led_intensity": 80}
        if step["step_id"] == "place_standard":
            return {"od600": standards.pop(0)}
        if step["step_id"] == "next":
            return {"next": "another_standard" if standards else "blank"}
        return {}

    step = started.json()["step"]
    while step["step_type"] != "result":
        reply = api(cluster, "POST", f"{base}/{sid}/inputs", json={"inputs": answer(step)})
        assert reply.status_code == 200, reply.text
        step = reply.json()["step"]
    session = api(cluster, "GET", f"{base}/{sid}").json()["session"]
    assert session["status"] == "complete"
    assert session["result"]["calibrations"][0]["device"] == "od90"

    cal = fan_out(cluster, "GET", "/api/workers/worker1/calibrations/od90/via-leader")["worker1"]["value"]
    assert cal["is_active"] is True and cal["pioreactor_unit"] == "worker1"
    from reactorkit.core.curves import evaluate

    assert evaluate(cal["curve_data_"], 1.0) == pytest.approx(true_voltage(1.0), rel=0.05)

    aborted = api(cluster, "POST", f"{base}/{sid}/abort")
    assert aborted.status_code == 200 and aborted.json()["session"]["status"] == "complete"  # already ended
    assert api(cluster, "GET", f"{base}/not-a-session").status_code == 404


def test_session_actions_ran_as_tasks_on_the_workers_queue(cluster):
    log = (cluster.units["worker1"].root / "worker.log").read_text()
    assert "calibrations.actions.run_action" in log


def test_reads_are_cached_for_ten_seconds_and_writes_refresh_them(cluster):
    first = api(cluster, "GET", "/api/workers/worker1/estimators").json()
    again = api(cluster, "GET", "/api/workers/worker1/estimators").json()
    assert first["task_id"] == again["task_id"]
    fan_out(cluster, "DELETE", "/api/workers/worker1/active_estimators/od_fused")
    after_write = api(cluster, "GET", "/api/workers/worker1/estimators").json()
    assert after_write["task_id"] != first["task_id"]
    assert cluster.wait_task(after_write)["result"]["worker1"]["value"] == {}
