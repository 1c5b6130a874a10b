"""The leader's USB fan-outs and the hardware check on a real leader + worker (gunicorn, rq, Redis) of this machine.

Whatever drives this machine has, the answers must agree with each unit's own /unit_api/usb, and an action never
reports a success that did not happen (the units run the simulated backend: system commands are off).
"""

import httpx
import pytest

from reactorkit.core.testing import LocalCluster

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with LocalCluster(tmp_path_factory.mktemp("usb"), ["worker1"]) as cluster:
        cluster.add_workers()
        yield cluster


def run(cluster, method, path, **kwargs):
    headers = {**cluster.headers, **kwargs.pop("headers", {})}
    accepted = httpx.request(method, cluster.leader.url + path, timeout=10, headers=headers, **kwargs)
    assert accepted.status_code == 202, accepted.text
    done = cluster.wait_task(accepted.json(), timeout=60)
    assert done["status"] == "succeeded", done
    return done["result"]


def test_broadcast_usb_status_is_each_units_own(cluster):
    result = run(cluster, "GET", "/api/units/$broadcast/usb")
    assert sorted(result) == ["leader", "worker1"]
    for name, envelope in result.items():
        assert envelope["ok"] is True, envelope
        own = httpx.get(cluster.units[name].url + "/unit_api/usb", timeout=10, headers=cluster.headers).json()
        assert envelope["value"]["present"] == own["present"]
        assert [d["device"] for d in envelope["value"]["drives"]] == [d["device"] for d in own["drives"]]
    artifacts = run(cluster, "GET", "/api/units/worker1/usb/artifacts")["worker1"]
    assert artifacts["ok"] is True and set(artifacts["value"]) == {"drives", "artifacts"}


@pytest.mark.parametrize("action", ["mount", "eject"])
def test_usb_actions_off_a_pi_never_report_a_success(cluster, action):
    envelope = run(cluster, "POST", f"/api/units/worker1/usb/{action}")["worker1"]
    assert envelope["ok"] is False, envelope
    if envelope["error"]["kind"] == "http_error":  # nothing to act on (the usual case)
        assert envelope["status_code"] == 409 and "USB" in envelope["error"]["message"]
    else:  # a drive is there, but system commands are off on the simulated backend
        assert envelope["error"]["kind"] == "task_failed" and "disabled" in envelope["error"]["message"]


def test_the_hardware_check_on_a_worker_is_skipped_with_the_reason(cluster):
    worker = cluster.units["worker1"]
    accepted = httpx.post(worker.url + "/unit_api/hardware/check",
                          json={"model_name": "pioreactor_40ml", "model_version": "1.5"}, timeout=10,
                          headers=cluster.headers).json()
    done = cluster.wait_task(accepted, unit="worker1")
    assert done["status"] == "succeeded", done
    assert done["result"]["status"] == "skipped" and done["result"]["unit"] == "worker1"
    assert "simulated" in done["result"]["reason"]
