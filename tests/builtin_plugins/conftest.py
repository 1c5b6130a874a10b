"""Fixtures shared by the plugin tests: a simulated vessel made to order and an OD calibration matching it."""

import pytest


@pytest.fixture
def make_vessel(unit_env, monkeypatch):
    """``make_vessel()`` → a ``SimulatedHardware`` on the unit's vessel file and sped-up clock
    (ground truth, PWM, LEDs), reading the unit's config as it is now.

    Set ``unit_env.speedup`` (and write any config) before calling it.
    """
    for key, value in unit_env.env().items():
        monkeypatch.setenv(key, value)

    def make():
        from reactorkit.core.clock import Clock
        from reactorkit.core.config import load_config
        from reactorkit.core.hardware.simulated import SimulatedHardware

        return SimulatedHardware(load_config(), unit_env.unit, clock=Clock(unit_env.speedup, unit_env.origin))

    return make


@pytest.fixture
def write_od_calibration(unit_env, monkeypatch):
    """``write_od_calibration(angle="90", ir=80.0)`` → an active ``od{angle}`` calibration (OD600 → volts)
    fitted to the vessel model's photodiode response, written into the unit's ``$DOT_PIOREACTOR``."""
    for key, value in unit_env.env().items():
        monkeypatch.setenv(key, value)

    def write(angle="90", ir=80.0, name="vessel_fit", channel="2"):
        from reactorkit.core.calibration_store import save_calibration
        from reactorkit.core.curves import fit_spline
        from reactorkit.core.hardware.vessel import Vessel, VesselParameters, VesselState

        ods = [0.01 * (3.0 / 0.01) ** (i / 24) for i in range(25)]  # 0.01 … 3.0, log-spaced
        volts = []
        for od in ods:
            model = Vessel(VesselParameters(noise_fraction=0.0), VesselState(t=0.0, od=od))
            samples = [model.photodiode_voltages({2: angle}, ir)[2] for _ in range(40)]
            volts.append(sum(samples) / len(samples))
        record = {
            "calibration_type": "od600",
            "calibration_name": name,
            "calibrated_on_pioreactor_unit": unit_env.unit,
            "created_at": "2026-01-01T00:00:00.000000Z",
            "curve_data_": fit_spline(ods, volts),
            "x": "OD600",
            "y": "Voltage",
            "recorded_data": {"x": ods, "y": volts},
            "ir_led_intensity": ir,
            "angle": angle,
            "pd_channel": channel,
        }
        save_calibration(f"od{angle}", record, set_active=True)
        return record

    return write
