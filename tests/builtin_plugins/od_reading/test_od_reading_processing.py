"""Pure signal processing of od_reading: channels, EMA, REF normalisation, calibration clamping, payloads."""

import pytest

from reactorkit.builtin_plugins.od_reading.processing import (
    ConfigurationError,
    ExponentialMovingAverage,
    ReferenceNoiseMonitor,
    ReferenceNormalizer,
    apply_calibration,
    parse_photodiode_channels,
    raw_reading_payload,
    reading_payload,
)
from reactorkit.core.calibration_store import Calibration


def test_default_channels_are_ref_on_1_and_90_degrees_on_2():
    assert parse_photodiode_channels([("1", "REF"), ("2", "90")]) == ({2: "90"}, 1)


def test_empty_channels_are_unused_and_angles_are_sorted_by_channel():
    assert parse_photodiode_channels([("4", "135"), ("3", ""), ("2", "45")]) == ({2: "45", 4: "135"}, None)


@pytest.mark.parametrize(
    "items,match",
    [
        ([("1", "REF"), ("2", "REF"), ("3", "90")], "at most one"),
        ([("1", "REF"), ("2", "100")], "45, 90, 135, 180, REF"),
        ([("5", "90")], "1–4"),
        ([("x", "90")], "channel 1–4"),
        ([("1", "REF")], "no signal channel"),
    ],
)
def test_bad_photodiode_configuration_names_the_problem(items, match):
    with pytest.raises(ConfigurationError, match=match):
        parse_photodiode_channels(items)


def test_ema_weights_the_past_by_alpha():
    ema = ExponentialMovingAverage(0.75)
    assert ema.update(1.0) == 1.0
    assert ema.update(2.0) == pytest.approx(0.75 * 1.0 + 0.25 * 2.0)


@pytest.mark.parametrize("alpha", [-0.1, 1.0, 2.0])
def test_ema_alpha_must_be_within_0_and_1(alpha):
    with pytest.raises(ValueError, match="pd_reference_ema"):
        ExponentialMovingAverage(alpha)


def test_classic_divides_by_the_reference():
    norm = ReferenceNormalizer("classic", alpha=0.0)
    assert norm.update(0.25) == 0.25


def test_unity_keeps_volts_and_compensates_a_dimming_led():
    norm = ReferenceNormalizer("unity", alpha=0.0)
    signal = 0.5
    assert signal / norm.update(0.25) == pytest.approx(0.5)
    # the LED loses 20 %: signal and REF both drop, the normalised value does not
    assert (signal * 0.8) / norm.update(0.25 * 0.8) == pytest.approx(0.5)
    assert norm.drift == pytest.approx(0.8)
    assert norm.relative_intensity(0.2) == pytest.approx(0.8)


def test_unity_uses_a_known_first_reference():
    norm = ReferenceNormalizer("unity", alpha=0.0, first_ref=0.5)
    assert norm.update(0.25) == pytest.approx(0.5)


def test_unknown_mode_falls_back_to_classic():
    assert ReferenceNormalizer("fancy", 0.5).mode == "classic"


def test_noise_monitor_flags_only_a_noisy_reference():
    quiet, noisy = ReferenceNoiseMonitor(5.0, window=10), ReferenceNoiseMonitor(5.0, window=10)
    assert [quiet.add(1.0 + 0.001 * (-1) ** i) for i in range(10)] == [None] * 10
    results = [noisy.add(1.0 + 0.05 * (-1) ** i) for i in range(10)]
    assert results[:9] == [None] * 9 and results[9] == pytest.approx(0.05)


def test_noise_threshold_grows_with_the_interval():
    assert ReferenceNoiseMonitor(20.0).threshold == pytest.approx(0.05)


def calibration(curve, xs=(0.0, 1.0, 2.0)):
    """OD600 → volts, y = 0.5 · OD (a straight-line calibration over the recorded OD range)."""
    ys = [0.5 * x for x in xs]
    record = {"calibration_name": "line", "curve_data_": curve, "recorded_data": {"x": list(xs), "y": ys}}
    return Calibration(name="line", device="od90", record=record)


def test_calibration_maps_volts_to_od600():
    od, warning = apply_calibration(calibration({"type": "poly", "coefficients": [0.5, 0.0]}), 0.4)
    assert od == pytest.approx(0.8)
    assert warning is None


@pytest.mark.parametrize("volts,expected", [(1.5, 2.0), (-0.2, 0.0)])
def test_outside_the_calibrated_range_the_od_is_clamped_with_a_warning(volts, expected):
    od, warning = apply_calibration(calibration({"type": "poly", "coefficients": [0.5, 0.0]}), volts)
    assert od == pytest.approx(expected)
    assert "outside calibration 'line'" in warning


def test_payloads_follow_the_contract():
    reading = reading_payload(timestamp="2025-01-31T12:00:05.123000Z", channel=2, angle="90", od=0.0123,
                              ir_led_intensity=80)
    assert reading == {"calibrated": 0, "timestamp": "2025-01-31T12:00:05.123000Z", "angle": "90", "od": 0.0123,
                       "channel": "2", "ir_led_intensity": 80.0}
    calibrated = reading_payload(timestamp="t", channel=2, angle="90", od=0.5, ir_led_intensity=80,
                                 calibration_name="cal")
    assert calibrated["calibrated"] == 1 and calibrated["calibration_name"] == "cal"
    assert raw_reading_payload(timestamp="t", channel=3, angle="135", od=0.2, ir_led_intensity=50) == {
        "timestamp": "t", "angle": "135", "od": 0.2, "channel": "3", "ir_led_intensity": 50.0}
