"""Calibration and estimator files, active pointers, and run-time use of the active curve."""

import json
import subprocess
import sys

import pytest
import yaml

from reactorkit.core import calibration_store as store
from reactorkit.core.config import set_config


@pytest.fixture(autouse=True)
def dot_pioreactor(tmp_path, monkeypatch):
    monkeypatch.setenv("DOT_PIOREACTOR", str(tmp_path))
    set_config(None)
    yield tmp_path
    set_config(None)


def pump_record(name="media-1", slope=0.5):
    return {
        "calibration_type": "simple_peristaltic_pump",
        "calibration_name": name,
        "calibrated_on_pioreactor_unit": "pio01",
        "created_at": "2026-01-02T03:04:05.000000Z",
        "curve_data_": {"type": "poly", "coefficients": [slope, 0.0]},
        "x": "Duration",
        "y": "Volume",
        "recorded_data": {"x": [1.0, 2.0, 4.0], "y": [slope, 2 * slope, 4 * slope]},
        "hz": 250.0,
        "dc": 100.0,
        "voltage": -1.0,
    }


def od_record(name="od-cal", intensity=80.0):
    xs = [0.0, 0.25, 0.5, 1.0, 2.0]
    ys = [0.002 + 0.5 * x / (1 + 0.15 * x) for x in xs]
    from reactorkit.core.curves import fit_spline

    return {
        "calibration_type": "od600", "calibration_name": name, "calibrated_on_pioreactor_unit": "pio01",
        "created_at": "2026-01-02T03:04:05.000000Z", "curve_data_": fit_spline(xs, ys), "x": "OD600",
        "y": "Voltage", "recorded_data": {"x": xs, "y": ys}, "ir_led_intensity": intensity, "angle": "90",
        "pd_channel": "2",
    }


def test_saved_calibration_lives_under_storage_and_round_trips(dot_pioreactor):
    path = store.save_calibration("media_pump", pump_record())
    assert path == dot_pioreactor / "storage" / "calibrations" / "media_pump" / "media-1.yaml"
    assert yaml.safe_load(path.read_text()) == pump_record()
    assert store.load_calibration("media_pump", "media-1") == pump_record()
    assert store.list_calibrations() == {"media_pump": [pump_record()]}
    assert store.active_calibration("media_pump") is None


def test_one_active_calibration_per_device():
    store.save_calibration("media_pump", pump_record("a", 0.4), set_active=True)
    store.save_calibration("media_pump", pump_record("b", 0.6))
    assert store.active_calibrations() == {"media_pump": "a"}
    store.set_active("media_pump", "b")
    active = store.active_calibration("media_pump")
    assert (active.name, active.device) == ("b", "media_pump")
    assert active.x_to_y(2.0) == pytest.approx(1.2)
    assert active.y_to_x(0.9) == pytest.approx(1.5)


def test_activating_requires_the_file_and_deleting_clears_the_pointer():
    with pytest.raises(store.CalibrationNotFound):
        store.set_active("media_pump", "missing")
    store.save_calibration("media_pump", pump_record(), set_active=True)
    store.delete_calibration("media_pump", "media-1")
    assert store.active_calibrations() == {}
    assert store.active_calibration("media_pump") is None
    with pytest.raises(store.CalibrationNotFound):
        store.delete_calibration("media_pump", "media-1")


def test_clear_active_keeps_the_file():
    store.save_calibration("media_pump", pump_record(), set_active=True)
    assert store.clear_active("media_pump") is True
    assert store.active_calibration("media_pump") is None
    assert store.load_calibration("media_pump", "media-1")["calibration_name"] == "media-1"


@pytest.mark.parametrize("mutate, field", [
    (lambda r: r.pop("calibration_type"), "calibration_type"),
    (lambda r: r.update(calibration_name="../escape"), "calibration_name"),
    (lambda r: r.update(recorded_data={"x": [1, 2], "y": [1]}), "recorded_data"),
    (lambda r: r.update(curve_data_={"type": "poly"}), "curve_data_"),
    (lambda r: r.update(curve_data_={"type": "spline", "knots": [1, 0], "coefficients": [[0, 0, 0, 0]]}), "curve_data_"),
    (lambda r: r.update(x=3), "x"),
    (lambda r: r.update(calibration_type="od600"), "calibration_type"),  # an OD type on a pump
])
def test_invalid_records_name_the_field_and_leave_the_existing_file_untouched(mutate, field, dot_pioreactor):
    path = store.save_calibration("media_pump", pump_record())
    before = path.read_bytes()
    bad = pump_record()
    mutate(bad)
    with pytest.raises(store.InvalidCalibration) as error:
        store.save_calibration("media_pump", bad)
    assert error.value.field == field
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == ["media-1.yaml"]


def test_bad_yaml_is_refused_and_good_yaml_is_stored_verbatim(dot_pioreactor):
    text = "# my pump\n" + yaml.safe_dump(pump_record())
    path = store.save_calibration_yaml("media_pump", text, set_active=True)
    assert path.read_text() == text
    with pytest.raises(store.InvalidCalibration, match="not valid YAML"):
        store.save_calibration_yaml("media_pump", "calibration_name: media-1\nx: [1, 2\n")
    assert path.read_text() == text
    assert store.active_calibrations() == {"media_pump": "media-1"}


def test_unsafe_device_names_are_refused():
    with pytest.raises(store.InvalidCalibration):
        store.save_calibration("../etc", pump_record())
    with pytest.raises(store.InvalidCalibration):
        store.load_calibration("media_pump", "../../config")


def test_od_calibration_inverts_voltage_to_od_and_refuses_voltages_outside_its_range():
    store.save_calibration("od90", od_record(), set_active=True)
    cal = store.active_calibration("od90")
    assert cal.x_range == (0.0, 2.0)
    voltage = 0.002 + 0.5 * 0.7 / (1 + 0.15 * 0.7)
    assert cal.y_to_x(voltage) == pytest.approx(0.7, rel=0.02)
    low, high = cal.y_range
    with pytest.raises(store.OutOfCalibratedRange) as error:
        cal.y_to_x(high * 1.5)
    assert error.value.side == "above" and error.value.nearest == 2.0


def test_active_curve_inverse_gives_the_duty_cycle_for_a_target_rpm():
    assert store.active_curve_inverse("stirring", 500) is None
    from reactorkit.core.curves import fit_spline

    dcs = [20.0, 25.0, 30.0, 35.0, 40.0]
    rpms = [25 * (dc - 8) for dc in dcs]
    store.save_calibration("stirring", {
        "calibration_type": "simple_stirring", "calibration_name": "stir", "calibrated_on_pioreactor_unit": "pio01",
        "created_at": "2026-01-01T00:00:00Z", "curve_data_": fit_spline(dcs, rpms), "x": "DC %", "y": "RPM",
        "recorded_data": {"x": dcs, "y": rpms}, "pwm_hz": 200.0, "voltage": -1.0,
    }, set_active=True)
    assert store.active_curve_inverse("stirring", 500) == pytest.approx(28.0, rel=0.01)


def test_unreadable_files_are_skipped_when_listing(dot_pioreactor):
    store.save_calibration("media_pump", pump_record())
    (dot_pioreactor / "storage" / "calibrations" / "media_pump" / "broken.yaml").write_text("a: [")
    assert [r["calibration_name"] for r in store.list_calibrations("media_pump")] == ["media-1"]


def test_active_pointers_survive_a_new_process(dot_pioreactor):
    store.save_calibration("media_pump", pump_record(), set_active=True)
    code = "from reactorkit.core import calibration_store as s; import json; print(json.dumps(s.active_calibrations()))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == {"media_pump": "media-1"}


def estimator_record(name="fused"):
    from reactorkit.core.curves import fit_akima

    logc = [-2.0, -1.0, 0.0, 0.5]
    mu = {a: fit_akima(logc, [g + v for v in (-6.0, -4.0, -2.5, -2.0)]) for a, g in (("45", 0.1), ("90", 0.0))}
    sigma = {a: fit_akima(logc, [-3.0] * 4) for a in ("45", "90")}
    return {"estimator_type": "od_fused_estimator", "estimator_name": name, "calibrated_on_pioreactor_unit": "pio01",
            "created_at": "2026-01-01T00:00:00Z", "ir_led_intensity": 80.0, "angles": ["45", "90"],
            "mu_splines": mu, "sigma_splines_log": sigma, "min_logc": -2.0, "max_logc": 0.5, "sigma_floor": 0.05,
            "recorded_data": {"by_angle": {"45": {"x": logc, "y": [-6, -4, -2.5, -2]}}}, "low_conc_scales": {},
            "y": "log(Voltage)"}


def test_estimators_are_stored_and_activated_like_calibrations(dot_pioreactor):
    path = store.save_estimator("od_fused", estimator_record(), set_active=True)
    assert path == dot_pioreactor / "storage" / "estimators" / "od_fused" / "fused.yaml"
    est = store.active_estimator("od_fused")
    assert est.name == "fused" and est.record["angles"] == ["45", "90"]
    assert store.list_calibrations() == {}  # estimators are not calibrations
    store.delete_estimator("od_fused", "fused")
    assert store.active_estimator("od_fused") is None


def test_an_estimator_without_its_angle_curves_is_refused():
    bad = estimator_record()
    del bad["mu_splines"]["90"]
    with pytest.raises(store.InvalidCalibration) as error:
        store.save_estimator("od_fused", bad)
    assert error.value.field == "mu_splines"


def test_persistent_cache_round_trips_json_values(dot_pioreactor):
    cache = store.PersistentCache("calibration_sessions")
    cache.set("abc", {"step_id": "intro", "data": {"x": [1, 2]}})
    assert store.PersistentCache("calibration_sessions").get("abc") == {"step_id": "intro", "data": {"x": [1, 2]}}
    assert "abc" in cache and cache.delete("abc") and "abc" not in cache
    with pytest.raises(ValueError):
        store.PersistentCache("bad name; drop table")
