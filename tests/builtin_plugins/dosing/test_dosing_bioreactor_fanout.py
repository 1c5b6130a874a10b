"""PATCH /api/workers/{u}/bioreactor/update/experiments/{exp}: the leader's async fan-out of the workers' bioreactor
PATCH — checked on an in-process leader, then on a real leader + two workers (gunicorn, rq, Redis, mosquitto)."""

import uuid

import falcon.testing
import httpx
import pytest

from reactorkit.core.auth.client import cluster_headers
from reactorkit.core.config import set_config
from reactorkit.core.testing import LocalCluster, free_port

pytestmark = pytest.mark.integration

ROUTE = "/api/workers/{}/bioreactor/update/experiments/{}"
_ENV_KEYS = ("DOT_PIOREACTOR", "HOSTNAME", "MQTT_TOPIC_PREFIX", "REDIS_URL", "HARDWARE")


@pytest.fixture
def leader(unit_env, monkeypatch):
    from reactorkit.api.app import create_app
    from reactorkit.core.leader_db import LeaderDB
    from reactorkit.core.plugins import Registry

    unit_env.unit = f"leader{uuid.uuid4().hex[:6]}"
    env = unit_env.env()
    for key in _ENV_KEYS:
        monkeypatch.setenv(key, env[key])
    unit_env.write_config(f"[cluster.topology]\nleader_hostname = {unit_env.unit}\nleader_address = 127.0.0.1\n")
    set_config(None)
    db = LeaderDB()
    db.execute("INSERT INTO experiments (experiment, created_at) VALUES ('exp1', '2026-01-01T00:00:00.000Z')")
    db.add_worker("worker1")
    db.assign("worker1", "exp1")
    db.add_worker("worker2")  # in the inventory, assigned to nothing
    yield falcon.testing.TestClient(create_app(Registry.installed(), unit=unit_env.unit, leader=True))
    try:
        from reactorkit.core.tasks import get_queue

        get_queue(unit_env.unit).delete(delete_jobs=True)
    except Exception:
        pass
    set_config(None)


@pytest.mark.parametrize("body, named", [
    ({}, "values"),
    ({"values": {}}, "values"),
    ({"values": {"height_mm": 3}}, "height_mm"),
    ({"values": {"current_volume_ml": -1}}, "current_volume_ml"),
    ({"values": {"alt_media_fraction": 2}}, "alt_media_fraction"),
])
def test_bad_bodies_are_400_naming_the_field(leader, body, named):
    reply = leader.simulate_patch(ROUTE.format("worker1", "exp1"), json=body)
    assert reply.status_code == 400, reply.text
    assert named in reply.json["cause"]


def test_targets_are_checked_before_anything_is_queued(leader):
    body = {"values": {"current_volume_ml": 12}}
    unknown = leader.simulate_patch(ROUTE.format("nobody", "exp1"), json=body)
    assert unknown.status_code == 400 and "nobody" in unknown.json["error"]
    nobody_assigned = leader.simulate_patch(ROUTE.format("$broadcast", "exp_empty"), json=body)
    assert nobody_assigned.status_code == 404
    accepted = leader.simulate_patch(ROUTE.format("worker1", "exp1"), json=body)
    assert accepted.status_code == 202 and accepted.json["status"] == "accepted"
    assert accepted.json["result_url_path"] == f"/unit_api/task_results/{accepted.json['task_id']}"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    down = f"127.0.0.1:{free_port()}"  # in the inventory but not running
    with LocalCluster(tmp_path_factory.mktemp("bioreactor"), ["worker1", "worker2"],
                      extra_addresses={"worker3": down}) as cluster:
        cluster.add_workers("worker1", "worker2", "worker3", experiment="exp1")
        yield cluster


def values(unit, experiment="exp1"):
    return httpx.get(f"{unit.url}/unit_api/bioreactor/experiments/{experiment}", timeout=10,
                     headers=cluster_headers(unit.root)).json()["values"]


def fan_out(cluster, unit, experiment, body, expect="succeeded"):
    accepted = httpx.patch(cluster.leader.url + ROUTE.format(unit, experiment), json=body, timeout=10,
                           headers=cluster.headers)
    assert accepted.status_code == 202, accepted.text
    done = cluster.wait_task(accepted.json())
    assert done["status"] == expect, done
    return done["result"]


def test_a_worker_s_bookkeeping_is_corrected_through_the_leader(cluster):
    worker1, worker2 = cluster.units["worker1"], cluster.units["worker2"]
    before = values(worker2)
    result = fan_out(cluster, "worker1", "exp1", {"values": {"current_volume_ml": 12.5, "alt_media_fraction": 0.25}})
    assert result == {"worker1": {"ok": True, "unit": "worker1", "value": {}}}  # "status": "success" stripped
    after = values(worker1)
    assert (after["current_volume_ml"], after["alt_media_fraction"]) == (12.5, 0.25)
    assert values(worker2) == before  # only the named worker
    assert values(worker1, "exp2")["current_volume_ml"] != 12.5  # only that experiment


def test_broadcast_reaches_every_assigned_worker_and_reports_the_one_that_is_off(cluster):
    result = fan_out(cluster, "$broadcast", "exp1", {"values": {"cumulative_media_added_ml": 3.0}}, expect="partial")
    assert sorted(result) == ["worker1", "worker2", "worker3"]
    assert result["worker1"]["ok"] and result["worker2"]["ok"]
    assert result["worker3"]["ok"] is False and result["worker3"]["error"]["kind"] == "connection_error"
    for name in ("worker1", "worker2"):
        assert values(cluster.units[name])["cumulative_media_added_ml"] == 3.0


def test_a_value_the_worker_refuses_is_reported_and_changes_nothing(cluster):
    worker = cluster.units["worker2"]
    before = values(worker)
    result = fan_out(cluster, "worker2", "exp1", {"values": {"current_volume_ml": 500.0}},  # over the vial's capacity
                     expect="failed")
    envelope = result["worker2"]
    assert envelope["ok"] is False and envelope["status_code"] == 400
    assert envelope["error"]["kind"] == "http_error" and "current_volume_ml" in envelope["error"]["cause"]
    assert values(worker) == before
