"""od_reading + growth_rate_calculating as real processes on the simulated vessel (real broker).

The 90° and 135° channels carry calibrations fitted to the vessel's
photodiodes, so the published ODs are OD600 and the estimated growth rate can
be compared with the model's true μ (h⁻¹).

The start-up bound (10 %) is the estimator's worst start-up error 25–45 min after its first reading over 60 noise
seeds of a culture growing at 0.4 h⁻¹ (growth-rate README, ``falling_drift_growth``): 5.6 % read every 5 s,
9.2 % every 20 s. Two things of the machine used to move this test away from that figure: its window was timed
from the vessel's creation, so a slow start of the jobs (minutes of simulated time on a busy machine: 7 min in
a loaded run) put it closer to the estimator's start; and at 150× a 5-s reading had 33 ms of wall time, so a busy
machine dropped readings (gaps of 12–18 s at the 90th percentile, up to 130 s). Now the window is timed from the
first reading, and at 100× a reading has 50 ms.
"""

import json
import time

import pytest

from reactorkit.core.clock import Clock, parse_iso
from reactorkit.core.config import pwm_channel_of

pytestmark = pytest.mark.integration

SPEEDUP = 100


class Truth:
    """Ground truth sampled from the vessel model: ``(t, growth_rate, od)`` rows, interpolated on demand."""

    def __init__(self, vessel):
        self.vessel = vessel
        self.rows = []

    def sample(self):
        truth = self.vessel.ground_truth()
        self.rows.append((truth["t"], truth["growth_rate"], truth["od"]))
        return truth

    def at(self, t, column=1):
        rows = self.rows
        for (t0, *a), (t1, *b) in zip(rows, rows[1:]):
            if t0 <= t <= t1:
                w = (t - t0) / (t1 - t0) if t1 > t0 else 0.0
                return a[column - 1] + w * (b[column - 1] - a[column - 1])
        raise LookupError(f"no ground truth around {t}")


def estimates(recorder, unit_env, key="growth_rate", job="growth_rate_calculating"):
    return [(parse_iso(v["timestamp"]), v[key]) for v in recorder.json_values(unit_env.topic(job, key))]


def run_until(recorder, unit_env, truth, t_end, timeout=120):
    """Sample the truth while the jobs run, until an estimate at or after simulated time ``t_end`` arrives."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        truth.sample()
        latest = estimates(recorder, unit_env)
        if latest and latest[-1][0] >= t_end:
            truth.sample()
            return
        time.sleep(0.25)
    raise TimeoutError(f"no growth-rate estimate reached t={t_end}")


def test_growth_rate_tracks_the_vessel_and_recovers_after_a_dilution(unit_env, mqtt_recorder, spawn_job, make_vessel,
                                                                      write_od_calibration):
    unit_env.speedup = SPEEDUP
    # two calibrated angles (90° on channel 2, 135° on channel 3) observe the culture
    unit_env.write_config("[od_config.photodiode_channel]\n1 = REF\n2 = 90\n3 = 135\n")
    vessel = make_vessel()
    clock = vessel.clock
    write_od_calibration("90", channel="2")
    write_od_calibration("135", channel="3")
    truth = Truth(vessel)
    truth.sample()
    spawn_job("growth_rate_calculating")  # ready before the first reading, so that it sees every one
    mqtt_recorder.wait_for(unit_env.topic("growth_rate_calculating", "$state"), lambda p: p == b"ready", timeout=60)
    spawn_job("od_reading")
    first = parse_iso(json.loads(mqtt_recorder.wait_for(unit_env.topic("od_reading", "ods"), timeout=60))["timestamp"])

    # exponential growth: after the filter settles (25 min after its first reading), within 10 % of the true μ
    run_until(mqtt_recorder, unit_env, truth, first + 45 * 60)
    window = [(t, g) for t, g in estimates(mqtt_recorder, unit_env) if first + 25 * 60 <= t <= first + 45 * 60]
    assert len(window) > 60  # ≥ 1 reading every 20 s, the sparsest stream the bound is derived for
    errors = [abs(g - truth.at(t)) / truth.at(t) for t, g in window]
    assert max(errors) < 0.10, f"max relative error {max(errors):.3f}"

    # the calibrated OD is OD600
    ods = [(parse_iso(v["timestamp"]), v["ods"][channel]["od"])
           for v in mqtt_recorder.json_values(unit_env.topic("od_reading", "ods")) for channel in ("2", "3")]
    late = [(t, od) for t, od in ods if first + 25 * 60 <= t <= first + 45 * 60]
    assert all(abs(od / truth.at(t, column=2) - 1) < 0.10 for t, od in late)

    # a dilution: media and waste pumps on for 4 s (2 mL at 0.5 mL/s), then waste alone, and its dosing event;
    # the vessel times the pumps in simulated time (a sleep here would be stretched by a busy machine,
    # and every wall millisecond is 0.1 s of pumping at this speed-up)
    config = vessel.config
    media, waste = pwm_channel_of(config, "media"), pwm_channel_of(config, "waste")
    od_before = truth.sample()["od"]
    media_on = vessel.set_pwm_for(media, 100.0, 4.0)
    waste_on = vessel.set_pwm_for(waste, 100.0, 6.0)
    while truth.sample()["t"] < waste_on + 6.0:
        time.sleep(0.005)
    after = truth.sample()
    assert after["cumulative_media_ml"] == pytest.approx(2.0)
    # the dose is stamped with the time its media pump stopped, as pumps stamp theirs (the filter rewinds the 30 s
    # before it): the time this loop saw the pumps off is later by however long a busy machine held it up
    dose_t = media_on + 4.0
    assert after["od"] < 0.92 * od_before  # the culture really was diluted
    mqtt_recorder.publish(unit_env.topic("dosing_events"), json.dumps(
        {"volume_change": 2.0, "event": "add_media", "source_of_event": "test", "timestamp": clock.utc_iso(dose_t)}),
        qos=2)

    run_until(mqtt_recorder, unit_env, truth, dose_t + 25 * 60)
    recovered = [(t, g) for t, g in estimates(mqtt_recorder, unit_env) if dose_t + 10 * 60 <= t <= dose_t + 25 * 60]
    assert len(recovered) > 45
    errors = [abs(g - truth.at(t)) / truth.at(t) for t, g in recovered]
    assert max(errors) < 0.10, f"max relative error after the dilution {max(errors):.3f}"
    # the filtered OD follows the dilution: its ratio to the vessel's true OD is the same soon after the dose as
    # just before it (growth in between cancels). "Soon" is within 10 simulated minutes: 6 s of wall time at this
    # speed-up, in which a busy machine may hand the dosing event to the job after some later readings (the
    # estimator then re-anchors from the event's timestamp; what it already published stays as published)
    filtered = estimates(mqtt_recorder, unit_env, key="od_filtered")
    t_before, v_before = [(t, v) for t, v in filtered if dose_t - 60 <= t < dose_t - 10][-1]
    t_soon, v_soon = [(t, v) for t, v in filtered if dose_t + 30 <= t <= dose_t + 600][-1]
    assert v_soon / truth.at(t_soon, column=2) == pytest.approx(v_before / truth.at(t_before, column=2), rel=0.03)
