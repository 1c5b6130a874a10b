"""This unit's config files over /unit_api: merged view, unit-specific text, the shared copy."""

import json

import falcon.testing
import pytest

from reactorkit.api.app import create_app
from reactorkit.core.config import set_config
from reactorkit.core.plugins import Registry, make_plugin_manager

SHARED = "[cluster.topology]\nleader_hostname = leader\nleader_address = 127.0.0.1\n\n[mqtt]\nbroker_port = 1883\n"


@pytest.fixture
def unit(tmp_path, monkeypatch):
    monkeypatch.setenv("DOT_PIOREACTOR", str(tmp_path))
    for key in ("GLOBAL_CONFIG", "LOCAL_CONFIG"):
        monkeypatch.delenv(key, raising=False)
    (tmp_path / "config.ini").write_text(SHARED + "\n[stirring.config]\ninitial_target_rpm = 500\n")
    set_config(None)
    app = create_app(Registry.from_plugins(make_plugin_manager(load_installed=False)[0]), unit="worker1", leader=False)
    yield falcon.testing.TestClient(app), tmp_path
    set_config(None)


def test_merged_config_puts_the_unit_file_over_the_shared_one(unit):
    client, root = unit
    (root / "unit_config.ini").write_text("[stirring.config]\ninitial_target_rpm = 650\n")
    merged = client.simulate_get("/unit_api/config/merged").json
    assert merged["stirring.config"]["initial_target_rpm"] == "650"
    assert merged["cluster.topology"]["leader_hostname"] == "leader"


def test_specific_config_is_read_and_replaced(unit):
    client, root = unit
    assert client.simulate_get("/unit_api/config/specific").text == ""
    result = client.simulate_patch("/unit_api/config/specific", json={"code": "[leds]\nB = white_light\n"})
    assert result.json == {"status": "success"}
    assert client.simulate_get("/unit_api/config/specific").text == "[leds]\nB = white_light\n"
    assert client.simulate_post("/unit_api/config/specific", json={"code": "[leds]\nC = uv\n"}).status_code == 200


def test_bad_ini_is_a_400_and_leaves_the_file_untouched(unit):
    client, root = unit
    (root / "unit_config.ini").write_text("[leds]\nB = white_light\n")
    result = client.simulate_patch("/unit_api/config/specific", json={"code": "[leds]\nB = 1\nB = 2\n"})
    assert result.status_code == 400
    assert "B" in result.json["cause"] and result.json["remediation"]
    assert (root / "unit_config.ini").read_text() == "[leds]\nB = white_light\n"
    assert client.simulate_patch("/unit_api/config/specific", json={"code": 7}).status_code == 400


def test_the_leader_can_push_the_shared_config(unit):
    client, root = unit
    new = SHARED + "\n[od_reading.config]\nsamples_per_second = 0.1\n"
    assert client.simulate_put("/unit_api/config/shared", json={"code": new}).status_code == 200
    assert (root / "config.ini").read_text() == new
    refused = client.simulate_put("/unit_api/config/shared", json={"code": "[mqtt]\n"})
    assert refused.status_code == 400 and "leader_hostname" in refused.json["cause"]
    assert (root / "config.ini").read_text() == new


@pytest.mark.integration
def test_saving_the_shared_config_on_the_leader_reaches_the_workers(tmp_path):
    import httpx

    from reactorkit.core.testing import LocalCluster

    with LocalCluster(tmp_path, ["worker1"]) as cluster:
        cluster.add_workers()
        code = cluster.config_text() + "\n[mqtt]\nbroker_port = 1883\n\n[stirring.config]\ninitial_target_rpm = 444\n"
        reply = httpx.patch(f"{cluster.leader.url}/api/config/shared", json={"code": code}, timeout=30,
                            headers=cluster.headers).json()
        assert reply["status"] == "success"
        assert reply["sync"]["worker1"]["ok"] is True
        worker = cluster.workers[0]
        assert (worker.root / "config.ini").read_text() == code
        merged = httpx.get(f"{worker.url}/unit_api/config/merged", headers=cluster.headers).json()
        assert merged["stirring.config"]["initial_target_rpm"] == "444"


def test_a_save_that_would_refuse_itself_is_a_400_and_leaves_the_files(unit):
    client, root = unit
    shared_before = (root / "config.ini").read_text()
    low = "[stirring.config]\ninitial_target_rpm = 500\ntarget_rpm_tolerance = 10\n[api]\nmax_body_bytes = 100\n"
    assert len(json.dumps({"code": low})) > 100  # the body carrying it
    result = client.simulate_patch("/unit_api/config/specific", json={"code": low})
    assert result.status_code == 400 and "[api] max_body_bytes would be 100" in result.json["cause"]
    assert not (root / "unit_config.ini").exists()
    pushed = client.simulate_put("/unit_api/config/shared", json={"code": SHARED + "[api]\nmax_body_bytes = 100\n"})
    assert pushed.status_code == 400 and "max_body_bytes" in pushed.json["cause"]
    assert (root / "config.ini").read_text() == shared_before
    fits = "[api]\nmax_body_bytes = 2000\n"
    assert client.simulate_patch("/unit_api/config/specific", json={"code": fits}).status_code == 200
    assert (root / "unit_config.ini").read_text() == fits
