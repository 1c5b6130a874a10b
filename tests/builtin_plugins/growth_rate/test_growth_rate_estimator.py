"""The pure growth-rate estimator on synthetic cultures with known truth."""

import json
import math
import random

import pytest

from reactorkit.builtin_plugins.growth_rate.estimator import (
    MAX_GROWTH_STEP_H,
    MAX_READING_GAP_H,
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


def changing_culture(hours, mu_at, seed):
    """Readings ``(t, od)`` every ``INTERVAL_S`` of a culture from OD 0.1 growing at ``mu_at(t)`` h⁻¹ (t in s), 1.5 %
    noise, no dose; and the true μ of each reading."""
    rng = random.Random(seed)
    rows, truth, log_od = [], [], math.log(0.1)
    for i in range(int(hours * 3600 / INTERVAL_S)):
        t = i * INTERVAL_S
        mu = mu_at(t)
        log_od += mu * INTERVAL_S / 3600
        rows.append((t, math.exp(log_od) * (1 + rng.gauss(0, 0.015))))
        truth.append(mu)
    return rows, truth


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


def test_a_dose_event_arriving_after_later_readings_keeps_them_in_the_new_warm_up():
    rows = culture(0.2, 0.2)
    calc = GrowthRateCalculator(skip_first=0)
    for t, od in rows[:9]:
        assert calc.on_od(t, {"2": od}) is None
    calc.on_dosing((rows[7][0] + rows[8][0]) / 2)  # late: rows[8] is already in
    results = [calc.on_od(t, {"2": od}) for t, od in rows[9:18]]
    assert results[:8] == [None] * 8 and results[8] is not None  # rows[8..17]: the 10 readings after the dose


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


def test_a_spike_among_the_warm_up_readings_is_flagged_and_does_not_pass_for_noise():
    rows = culture(0.05, 0.3, noise=0.015, seed=5)
    t, od = rows[14]  # the last of the 10 warm-up readings (after the 5 skipped)
    rows[14] = (t, od * 0.78)
    calc = GrowthRateCalculator()
    first = [calc.on_od(t, {"2": od}) for t, od in rows[:15]][-1]
    assert first is not None and first.outliers == ("2",)
    assert math.sqrt(calc.normalization.rel_variances["2"]) < 0.025  # the noise is ~1.5 %, not the spike's 22 %


def test_the_warm_up_noise_is_the_robust_residual_sd_of_a_growing_culture():
    rows = culture(0.05, 0.5, noise=0.01, seed=2)[5:15]
    normalization = compute_normalization([(t, {"2": od}) for t, od in rows], 0.005)
    assert 0.003 < math.sqrt(normalization.rel_variances["2"]) < 0.02


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
            lookback = late.settings.dilution_lookback_s  # readings since (event − lookback) are processed again
            assert [e.timestamp for e in replayed] == [t for t, _ in rows if dose_h * 3600 - 2 - lookback < t < dose_h * 3600 + 10]
            assert not any(e.outliers for e in replayed)
        estimate = late.on_od(t, {"2": od})
        if estimate is not None:
            out.append(estimate)
    assert out[-1].growth_rate == pytest.approx(on_time[-1].growth_rate, abs=0.002)
    assert out[-1].od_filtered == pytest.approx(on_time[-1].od_filtered, rel=0.002)


# ------------------------------------------------------------- doses of known size


def run_with_doses(calc, rows, doses):
    """``doses``: ``[(event time s, event, mL, vial mL before)]``, delivered before the first reading after them."""
    out = []
    doses = sorted(doses)
    for t, od in rows:
        while doses and doses[0][0] <= t:
            when, event, ml, vial = doses.pop(0)
            calc.on_dosing(when, volume_change_ml=ml, event=event, vial_volume_ml=vial)
        estimate = calc.on_od(t, {"2": od})
        if estimate is not None:
            out.append(estimate)
    return out


def test_a_known_dilution_drops_the_level_at_once_and_leaves_the_rate_alone():
    dose_h = 1.5
    rows = culture(2.5, 0.4, jumps=[(dose_h, 14 / 16)])
    estimates = run_with_doses(GrowthRateCalculator(), rows, [(dose_h * 3600 - 2, "add_media", 2.0, 14.0),
                                                              (dose_h * 3600 - 1, "remove_waste", 2.0, 16.0)])
    before = next(e for e in reversed(estimates) if e.timestamp < dose_h * 3600 - 30)
    first_after = next(e for e in estimates if e.timestamp >= dose_h * 3600)
    assert first_after.od_filtered / before.od_filtered == pytest.approx(14 / 16 * math.exp(0.4 * 35 / 3600), rel=0.01)
    after = [e for e in estimates if dose_h * 3600 <= e.timestamp <= dose_h * 3600 + 1800]
    assert not any(e.outliers for e in after)
    # fresh media may make the rate jump, so the rate is freer for a few minutes after a first dose (nothing is
    # known yet of how this culture answers one): within 10 % from 10 min on, within 5 % from 15 min on
    assert all(abs(e.growth_rate - 0.4) < 0.04 for e in after if e.timestamp >= dose_h * 3600 + 600)
    assert all(abs(e.growth_rate - 0.4) < 0.02 for e in after if e.timestamp >= dose_h * 3600 + 900)


def test_waste_removal_changes_nothing():
    rows = culture(1.5, 0.3)
    plain = run(GrowthRateCalculator(), rows)
    with_waste = run_with_doses(GrowthRateCalculator(), rows, [(3600.0, "remove_waste", 1.0, 15.0)])
    assert [e.growth_rate for e in with_waste] == [e.growth_rate for e in plain]


def test_readings_taken_while_the_pump_may_run_are_not_assimilated_but_spikes_there_are_flagged():
    dose_s = 5400.0
    rows = culture(2.0, 0.3, jumps=[(dose_s / 3600, 14 / 15)])
    spike_t = dose_s - 10
    rows = [(t, od * 1.4 if t == spike_t else od) for t, od in rows]
    calc = GrowthRateCalculator()
    replayed = []
    for t, od in rows:
        if t == dose_s:  # the event arrives after the pump stopped: the readings before it are processed again
            replayed = calc.on_dosing(dose_s - 0.5, volume_change_ml=1.0, event="add_media", vial_volume_ml=14.0)
        calc.on_od(t, {"2": od})
    window = [e for e in replayed if e.timestamp > dose_s - 0.5 - calc.settings.dilution_lookback_s]
    assert len(window) == 6 and all(e.after_dilution for e in window)
    assert [e.timestamp for e in window if e.outliers] == [spike_t]
    by_time = {e.timestamp: e for e in window}
    before, at = by_time[spike_t - 5], by_time[spike_t]  # the spike did not move the level: only the prediction
    assert at.od_filtered == pytest.approx(before.od_filtered * math.exp(before.growth_rate * 5 / 3600), rel=1e-5)


def sawtooth(hours=16.0, mu_star=0.2, slope=-2.0, every_s=1200.0, exchange=0.5, volume=14.0, seed=4):
    """A chemostat-like culture whose μ is set by its biomass, ``μ = μ* + s·(ℓ − ℓ*)`` (Monod with biomass plus
    substrate conserved, linearised): each dose dilutes by V/(V+Δ), which lifts μ by ``−s·δ``, and μ falls as the
    culture grows back. Returns readings, dosing events and the true μ per reading time."""
    rng = random.Random(seed)
    rows, doses, truth = [], [], {}
    log_od, next_dose = math.log(0.5), every_s
    for i in range(1, int(hours * 3600 / INTERVAL_S)):
        t = i * INTERVAL_S
        dt = INTERVAL_S / 3600
        mu0 = mu_star + slope * (log_od - math.log(0.5))
        log_od += mu0 * (math.exp(slope * dt) - 1) / slope  # dℓ/dt = μ, dμ/dt = s·μ, exact over the step
        if t >= next_dose:
            log_od -= math.log((volume + exchange) / volume)
            doses.append((t - 1.0, "add_media", exchange, volume))
            next_dose += every_s
        truth[t] = mu_star + slope * (log_od - math.log(0.5))
        rows.append((t, math.exp(log_od) * (1 + rng.gauss(0, 0.015))))
    return rows, doses, truth


def test_the_jump_after_fresh_media_and_the_fall_between_doses_are_learned_and_followed():
    # a culture already at its steady saw-tooth when the job starts: the slope is learned over hours
    # (README, "Where the error comes from"), then the saw-tooth is followed
    rows, doses, truth = sawtooth(hours=16.0)

    def late_rmse(settings):
        estimates = run_with_doses(GrowthRateCalculator(settings), rows, doses)
        late = [e for e in estimates if e.timestamp > 10 * 3600]
        return math.sqrt(sum((e.growth_rate - truth[e.timestamp]) ** 2 for e in late) / len(late)), late[-1]

    learned, last = late_rmse(FilterSettings())
    frozen, _ = late_rmse(FilterSettings(max_slope=1e-9))  # μ does not follow the biomass: a dose tells nothing
    assert learned < 0.7 * frozen  # the saw-tooth is followed, not averaged
    assert last.dose_response == pytest.approx(2.0, rel=0.5)  # −s ≈ the jump of μ per unit log drop


def test_a_restarted_filter_resumes_from_its_carried_over_state():
    rows = culture(3, 0.35)
    first = GrowthRateCalculator()
    run(first, rows[: len(rows) // 2])
    carried = first.ekf.carry_over()
    resumed = GrowthRateCalculator(normalization=first.normalization, prior=carried)
    estimates = run(resumed, rows[len(rows) // 2:])
    assert estimates[0].growth_rate == pytest.approx(0.35, abs=0.03)  # no start-up from zero
    fresh = GrowthRateEKF(FilterSettings(), carried["t"], 0.0, 1e-4, {"2": 1e-4}, prior=carried)
    assert fresh.obs_rel_var == carried["obs_rel_var"] and fresh.x[1] == pytest.approx(carried["x"][0])


def test_an_unusable_carried_over_state_is_ignored():
    calc = GrowthRateCalculator(skip_first=0, normalization=Normalization({"2": 0.1}, {"2": 1e-4}),
                                prior={"x": [1.0], "P": [[1.0]]})
    assert calc.on_od(0.0, {"2": 0.1}) is not None


def test_a_culture_running_out_of_substrate_between_doses_is_not_read_as_media_slowing_growth():
    """μ falls from 0.5 to 0.1 h⁻¹ over 3 h while doses continue (a chemostat leaving batch growth): the
    slope dμ/dℓ stays within [−max_slope, 0], and the estimate follows the fall."""
    rng = random.Random(7)
    rows, doses, truth = [], [], {}
    log_od, volume = math.log(0.5), 14.0
    for i in range(1, int(6 * 3600 / INTERVAL_S)):
        t = i * INTERVAL_S
        mu = 0.5 if t < 3600 else max(0.1, 0.5 - 0.4 * (t - 3600) / (3 * 3600))
        log_od += mu * INTERVAL_S / 3600
        if i % 240 == 0:  # every 20 min, 0.5 mL into 14 mL
            log_od -= math.log((volume + 0.5) / volume)
            doses.append((t - 1.0, "add_media", 0.5, volume))
        truth[t] = mu
        rows.append((t, math.exp(log_od) * (1 + rng.gauss(0, 0.015))))
    settings = FilterSettings()
    calc = GrowthRateCalculator(settings)
    estimates = run_with_doses(calc, rows, doses)
    assert all(0.0 <= e.dose_response <= settings.max_slope for e in estimates)
    late = [e for e in estimates if e.timestamp > 4.5 * 3600]
    assert sum(e.growth_rate for e in late) / len(late) == pytest.approx(0.1, abs=0.02)


@pytest.mark.parametrize("field,value", [("max_slope", 0.0), ("slope_memory_h", -1.0), ("drift_correlation_h", -1.0),
                                         ("drift_boost_readings", 0.5), ("drift_boost_max", 0.5),
                                         ("slope_boost_std", -1.0), ("falling_drift_growth", -1.0)])
def test_settings_out_of_range_are_refused_with_their_name(field, value):
    with pytest.raises(ValueError, match=field):
        FilterSettings(**{field: value})


@pytest.mark.parametrize("value", [-1.0, math.nan, math.inf])
def test_a_falling_drift_growth_that_is_not_a_finite_number_of_at_least_zero_is_refused(value):
    with pytest.raises(ValueError, match=r"falling_drift_growth must be a finite number ≥ 0, got"):
        FilterSettings(falling_drift_growth=value)


def test_without_dosing_events_the_rate_is_not_tied_to_the_biomass():
    """A culture slowing from 0.5 to 0.1 h⁻¹ with no dose: its slowing is a drift, not a slope dμ/dℓ (which only
    doses identify), so nothing is extrapolated from it."""
    rows, _ = changing_culture(4, lambda t: max(0.1, 0.5 - 0.4 * t / (3 * 3600)), seed=3)
    estimates = run(GrowthRateCalculator(), rows)
    assert all(e.dose_response == 0.0 for e in estimates)
    late = [e.growth_rate for e in estimates if e.timestamp > 3.5 * 3600]
    assert sum(late) / len(late) == pytest.approx(0.1, abs=0.03)  # the drift follows the fall


def test_the_optional_falling_rate_boost_frees_the_drift_when_readings_keep_falling_below_the_prediction():
    """A batch running out of substrate (μ 0.5 → 0.1 h⁻¹ within 2 h, no dose), the drift's growth off: with
    ``falling_boost_std`` set, readings that keep falling below the prediction scale the drift's noise, and the
    fall is followed closer than without that scaling."""
    rows, truth = changing_culture(4, lambda t: max(0.1, 0.5 - 0.4 * max(t - 3600, 0.0) / (2 * 3600)), seed=11)
    at = {t: mu for (t, _), mu in zip(rows, truth)}

    def error(settings: FilterSettings) -> float:
        est = [(e.timestamp, e.growth_rate) for e in run(GrowthRateCalculator(settings), rows)]
        falling = [(g - at[t]) ** 2 for t, g in est if 1.5 * 3600 <= t <= 3.5 * 3600]
        return math.sqrt(sum(falling) / len(falling))

    assert error(FilterSettings(falling_drift_growth=0.0, falling_boost_std=2.0)) \
        < error(FilterSettings(falling_drift_growth=0.0))


def monod_batch(seed, mu_max=0.6, ks=0.3, capacity=2.0, od0=0.05, until_od=1.6):
    """Readings ``(t, od)`` every ``INTERVAL_S`` of a Monod batch (yield 1: substrate = capacity − OD) from ``od0``
    until the OD reaches ``until_od``, 1.5 % noise, no dose; and the true μ of each reading."""
    rng = random.Random(seed)
    rows, truth, od, t = [], [], od0, 0.0
    while od < until_od:
        substrate = capacity - od
        mu = mu_max * substrate / (ks + substrate)
        od *= math.exp(mu * INTERVAL_S / 3600)
        t += INTERVAL_S
        rows.append((t, od * (1 + rng.gauss(0, 0.015))))
        truth.append(mu)
    return rows, truth


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_without_doses_a_falling_rate_is_taken_to_accelerate_as_the_biomass_grows(seed):
    """A Monod batch running out of substrate: its fall of μ accelerates (|dμ/dt| grows with the biomass). With
    the drift growing as ``κ·μ + a/μ`` the estimate of the last hour before OD 1.6 lags less (its mean error
    under half) than with the drift only forgetting itself."""
    rows, truth = monod_batch(seed)
    at = {t: mu for (t, _), mu in zip(rows, truth)}
    end = rows[-1][0]

    def bias(settings: FilterSettings) -> float:
        last = [g.growth_rate - at[g.timestamp] for g in run(GrowthRateCalculator(settings), rows)
                if g.timestamp >= end - 3600]
        return sum(last) / len(last)

    grown, forgotten = bias(FilterSettings()), bias(FilterSettings(falling_drift_growth=0.0))
    assert forgotten > 0.0  # without it the estimate lags the fall (stays above the true μ)
    assert abs(grown) < 0.5 * forgotten


def test_a_step_without_a_dosing_event_stops_the_drift_growing():
    """A dose of unknown size (a step) means the culture is not a closed batch: for ``slope_memory_h`` its falling
    drift only forgets itself (a turbidostat without dosing events must not extrapolate its saw-tooth's falls)."""
    settings = FilterSettings()

    def drift_after(step: bool) -> float:
        ekf = GrowthRateEKF(settings, 0.0, 0.0, 1e-4, {"2": 1e-4}, rate=0.5)
        ekf.x[2] = -0.1
        if step:
            ekf.mark_dilution()
        ekf.predict(0.5 * 3600)
        return float(ekf.x[2])

    assert drift_after(step=False) < -0.1  # γ = 3·0.5 − 0.1/0.5 − 1/2 > 0: the fall accelerates
    assert drift_after(step=True) == pytest.approx(-0.1 * math.exp(-0.5 / settings.drift_correlation_h))


def test_a_rising_drift_and_a_drift_while_doses_tie_the_rate_to_the_biomass_only_forget_themselves():
    """The drift grows only when it falls without doses: a rising one, and a falling one within ``slope_memory_h``
    of a known dose (the slope carries the fall there), decay over τ as the Singer drift does."""
    settings = FilterSettings()
    forgotten = -0.1 * math.exp(-0.5 / settings.drift_correlation_h)
    rising = GrowthRateEKF(settings, 0.0, 0.0, 1e-4, {"2": 1e-4}, rate=0.5)
    rising.x[2] = 0.1
    rising.predict(0.5 * 3600)
    assert rising.x[2] == pytest.approx(-forgotten)
    dosed = GrowthRateEKF(settings, 0.0, 0.0, 1e-4, {"2": 1e-4}, rate=0.5)
    dosed.mark_dilution(0.0, volume_change_ml=1.0, vial_volume_ml=14.0)
    dosed.update(5.0, {"2": math.exp(float(dosed.x[0]) - math.log(15.0 / 14.0))})  # applies the dose
    assert dosed.x[1] > 0
    dosed.x[2] = -0.1
    dosed.predict(5.0 + 0.5 * 3600)
    assert dosed.x[2] == pytest.approx(forgotten)


@pytest.mark.parametrize("pause_h", [2.0, 10.0, 20.0])
def test_a_pause_in_the_readings_ends_a_growing_fall_at_a_rate_of_zero(pause_h):
    """Readings stop for hours while the drift grows (no restart): held over the whole pause, ``e^{γΔt}`` took
    the rate far below 0 and overflowed; predicted in short steps, the fall ends near a rate of 0 and the
    next reading is assimilated. (Longer than MAX_READING_GAP_H a gap is bridged: the tests below.)"""
    ekf = GrowthRateEKF(FilterSettings(), 0.0, 0.0, 1e-4, {"2": 1e-4}, rate=0.6)
    ekf.x[2] = -0.2
    ekf.predict(pause_h * 3600)
    assert -0.01 < ekf.x[1] < 0.25 and -0.2 < ekf.x[2] < 0.0
    assert all(math.isfinite(v) for v in ekf.x) and all(math.isfinite(v) for v in ekf.P.flat)
    estimate = ekf.update(pause_h * 3600 + 5, {"2": math.exp(float(ekf.x[0]))})
    assert math.isfinite(estimate.growth_rate) and estimate.od_filtered > 0


def test_the_coupled_noises_and_the_scaled_drift_act_only_while_doses_tie_the_rate_to_the_biomass():
    """Without doses the coupled settings change nothing (the real recording's filter); with doses they do."""
    rows, _ = changing_culture(3, lambda t: max(0.1, 0.5 - 0.4 * t / (2 * 3600)), seed=5)
    base = FilterSettings()
    other = FilterSettings(coupled_rate_process_std=0.05, coupled_drift_process_std=0.2, drift_boost_readings=0.0,
                           slope_boost_std=0.0)
    alone = [e.growth_rate for e in run(GrowthRateCalculator(base), rows)]
    assert alone == [e.growth_rate for e in run(GrowthRateCalculator(other), rows)]
    dosed, doses, _ = sawtooth(hours=3.0)
    with_doses = [e.growth_rate for e in run_with_doses(GrowthRateCalculator(base), dosed, doses)]
    assert with_doses != [e.growth_rate for e in run_with_doses(GrowthRateCalculator(other), dosed, doses)]


def test_a_restarted_filter_keeps_the_rate_tied_to_the_biomass_while_doses_continue():
    rows, doses, _ = sawtooth(hours=4.0)
    first = GrowthRateCalculator()
    run_with_doses(first, rows, doses)
    carried = first.ekf.carry_over()
    assert carried["coupled_until"] is not None and carried["x"][2] < 0  # slope learned from the doses
    fresh = GrowthRateEKF(FilterSettings(), carried["t"] + 60, 0.0, 1e-4, {"2": 1e-4}, prior=carried)
    assert fresh.carry_over()["coupled_until"] == carried["coupled_until"]
    assert fresh.x[3] == pytest.approx(carried["x"][2])


def test_a_restart_within_two_hours_of_a_step_keeps_the_falling_drift_from_growing():
    """The step rule survives a restart: a filter resumed 30 min after a step without a dosing event does not grow
    its falling drift until ``slope_memory_h`` after the step; a state cached before that rule (no
    ``stepped_until``) still loads, and its drift grows."""
    settings = FilterSettings()
    tau = settings.drift_correlation_h
    first = GrowthRateEKF(settings, 0.0, 0.0, 1e-4, {"2": 1e-4}, rate=0.5)
    first.mark_dilution()
    carried = first.carry_over()
    assert carried["stepped_until"] == pytest.approx(settings.slope_memory_h * 3600)
    assert json.loads(json.dumps(carried)) == carried  # the job caches it as JSON

    def drift_after_restart(prior):
        resumed = GrowthRateEKF(settings, 1800.0, 0.0, 1e-4, {"2": 1e-4}, prior=prior)
        resumed.x[2] = -0.1
        resumed.predict(1800.0 + 0.5 * 3600)
        return float(resumed.x[2])

    assert drift_after_restart(carried) == pytest.approx(-0.1 * math.exp(-0.5 / tau))
    old = {key: value for key, value in carried.items() if key != "stepped_until"}
    assert drift_after_restart(old) < -0.1  # no step known: the fall accelerates


def test_a_restart_does_not_extrapolate_a_falling_drift_over_the_time_the_job_was_down():
    """Over a restart's gap the filter knows nothing of what happened (doses may have come): a falling drift
    carried over only forgets itself there (Singer), it does not grow with the rate as it does between readings."""
    settings = FilterSettings()
    first = GrowthRateEKF(settings, 0.0, 0.0, 1e-4, {"2": 1e-4}, rate=0.5)
    first.x[2] = -0.1
    carried = first.carry_over()
    gap_h = 3.0
    resumed = GrowthRateEKF(settings, gap_h * 3600, 0.0, 1e-4, {"2": 1e-4}, prior=carried)
    assert resumed.x[2] == pytest.approx(-0.1 * math.exp(-gap_h / settings.drift_correlation_h))
    tau = settings.drift_correlation_h
    assert resumed.x[1] == pytest.approx(0.5 - 0.1 * tau * (1 - math.exp(-gap_h / tau)))
    first.predict(gap_h * 3600)  # a filter that kept running extrapolates the fall
    assert first.x[2] < resumed.x[2]


GAPS_H = {"1 day": 24.0, "30 days": 30 * 24.0, "1 year": 365 * 24.0, "100 years": 100 * 365 * 24.0}
MAX_STEPS = int(MAX_READING_GAP_H / MAX_GROWTH_STEP_H) + 1  # the stepped part of a gap, and what is left of it


def count_steps(monkeypatch):
    """Count the filter's prediction steps (calls of its transition)."""
    steps = [0]
    transition = GrowthRateEKF._transition

    def counted(self, dt):
        steps[0] += 1
        return transition(self, dt)

    monkeypatch.setattr(GrowthRateEKF, "_transition", counted)
    return steps


def finite(estimate):
    return (all(math.isfinite(v) for v in (estimate.growth_rate, estimate.growth_rate_std, estimate.log_od_std))
            and 0 < estimate.od_filtered < math.inf and all(math.isfinite(v) for v in estimate.state)
            and all(math.isfinite(v) for row in estimate.covariance for v in row))


@pytest.mark.parametrize("gap", GAPS_H)
@pytest.mark.parametrize("rate, drift", [(1.0, 0.0), (0.5, -0.05)], ids=["steady", "falling"])
def test_a_reading_after_a_long_gap_gives_a_finite_estimate_in_a_bounded_number_of_steps(monkeypatch, gap, rate, drift):
    """A steady 1 h⁻¹ culture predicted over a month put ℓ past 709 (exp overflowed: OverflowError); a falling
    drift that keeps growing was predicted in steps of 3 min over the whole gap (14,400 for 30 days, 175,000 for a
    year). Now at most a day is stepped; a longer gap is bridged and the level taken from the new reading."""
    ekf = GrowthRateEKF(FilterSettings(), 0.0, 0.0, 1e-4, {"2": 1e-4}, rate=rate)
    ekf.x[2] = drift
    steps = count_steps(monkeypatch)
    t = GAPS_H[gap] * 3600
    estimate = ekf.update(t, {"2": 1.7})
    assert steps[0] <= MAX_STEPS
    assert finite(estimate)
    if GAPS_H[gap] > MAX_READING_GAP_H:  # bridged: the level is the new reading's, the rate kept
        assert estimate.od_filtered == pytest.approx(1.7, rel=1e-6)
        tau = FilterSettings().drift_correlation_h
        assert estimate.growth_rate == pytest.approx(rate + drift * tau, abs=1e-6)  # the drift forgot itself
    steps[0] = 0
    following = [ekf.update(t + 5.0 * i, {"2": 1.7}) for i in range(1, 4)]
    assert steps[0] <= 3 and all(finite(e) for e in following)


def test_the_rate_variance_after_a_gap_stops_growing_at_the_bound():
    """A rate SD of thousands of h⁻¹ after a year only costs the updates their precision: beyond
    MAX_READING_GAP_H the rate's variance is that of the bound, the same for a month as for a century, and the
    filter finds the culture's rate again from the readings after the gap."""
    stds = {}
    for gap, gap_h in GAPS_H.items():
        ekf = GrowthRateEKF(FilterSettings(), 0.0, 0.0, 1e-4, {"2": 1e-4}, rate=0.5)
        stds[gap] = ekf.update(gap_h * 3600, {"2": 2.0}).growth_rate_std
    assert stds["30 days"] == stds["1 year"] == stds["100 years"]
    assert stds["1 day"] < stds["30 days"] < 2.0
    ekf = GrowthRateEKF(FilterSettings(), 0.0, 0.0, 1e-4, {"2": 1e-4}, rate=0.5)
    start = GAPS_H["1 year"] * 3600
    rng = random.Random(4)
    estimates = [ekf.update(start + INTERVAL_S * i, {"2": 2.0 * math.exp(0.2 * INTERVAL_S * i / 3600)
                                                        * (1 + rng.gauss(0, 0.01))}) for i in range(2 * 720)]
    assert estimates[-1].growth_rate == pytest.approx(0.2, abs=0.03)


@pytest.mark.parametrize("gap", ["30 days", "100 years"])
def test_a_job_restarted_after_a_long_downtime_resumes_with_a_finite_bounded_state(gap):
    first = GrowthRateEKF(FilterSettings(), 0.0, 0.0, 1e-4, {"2": 1e-4}, rate=0.5)
    first.x[2] = -0.05
    carried = first.carry_over()
    resumed = GrowthRateEKF(FilterSettings(), GAPS_H[gap] * 3600, 0.1, 1e-4, {"2": 1e-4}, prior=carried)
    bounded = GrowthRateEKF(FilterSettings(), MAX_READING_GAP_H * 3600, 0.1, 1e-4, {"2": 1e-4}, prior=carried)
    # widened as over the bound, no further (what differs is the drift's e^{-gap/τ}, e^{-12} at the bound)
    assert resumed.P[1, 1] == pytest.approx(bounded.P[1, 1], rel=1e-4)
    assert finite(resumed.update(GAPS_H[gap] * 3600 + 5, {"2": 1.1}))


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, -0.3, 0.0])
def test_a_reading_that_is_not_a_positive_number_never_stops_the_filter(bad):
    """After the warm-up: NaN and ±inf are left out; zero and negative readings (an unplugged photodiode) are
    flagged and not assimilated (a run of −0.3 drove ℓ to −67,000 in five readings, then divided by zero); a long
    run of them, a gap, and a first reading after the gap that gives no level (the next positive one does) all
    leave the estimates finite."""
    calc = GrowthRateCalculator(skip_first=0, normalization=Normalization({"2": 1.0}, {"2": 1e-4}))
    good = [calc.on_od(5.0 * i, {"2": math.exp(0.3 * 5.0 * i / 3600)}) for i in range(100)]
    assert all(e is not None and finite(e) for e in good)
    after = [calc.on_od(500.0 + 5.0 * i, {"2": bad}) for i in range(2000)]
    assert all(e is None or finite(e) for e in after)
    if math.isfinite(bad):  # 0 and -0.3 (NaN and ±inf never reach the filter: None)
        assert all(e is not None and e.outliers == ("2",) for e in after)
    else:
        assert all(e is None for e in after)
    late = 500.0 + GAPS_H["1 year"] * 3600
    assert calc.on_od(late, {"2": bad}) is None or finite(calc.ekf.estimate())
    estimate = calc.on_od(late + 5, {"2": 0.8})
    assert finite(estimate) and estimate.od_filtered == pytest.approx(0.8, rel=1e-6)
