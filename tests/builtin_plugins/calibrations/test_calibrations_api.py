"""``/unit_api`` calibration, estimator and protocol routes (domain facts §6.3, §6.4), in-process."""

import io
import zipfile

import pytest
import yaml

from reactorkit.core import calibration_store as store


def pump_yaml(name="media-1", slope=0.5, **extra):
    record = {
        "calibration_type": "simple_peristaltic_pump", "calibration_name": name,
        "calibrated_on_pioreactor_unit": "pio01", "created_at": "2026-01-02T03:04:05.000000Z",
        "curve_data_": {"type": "poly", "coefficients": [slope, 0.0]}, "x": "Duration", "y": "Volume",
        "recorded_data": {"x": [1.0, 2.0], "y": [slope, 2 * slope]}, "hz": 250.0, "dc": 100.0, "voltage": -1.0,
    }
    record.update(extra)
    return yaml.safe_dump(record, sort_keys=False)


def assert_error_shape(result, status):
    assert result.status_code == status
    assert set(result.json) >= {"error", "cause", "status"}
    assert result.json["status"] == status


def test_create_list_get_activate_and_delete_a_calibration(client, cal_env):
    created = client.simulate_post("/unit_api/calibrations/media_pump", json={"calibration_data": pump_yaml()})
    assert created.status_code == 201
    assert created.json["msg"] == "Calibration created successfully."
    assert created.json["path"].endswith("storage/calibrations/media_pump/media-1.yaml")

    listed = client.simulate_get("/unit_api/calibrations").json
    assert list(listed) == ["media_pump"]
    assert listed["media_pump"][0]["is_active"] is False  # POST activates only with set_as_active
    assert listed["media_pump"][0]["pioreactor_unit"] == cal_env.unit

    assert client.simulate_patch("/unit_api/active_calibrations/media_pump/media-1").json == {"status": "success"}
    one = client.simulate_get("/unit_api/calibrations/media_pump/media-1").json
    assert one["is_active"] is True and one["curve_data_"]["coefficients"] == [0.5, 0.0]
    active = client.simulate_get("/unit_api/active_calibrations").json
    assert active["media_pump"]["calibration_name"] == "media-1"
    assert client.simulate_get("/unit_api/calibrations/media_pump").json[0]["is_active"] is True

    assert client.simulate_delete("/unit_api/active_calibrations/media_pump").json == {"status": "success"}
    assert client.simulate_get("/unit_api/active_calibrations").json == {}

    deleted = client.simulate_delete("/unit_api/calibrations/media_pump/media-1")
    assert deleted.status_code == 200
    assert deleted.json["msg"] == "Calibration 'media-1' for device 'media_pump' deleted successfully."
    assert_error_shape(client.simulate_get("/unit_api/calibrations/media_pump/media-1"), 404)


def test_create_with_set_as_active_activates_and_stores_the_yaml_verbatim(client):
    text = "# weighed on the lab scale\n" + pump_yaml()
    result = client.simulate_post("/unit_api/calibrations/media_pump",
                                  json={"calibration_data": text, "set_as_active": True})
    assert result.status_code == 201
    with open(result.json["path"]) as fh:
        assert fh.read() == text
    assert store.active_calibrations() == {"media_pump": "media-1"}


@pytest.mark.parametrize("body, field", [
    ({"calibration_data": "calibration_name: [unclosed"}, "calibration_data"),
    ({"calibration_data": pump_yaml(recorded_data={"x": [1, 2, 3], "y": [1]})}, "recorded_data"),
    ({"calibration_data": pump_yaml(curve_data_={"type": "wiggly"})}, "curve_data_"),
    ({"calibration_data": pump_yaml(calibration_type="simple_stirring")}, "calibration_type"),
    ({"calibration_data": "- just\n- a list\n"}, None),
    ({}, None),
    ({"calibration_data": pump_yaml(), "set_as_active": "yes"}, None),
])
def test_bad_calibrations_are_400_in_the_error_shape_and_leave_files_untouched(client, body, field):
    good = client.simulate_post("/unit_api/calibrations/media_pump",
                                json={"calibration_data": pump_yaml(slope=0.7), "set_as_active": True})
    path = good.json["path"]
    with open(path, "rb") as fh:
        before = fh.read()
    result = client.simulate_post("/unit_api/calibrations/media_pump", json=body)
    assert_error_shape(result, 400)
    if field:
        assert field in result.json["error"]
    with open(path, "rb") as fh:
        assert fh.read() == before
    assert store.active_calibrations() == {"media_pump": "media-1"}
    assert len(client.simulate_get("/unit_api/calibrations/media_pump").json) == 1


def test_a_body_that_is_not_json_is_invalid(client):
    result = client.simulate_post("/unit_api/calibrations/media_pump", body="{nope",
                                  headers={"content-type": "application/json"})
    assert_error_shape(result, 400)
    assert result.json["error"].startswith("The body is not valid JSON (line 1, column")


def test_unknown_names_are_404_and_unsafe_names_400(client):
    assert_error_shape(client.simulate_patch("/unit_api/active_calibrations/media_pump/nothing"), 404)
    assert_error_shape(client.simulate_delete("/unit_api/calibrations/media_pump/nothing"), 404)
    assert_error_shape(client.simulate_get("/unit_api/calibrations/Media%20Pump"), 400)
    assert_error_shape(client.simulate_get("/unit_api/calibrations/media_pump/.hidden"), 400)
    assert client.simulate_get("/unit_api/calibrations/media_pump/..%2F..%2Fconfig").status_code in (400, 404)
    assert client.simulate_get("/unit_api/calibrations/od45").json == []


def test_zipped_calibrations_hold_every_yaml_by_device(client):
    client.simulate_post("/unit_api/calibrations/media_pump", json={"calibration_data": pump_yaml("a")})
    client.simulate_post("/unit_api/calibrations/waste_pump", json={"calibration_data": pump_yaml("b", 0.9)})
    result = client.simulate_get("/unit_api/zipped_calibrations")
    assert result.status_code == 200
    assert result.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(result.content)) as archive:
        assert sorted(archive.namelist()) == ["media_pump/a.yaml", "waste_pump/b.yaml"]
        assert yaml.safe_load(archive.read("waste_pump/b.yaml"))["curve_data_"]["coefficients"][0] == 0.9


def fitted_estimator(name="fused-1"):
    from reactorkit.builtin_plugins.od_reading.fusion import fit_estimator

    gains = {"45": 0.35, "90": 0.5, "135": 0.25}
    observations = [(od, angle, 0.002 + g * od / (1 + 0.15 * od) * (1 + 0.01 * k))
                    for od in (0.1, 0.3, 0.8, 1.5, 3.0) for angle, g in gains.items() for k in (-1, 0, 1)]
    return fit_estimator(observations, estimator_name=name, unit="pio01", created_at="2026-01-01T00:00:00Z",
                         ir_led_intensity=80.0)


def test_estimator_routes_list_activate_and_delete_with_the_device(client, cal_env):
    store.save_estimator("od_fused", fitted_estimator())
    everything = client.simulate_get("/unit_api/estimators").json
    assert list(everything) == ["od_fused"]
    first = everything["od_fused"][0]
    assert (first["estimator_name"], first["device"], first["is_active"]) == ("fused-1", "od_fused", False)
    assert first["pioreactor_unit"] == cal_env.unit
    assert client.simulate_get("/unit_api/calibrations").json == {}  # estimators are not calibrations

    assert client.simulate_patch("/unit_api/active_estimators/od_fused/fused-1").json == {"status": "success"}
    active = client.simulate_get("/unit_api/active_estimators").json
    assert active["od_fused"]["estimator_type"] == "od_fused_estimator" and active["od_fused"]["is_active"]
    assert client.simulate_get("/unit_api/estimators/od_fused/fused-1").json["is_active"] is True
    assert len(client.simulate_get("/unit_api/estimators/od_fused").json) == 1

    assert client.simulate_delete("/unit_api/active_estimators/od_fused").json == {"status": "success"}
    assert client.simulate_get("/unit_api/active_estimators").json == {}
    deleted = client.simulate_delete("/unit_api/estimators/od_fused/fused-1")
    assert deleted.json["msg"] == "Estimator 'fused-1' for device 'od_fused' deleted successfully."
    assert_error_shape(client.simulate_get("/unit_api/estimators/od_fused/fused-1"), 404)
    assert_error_shape(client.simulate_patch("/unit_api/active_estimators/od_fused/fused-1"), 404)


def test_protocols_are_listed_in_the_contract_shape_sorted_by_device(make_client):
    client = make_client("[od_config.photodiode_channel]\n1 = REF\n2 = 90\n3 = 45\n4 = 135\n\n"
                         "[PWM]\n1 = stirring\n2 = media\n3 = alt_media\n4 = waste\n5 = heating\n")
    listed = client.simulate_get("/unit_api/calibration_protocols").json
    ids = [p["id"] for p in listed]
    for expected in ("media_pump_duration_based", "alt_media_pump_duration_based", "waste_pump_duration_based",
                     "od45_standards", "od90_standards", "od135_standards", "od_standards",
                     "od_fused_od_fusion_standards", "od_fused_od_fusion_offset", "stirring_dc_based"):
        assert expected in ids
    keys = [(p["target_device"], p["priority"], p["title"]) for p in listed]
    assert keys == sorted(keys)
    pump = next(p for p in listed if p["id"] == "alt_media_pump_duration_based")
    assert pump == {
        "id": "alt_media_pump_duration_based", "target_device": "alt_media_pump", "protocol_name": "duration_based",
        "priority": 99, "title": "Duration-based pump calibration",
        "description": "Build a duration-to-volume curve for the alt media pump using a simple multi-step flow.",
        "requirements": ["DC Peristaltic pump assigned to alt media pump", "Pioreactor vial",
                         "Container of clean water"],
    }
    fused = [p for p in listed if p["target_device"] == "od_fused"]
    assert [(p["protocol_name"], p["priority"]) for p in fused] == [("od_fusion_standards", 1),
                                                                   ("od_fusion_offset", 2)]


def test_protocols_follow_the_config(make_client):
    client = make_client("[PWM]\n1 = stirring\n2 = media\n3 = \n4 = \n5 = heating\n")
    ids = [p["id"] for p in client.simulate_get("/unit_api/calibration_protocols").json]
    assert "media_pump_duration_based" in ids
    assert "waste_pump_duration_based" not in ids
    assert "od_standards" not in ids and "od90_standards" in ids  # one angle: no combined od, no fusion
    assert not any(i.startswith("od_fused") for i in ids)
