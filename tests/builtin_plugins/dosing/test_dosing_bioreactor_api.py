"""GET|PATCH /unit_api/bioreactor/experiments/{experiment} through the API app."""

import uuid

import falcon.testing
import pytest

import reactorkit.builtin_plugins.dosing as dosing
from reactorkit.api.app import create_app
from reactorkit.core.config import set_config
from reactorkit.core.plugins import Registry
from reactorkit.core.testing import MQTTRecorder

PATH = "/unit_api/bioreactor/experiments/{}"


@pytest.fixture
def prefix():
    return f"t{uuid.uuid4().hex[:10]}/"


@pytest.fixture
def api(plugin_manager, tmp_path, monkeypatch, prefix):
    monkeypatch.setenv("DOT_PIOREACTOR", str(tmp_path))
    monkeypatch.setenv("HOSTNAME", "testunit")
    monkeypatch.setenv("MQTT_TOPIC_PREFIX", prefix)
    (tmp_path / "config.ini").write_text("[bioreactor]\ninitial_volume_ml = 15\n")
    set_config(None)
    plugin_manager.register(dosing, name="dosing")
    yield falcon.testing.TestClient(create_app(Registry.from_plugins(plugin_manager), unit="testunit", leader=False))
    set_config(None)


def test_get_gives_the_defaults_of_a_new_experiment(api):
    response = api.simulate_get(PATH.format("exp1"))
    assert response.status_code == 200
    assert response.json == {"values": {
        "current_volume_ml": 15.0, "efflux_tube_volume_ml": 14.0, "alt_media_fraction": 0.0,
        "cumulative_media_added_ml": 0.0, "cumulative_alt_media_added_ml": 0.0, "cumulative_waste_removed_ml": 0.0,
    }}


def test_patch_updates_only_the_given_values_of_that_experiment(api):
    response = api.simulate_patch(PATH.format("exp1"), json={"values": {"current_volume_ml": 12.5,
                                                                        "alt_media_fraction": 0.1}})
    assert response.status_code == 200
    assert response.json == {"status": "success"}
    values = api.simulate_get(PATH.format("exp1")).json["values"]
    assert values["current_volume_ml"] == 12.5
    assert values["alt_media_fraction"] == 0.1
    assert values["efflux_tube_volume_ml"] == 14.0
    assert api.simulate_get(PATH.format("exp2")).json["values"]["current_volume_ml"] == 15.0


@pytest.mark.parametrize("body, field", [
    ({"values": {"current_volume_ml": -2}}, "current_volume_ml"),
    ({"values": {"alt_media_fraction": 1.2}}, "alt_media_fraction"),
    ({"values": {"height": 3}}, "height"),
    ({"values": {"cumulative_media_added_ml": "lots"}}, "cumulative_media_added_ml"),
    ({"values": {"current_volume_ml": 500}}, "current_volume_ml"),
    ({"current_volume_ml": 12}, None),
    ([1, 2], None),
])
def test_bad_bodies_get_400_in_the_contract_shape_and_change_nothing(api, body, field):
    response = api.simulate_patch(PATH.format("exp1"), json=body)
    assert response.status_code == 400
    assert response.json["error"] == "Invalid request body."
    assert response.json["status"] == 400
    assert "remediation" in response.json
    if field:
        assert field in response.json["cause"]
    assert api.simulate_get(PATH.format("exp1")).json["values"]["current_volume_ml"] == 15.0


def test_malformed_json_is_an_invalid_body(api):
    response = api.simulate_patch(PATH.format("exp1"), body=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json["error"].startswith("The body is not valid JSON (line 1, column")


@pytest.mark.integration
def test_patch_publishes_the_new_values_retained(api, prefix):
    recorder = MQTTRecorder(prefix)
    try:
        api.simulate_patch(PATH.format("exp1"), json={"values": {"current_volume_ml": 13.25}})
        topic = f"{prefix}pioreactor/testunit/exp1/bioreactor/current_volume_ml"
        assert recorder.wait_for(topic, timeout=30) == b"13.25"
        late = MQTTRecorder(prefix)  # a later subscriber gets the retained value
        try:
            assert late.wait_for(topic, timeout=30) == b"13.25"
        finally:
            late.close()
    finally:
        recorder.publish(f"{prefix}pioreactor/testunit/exp1/bioreactor/current_volume_ml", b"", retain=True)
        recorder.close()
