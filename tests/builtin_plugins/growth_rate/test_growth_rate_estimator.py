"""The pure growth-rate estimator on synthetic cultures with known truth."""

import math
import random

import pytest

from reactorkit.builtin_plugins.growth_rate.estimator import (
    FilterSettings,
    GrowthRateCalculator,
    GrowthRateEKF,
    Normalization,
    compute_normalization,
)

INTERVAL_S = 5.0


def culture(hours, rate_per_h, od0=0.1, noise=0.01, seed=1, jumps=()):
    """Readings ``(t, od)`` of an exponential culture; ``jumps``: ``[(hour, factor)]`` multiply the OD from then on."""
    rng = random.Random(seed)
    rows = []
    for i in range(int(hours * 3600 / INTERVAL_S)):
        t = i * INTERVAL_S
        od = od0 * math.exp(rate_per_h * t / 3600)
        for hour, factor in jumps:
            if t >= hour * 3600:
                od *= factor
        rows.append((t, od * (1 + rng.gauss(0, noise))))
    return rows


def run(calc, rows, channel="2", doses=()):
    out = []
    doses = sorted(doses)
    for t, od in rows:
        while doses and doses[0] <= t:
            calc.on_dosing(doses.pop(0))
        estimate = calc.on_od(t, {channel: od})
        if estimate is not None:
            out.append(estimate)
    return out


def test_constant_growth_rate_is_recovered_within_five_percent():
    estimates = run(GrowthRateCalculator(), culture(3, 0.3))
    late = [e.growth_rate for e in estimates if e.timestamp > 3600]
    assert sum(late) / len(late) == pytest.approx(0.3, rel=0.05)
    assert all(abs(g - 0.3) < 0.3 * 0.15 for g in late)


def test_first_five_readings_are_skipped_and_ten_gather_the_baseline():
    calc = GrowthRateCalculator()
    rows = culture(0.1, 0.2)
    outputs = [calc.on_od(t, {"2": od}) for t, od in rows[:16]]
    assert outputs[:14] == [None] * 14
    assert outputs[14] is not None
    baseline = sorted(od for _, od in rows[5:15])
    assert calc.normalization.factors["2"] == pytest.approx((baseline[4] + baseline[5]) / 2)


def test_filtered_od_is_normalised_by_the_baseline_median():
    estimates = run(GrowthRateCalculator(), culture(0.5, 0.0, od0=0.4, noise=0.005))
    assert estimates[-1].od_filtered == pytest.approx(1.0, abs=0.01)


def test_a_dose_during_the_warm_up_restarts_it():
    calc = GrowthRateCalculator(skip_first=0)
    rows = culture(0.2, 0.2)
    for t, od in rows[:8]:
        assert calc.on_od(t, {"2": od}) is None
    calc.on_dosing(rows[8][0])
    results = [calc.on_od(t, {"2": od}) for t, od in rows[8:18]]
    assert results[:9] == [None] * 9 and results[9] is not None


def test_cached_normalization_skips_the_warm_up():
    calc = GrowthRateCalculator(skip_first=0, normalization=Normalization({"2": 0.1}, {"2": 1e-4}))
    estimate = calc.on_od(0.0, {"2": 0.12})
    assert estimate is not None
    assert estimate.od_filtered == pytest.approx(1.2, rel=0.02)


def test_an_isolated_spike_is_flagged_and_barely_moves_the_rate():
    rows = culture(2, 0.3)
    spike_at = len(rows) - 100
    t, od = rows[spike_at]
    rows[spike_at] = (t, od * 1.5)
    calc = GrowthRateCalculator()
    estimates = run(calc, rows)
    by_time = {e.timestamp: e for e in estimates}
    before, at = by_time[rows[spike_at - 1][0]], by_time[t]
    assert at.outliers == ("2",)
    assert abs(at.growth_rate - before.growth_rate) < 0.02
    assert calc.outlier_count == 1


def test_a_dilution_with_its_dosing_event_leaves_the_rate_alone():
    dose_h = 1.5
    rows = culture(2.5, 0.4, jumps=[(dose_h, 14 / 16)])
    estimates = run(GrowthRateCalculator(), rows, doses=[dose_h * 3600 - 2])
    after = [e for e in estimates if dose_h * 3600 <= e.timestamp <= dose_h * 3600 + 1800]
    assert all(abs(e.growth_rate - 0.4) < 0.04 for e in after)
    assert not any(e.outliers for e in after)
    # the level follows the diluted culture at once
    assert after[2].od_filtered == pytest.approx(estimates[0].od_filtered * math.exp(0.4 * (after[2].timestamp - estimates[0].timestamp) / 3600) * 14 / 16, rel=0.03)


def test_a_step_without_dosing_event_is_re_anchored_and_the_rate_recovers():
    rows = culture(3, 0.4, jumps=[(1.5, 0.8)])
    estimates = run(GrowthRateCalculator(), rows)
    assert any(e.level_shift for e in estimates)
    recovered = [e.growth_rate for e in estimates if 2.0 * 3600 <= e.timestamp]
    assert all(abs(g - 0.4) < 0.04 for g in recovered)


def test_noise_growing_with_the_signal_does_not_turn_into_outliers():
    rng = random.Random(3)
    rows = []
    for i in range(int(6 * 3600 / INTERVAL_S)):
        t = i * INTERVAL_S
        noise = 0.005 + 0.025 * t / (6 * 3600)  # 0.5 % → 3 %
        rows.append((t, 0.2 * math.exp(0.1 * t / 3600) * (1 + rng.gauss(0, noise))))
    calc = GrowthRateCalculator()
    run(calc, rows)
    assert calc.outlier_count / calc.reading_count < 0.002


def test_several_channels_are_combined():
    rows90 = culture(2, 0.25, od0=0.1, seed=1)
    rows135 = culture(2, 0.25, od0=0.05, seed=2)
    calc = GrowthRateCalculator()
    estimates = [calc.on_od(t, {"2": a, "3": b}) for (t, a), (_, b) in zip(rows90, rows135)]
    late = [e.growth_rate for e in estimates if e and e.timestamp > 3600]
    assert set(calc.normalization.factors) == {"2", "3"}
    assert sum(late) / len(late) == pytest.approx(0.25, rel=0.05)


def test_filtered_od_stays_positive_near_a_blank_culture():
    rng = random.Random(5)
    rows = [(i * INTERVAL_S, 0.002 + rng.gauss(0, 0.002)) for i in range(800)]
    estimates = run(GrowthRateCalculator(), rows)
    assert all(e.od_filtered > 0 for e in estimates)


def test_old_readings_are_ignored():
    calc = GrowthRateCalculator(skip_first=0, normalization=Normalization({"2": 1.0}, {"2": 1e-4}))
    assert calc.on_od(100.0, {"2": 1.0}) is not None
    assert calc.on_od(50.0, {"2": 1.0}) is None


def test_warm_up_without_positive_readings_is_reported():
    with pytest.raises(ValueError, match="positive median"):
        compute_normalization([(0.0, {"2": -0.1}), (5.0, {"2": 0.0})], 5e-3)


@pytest.mark.parametrize("threshold", [2.0, 1.0, -3.0])
def test_outlier_threshold_must_exceed_two(threshold):
    with pytest.raises(ValueError, match="ekf_outlier_std_threshold"):
        FilterSettings(outlier_std_threshold=threshold)


def test_the_filter_needs_a_channel():
    with pytest.raises(ValueError):
        GrowthRateEKF(FilterSettings(), 0.0, 0.0, 1e-4, {})


def test_a_late_dosing_event_rewinds_over_the_readings_already_diluted():
    dose_h = 1.5
    rows = culture(2.5, 0.4, jumps=[(dose_h, 14 / 16)])
    on_time = run(GrowthRateCalculator(), rows, doses=[dose_h * 3600 - 2])
    late = GrowthRateCalculator()
    out = []
    for t, od in rows:
        if t == dose_h * 3600 + 10:  # two diluted readings (at +0 s and +5 s) were processed before the event
            replayed = late.ekf.mark_dilution(dose_h * 3600 - 2)
            assert replayed is not None and not replayed.outliers
        estimate = late.on_od(t, {"2": od})
        if estimate is not None:
            out.append(estimate)
    assert out[-1].growth_rate == pytest.approx(on_time[-1].growth_rate, abs=0.002)
    assert out[-1].od_filtered == pytest.approx(on_time[-1].od_filtered, rel=0.002)
