"""mL ↔ seconds through the active pump calibration; the default rate; the missing-calibration message."""

import pytest

from reactorkit.builtin_plugins.dosing.calibration import (
    DEFAULT_ML_PER_SECOND,
    MissingCalibration,
    pump_calibration_record,
    pump_rate,
)


@pytest.fixture
def dot(tmp_path, monkeypatch):
    monkeypatch.setenv("DOT_PIOREACTOR", str(tmp_path))
    return tmp_path


def save(device, ml_per_second, dc):
    from reactorkit.core.calibration_store import save_calibration

    record = pump_calibration_record(device, ml_per_second, name=f"{device}_test", unit="u1",
                                     created_at="2025-01-01T00:00:00.000Z", dc=dc)
    save_calibration(device, record, set_active=True)


def test_without_a_calibration_duration_uses_the_default_rate_and_ml_is_refused(dot):
    rate = pump_rate("add_media")
    assert not rate.is_calibrated
    assert rate.duty_cycle == 100.0
    assert rate.ml_for(10.0) == pytest.approx(10 * DEFAULT_ML_PER_SECOND)
    with pytest.raises(MissingCalibration) as info:
        rate.seconds_for(1.0)
    assert "media_pump" in str(info.value)
    assert "calibration" in str(info.value)


def test_the_active_calibration_converts_both_ways_at_its_duty_cycle(dot):
    save("alt_media_pump", 0.25, dc=40)
    rate = pump_rate("add_alt_media")
    assert rate.is_calibrated
    assert rate.calibration_name == "alt_media_pump_test"
    assert rate.duty_cycle == 40.0
    assert rate.seconds_for(1.0) == pytest.approx(4.0)
    assert rate.ml_for(2.0) == pytest.approx(0.5)
    # outside the recorded durations the line is extrapolated (pumps are linear)
    assert rate.seconds_for(10.0) == pytest.approx(40.0)
    assert not pump_rate("remove_waste").is_calibrated  # per device


def test_calibration_record_has_the_contract_fields():
    record = pump_calibration_record("waste_pump", 0.1, name="w", unit="u", created_at="2025-01-01T00:00:00Z", dc=20)
    assert record["calibration_type"] == "simple_peristaltic_pump"
    assert record["curve_data_"] == {"type": "poly", "coefficients": [0.1, 0.0]}
    assert (record["x"], record["y"]) == ("Duration", "Volume")
    assert len(record["recorded_data"]["x"]) == len(record["recorded_data"]["y"])
    assert record["dc"] == 20.0
