"""μ = D in a chemostat: the growth rate of calibrated OD is the vessel's true μ.

The simulated photodiode is not linear in biomass (V = v0 + g·OD/(1 + 0.15·OD)),
so the slope of ln(signal) is not the slope of ln(biomass). An OD calibration
made with the od_reading ``standards`` protocol on the simulated vessel (the
protocol places each standard in the vessel and reads the photodiode) maps the
signal back to OD600, which is proportional to biomass: then the estimator's
growth rate is the culture's. The chemostat is the pure vessel model driven
the way the chemostat automation drives the pumps, read every 5 s through the
calibration the way ``od_reading`` applies it.
"""

import math
import statistics

import falcon.testing
import pytest

from reactorkit.builtin_plugins.growth_rate.estimator import GrowthRateCalculator
from reactorkit.builtin_plugins.od_reading.processing import apply_calibration
from reactorkit.core.hardware.vessel import Vessel, VesselParameters, VesselState

STANDARDS = [3.0, 2.0, 1.5, 1.0, 0.5, 0.25, 0.1]  # OD600; the blank (0) comes last
EXCHANGE_ML, EVERY_S, VOLUME_ML = 0.5, 20 * 60.0, 14.0  # the demo's chemostat
HOURS, LAST_H = 16.0, 6.0


@pytest.fixture
def od90_calibration(unit_env, monkeypatch):
    """The ``standards`` session for ``od90`` run through this unit's API (in process, simulated
    backend, actions inline); returns the active calibration it saved."""
    from reactorkit.api.app import create_app
    from reactorkit.core import calibration_store
    from reactorkit.core.clock import Clock, set_clock
    from reactorkit.core.config import set_config
    from reactorkit.core.plugins import Registry

    for key, value in unit_env.env().items():
        monkeypatch.setenv(key, value)
    (unit_env.root / "unit_config.ini").write_text("[calibrations]\naction_runner = inline\n")
    set_config(None)
    set_clock(Clock(speedup=50.0))
    registry = Registry.installed()
    try:
        client = falcon.testing.TestClient(create_app(registry, unit=unit_env.unit))
        reply = client.simulate_post("/unit_api/calibrations/sessions",
                                     json={"target_device": "od90", "protocol_name": "standards"}).json
        queue = list(STANDARDS)
        answers = {"settings": lambda: {"calibration_name": "standards-sim", "ir_led_intensity": 80.0},
                   "place_standard": lambda: {"od600": queue.pop(0)},
                   "next": lambda: {"next": "another_standard" if queue else "blank"},
                   "place_blank": lambda: {"blank_od600": 0.0}}
        sid = reply["session"]["session_id"]
        for _ in range(50):
            step = reply["step"]
            if step["step_type"] == "result":
                break
            answer = answers.get(step["step_id"], dict)()
            reply = client.simulate_post(f"/unit_api/calibrations/sessions/{sid}/inputs",
                                         json={"inputs": answer}).json
        assert reply["session"]["status"] == "complete", reply
        yield calibration_store.active_calibration("od90")
    finally:
        set_clock(None)
        set_config(None)


def chemostat(to_signal, seed=3):
    """16 h of the demo's chemostat from OD 1.0 (half the substrate left); returns ``(hours, true μ, estimate)`` rows and
    the mean dilution rate ln((V+Δ)/V)/interval (h⁻¹)."""
    vessel = Vessel(VesselParameters(seed=seed), VesselState(t=0.0, od=1.0, substrate=1.0, volume_ml=VOLUME_ML))
    vessel.s.leds["A"] = 80.0
    calc = GrowthRateCalculator()
    rows, t, next_dose = [], 0.0, EVERY_S
    while t < HOURS * 3600:
        t += 5.0
        if t >= next_dose:
            # media (1 s at 0.5 mL/s), then the waste pump back to the efflux tube, as the automation does
            volume = vessel.s.volume_ml
            vessel.advance(t - 4.0)
            vessel.s.pwm["2"] = 100.0
            vessel.s.pwm_off_at["2"] = t - 3.0
            vessel.advance(t - 2.5)
            calc.on_dosing(t - 2.5, volume_change_ml=EXCHANGE_ML, event="add_media", vial_volume_ml=volume)
            vessel.s.pwm["4"] = 100.0
            vessel.s.pwm_off_at["4"] = t - 0.5
            vessel.advance(t - 0.5)
            calc.on_dosing(t - 0.5, volume_change_ml=2 * EXCHANGE_ML, event="remove_waste",
                           vial_volume_ml=volume + EXCHANGE_ML)
            next_dose += EVERY_S
        vessel.advance(t)
        estimate = calc.on_od(t, {"2": to_signal(vessel.photodiode_voltages({2: "90"}, 80.0)[2])})
        if estimate is not None:
            rows.append((t / 3600, vessel.growth_rate_per_hour(), estimate.growth_rate))
    return rows, math.log((VOLUME_ML + EXCHANGE_ML) / VOLUME_ML) / (EVERY_S / 3600)


def last_hours_means(rows):
    late = [r for r in rows if r[0] >= HOURS - LAST_H]
    return statistics.fmean(r[1] for r in late), statistics.fmean(r[2] for r in late)


def test_the_standards_calibration_makes_od_linear_in_biomass(od90_calibration):
    vessel = Vessel(VesselParameters(noise_fraction=0.0), VesselState(t=0.0))
    for od in (0.3, 0.8, 1.6, 1.9, 2.1):
        vessel.s.od = od
        volts = vessel.photodiode_voltages({2: "90"}, 80.0)[2]
        assert apply_calibration(od90_calibration, volts)[0] == pytest.approx(od, rel=0.02)
    # the local slope d ln(OD)/d ln(biomass) is 1 where the chemostat settles (OD ≈ 1.9)
    lo, hi = [apply_calibration(od90_calibration, _volts(vessel, od))[0] for od in (1.8, 2.0)]
    assert math.log(hi / lo) / math.log(2.0 / 1.8) == pytest.approx(1.0, abs=0.03)


def _volts(vessel, od):
    vessel.s.od = od
    return vessel.photodiode_voltages({2: "90"}, 80.0)[2]


def test_a_chemostat_on_calibrated_od_estimates_its_true_growth_rate_and_dilution_rate(od90_calibration):
    rows, dilution_rate = chemostat(lambda volts: apply_calibration(od90_calibration, volts)[0])
    true_mu, estimated = last_hours_means(rows)
    assert true_mu == pytest.approx(dilution_rate, rel=0.03)  # the vessel is at steady state: μ = D
    assert estimated == pytest.approx(true_mu, rel=0.03)
    assert estimated == pytest.approx(dilution_rate, rel=0.03)


def test_the_uncalibrated_signal_underestimates_the_chemostats_growth_rate():
    rows, dilution_rate = chemostat(lambda volts: volts)
    true_mu, estimated = last_hours_means(rows)
    assert abs(estimated / true_mu - 1) > 0.03  # why the demo must calibrate OD
