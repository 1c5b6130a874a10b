"""od_reading as a real process on the simulated vessel (real broker): the OD tracks the vessel's true OD."""

import json
import math
import signal
import time

import pytest

from reactorkit.core.clock import parse_iso
from reactorkit.core.hardware.vessel import ANGLE_GAIN
from reactorkit.core.testing import stop_process

pytestmark = pytest.mark.integration

SPEEDUP = 60


def collect(recorder, unit_env, vessel, sim_seconds, min_readings=0):
    """Readings ``[(t, od, true_od)]`` over ``sim_seconds`` (and on until ``min_readings`` have come: a busy machine
    slows the readings down); the true OD is the model's, moved to the reading's time."""
    truth = []
    start = vessel.clock.now()
    deadline, wall_deadline = start + sim_seconds, time.monotonic() + 120
    topic = unit_env.topic("od_reading", "ods")

    def count():
        return sum(1 for p in recorder.json_values(topic) if parse_iso(p["timestamp"]) >= start)

    while vessel.clock.now() < deadline or (count() < min_readings and time.monotonic() < wall_deadline):
        g = vessel.ground_truth()
        truth.append((g["t"], g["od"], g["growth_rate"]))
        time.sleep(0.05)
    out = []
    for payload in recorder.json_values(unit_env.topic("od_reading", "ods")):
        t = parse_iso(payload["timestamp"])
        if not truth[0][0] <= t <= truth[-1][0]:
            continue
        t_g, od, mu = min(truth, key=lambda row: abs(row[0] - t))
        out.append((t, payload["ods"]["2"], od * math.exp(mu * (t - t_g) / 3600)))
    return out


def test_calibrated_od_tracks_the_true_od_across_a_vial_change(unit_env, mqtt_recorder, spawn_job, make_vessel,
                                                               write_od_calibration):
    unit_env.speedup = SPEEDUP
    vessel = make_vessel()
    write_od_calibration("90")
    spawn_job("od_reading")
    mqtt_recorder.wait_for(unit_env.topic("od_reading", "ods"), timeout=20)
    low = collect(mqtt_recorder, unit_env, vessel, 300)
    vessel.reset(od=0.8, substrate=1.2)  # a denser culture in the vial
    vessel.clock.sleep(15)
    high = collect(mqtt_recorder, unit_env, vessel, 300)
    assert len(low) > 20 and len(high) > 20
    for readings in (low, high):
        assert all(r["calibrated"] == 1 and r["calibration_name"] == "vessel_fit" for _, r, _ in readings)
        assert all(abs(r["od"] / true - 1) < 0.10 for _, r, true in readings)
    assert sum(r["od"] for _, r, _ in high) / len(high) == pytest.approx(0.8, rel=0.05)


def test_uncalibrated_signal_follows_the_photodiode_response(unit_env, mqtt_recorder, spawn_job, make_vessel):
    """Without a calibration the OD is the REF-normalised 90° signal: (V − dark) / REF, with the vessel's
    V = (I/80)·(0.002 + 0.5·OD/(1 + 0.15·OD)) and REF = 0.25·(I/80) — so it is proportional to that response."""
    unit_env.speedup = SPEEDUP
    vessel = make_vessel()
    spawn_job("od_reading")
    mqtt_recorder.wait_for(unit_env.topic("od_reading", "ods"), timeout=20)

    def expected(od):
        return (0.002 + ANGLE_GAIN["90"] * od / (1 + 0.15 * od)) / 0.25

    results = []
    for od in (0.05, 1.0):
        vessel.reset(od=od, substrate=2.0 - od)
        vessel.clock.sleep(15)
        readings = collect(mqtt_recorder, unit_env, vessel, 200, min_readings=12)
        assert len(readings) > 10
        assert all(r["calibrated"] == 0 for _, r, _ in readings)
        ratios = [r["od"] / expected(true) for _, r, true in readings]
        results.append(sum(ratios) / len(ratios))
    assert results[0] == pytest.approx(1.0, abs=0.05)
    assert results[1] == pytest.approx(results[0], rel=0.03)  # same proportionality at OD 0.05 and 1.0


def test_the_ir_led_is_off_between_readings_and_after_stopping(unit_env, mqtt_recorder, spawn_job, make_vessel):
    unit_env.speedup = SPEEDUP
    vessel = make_vessel()
    vessel.set_led("B", 40.0)
    proc = spawn_job("od_reading")
    mqtt_recorder.wait_for(unit_env.topic("od_reading", "ods"), timeout=20)
    samples = []
    for _ in range(20):
        samples.append(vessel.get_leds())
        time.sleep(0.02)
    assert any(s["A"] == 0.0 for s in samples)  # a 5 s interval and a ~0.1 s reading: mostly off
    assert stop_process(proc, signal.SIGTERM) == 0
    assert vessel.get_leds() == {"A": 0.0, "B": 40.0, "C": 0.0, "D": 0.0}


def test_readings_are_spaced_by_the_interval_and_it_can_be_changed(unit_env, mqtt_recorder, spawn_job):
    # slower than the others: a reading's own duration on a busy machine (a fraction of a wall second) stays well
    # inside the 20 s interval, so the gaps measure the schedule
    unit_env.speedup = 10
    spawn_job("od_reading")
    topic = unit_env.topic("od_reading", "ods")
    mqtt_recorder.wait_for(topic, timeout=20)
    mqtt_recorder.publish(unit_env.topic("od_reading", "interval", "set"), "20")
    mqtt_recorder.wait_for(unit_env.topic("od_reading", "interval"), lambda p: p == b"20.0")
    since = time.monotonic()
    deadline = time.monotonic() + 60
    stamps = []
    while len(stamps) < 5 and time.monotonic() < deadline:
        stamps = [parse_iso(json.loads(p)["timestamp"]) for t, p, _, at in list(mqtt_recorder.messages)
                  if t == topic and at >= since and p]
        time.sleep(0.1)
    gaps = sorted(b - a for a, b in zip(stamps, stamps[1:]))
    assert len(gaps) >= 4
    assert gaps[len(gaps) // 2] == pytest.approx(20.0, abs=1.0)  # median: a loaded machine may delay one beat
    assert gaps[0] > 18.0
    first = float(mqtt_recorder.wait_for(unit_env.topic("od_reading", "first_od_obs_time"), lambda p: bool(p)))
    assert first <= stamps[0]
