"""Fixtures for dosing tests: a simulated unit with calibrated pumps and the vessel's ground truth."""

from dataclasses import dataclass
from typing import Any, Callable

import pytest

PUMP_DUTY_CYCLE = 20.0  # % — the simulated pump then moves pump_ml_per_second × 0.2 mL/s


@dataclass
class DosingUnit:
    """A simulated unit prepared for dosing.

    Attributes:
        env: The :class:`reactorkit.core.testing.UnitEnv`.
        ml_per_second: The calibrated (and true) pump rate (mL/s).
        truth: ``truth()`` → the vessel model's state now (``volume_ml``, ``od``, ``growth_rate`` …).
        bookkeeping: ``bookkeeping()`` → the unit's six bioreactor variables for the experiment.
    """

    env: Any
    ml_per_second: float
    truth: Callable[[], dict]
    bookkeeping: Callable[[], dict]


@pytest.fixture
def dosing_unit(unit_env, monkeypatch) -> Callable[..., DosingUnit]:
    """``dosing_unit(config_text="", speedup=…, calibrate=True)`` → :class:`DosingUnit`.

    Writes ``config.ini`` (``config_text`` appended to the test defaults), applies the
    unit's environment to this process, makes the unit's clock (its speed-up and origin, as
    its job processes have it) the process-wide clock of this process (the in-process API's
    pump limits compare it with the times the jobs wrote in the pump ledger) and, with
    ``calibrate``, saves an active calibration for each pump that matches the simulated pump
    at 20 % duty cycle.
    """
    from reactorkit.core.clock import set_clock

    def make(config_text: str = "", speedup: float | None = None, calibrate: bool = True,
             pump_ml_per_second: float = 0.5) -> DosingUnit:
        from reactorkit.core.clock import Clock
        from reactorkit.core.config import load_config, set_config
        from reactorkit.core.hardware.simulated import SimulatedHardware

        if speedup is not None:
            unit_env.speedup = speedup
        unit_env.write_config(f"[simulation]\npump_ml_per_second = {pump_ml_per_second}\n\n{config_text}\n")
        for key, value in unit_env.env().items():
            monkeypatch.setenv(key, value)
        set_config(None)
        config = load_config()
        rate = pump_ml_per_second * PUMP_DUTY_CYCLE / 100.0
        if calibrate:
            from reactorkit.builtin_plugins.dosing.calibration import pump_calibration_record
            from reactorkit.core.calibration_store import save_calibration

            for device in ("media_pump", "alt_media_pump", "waste_pump"):
                record = pump_calibration_record(device, rate, name=f"sim_{device}", unit=unit_env.unit,
                                                 created_at="2025-01-01T00:00:00.000Z", dc=PUMP_DUTY_CYCLE)
                save_calibration(device, record, set_active=True)
        clock = Clock(unit_env.speedup, unit_env.origin)
        set_clock(clock)  # not one an earlier test left in this process, with its own speed-up and origin
        hardware = SimulatedHardware(config, unit_env.unit, clock=clock)

        def bookkeeping() -> dict:
            from reactorkit.builtin_plugins.dosing.bioreactor import BioreactorStore

            return BioreactorStore(config).get(unit_env.experiment)

        return DosingUnit(env=unit_env, ml_per_second=rate, truth=hardware.ground_truth, bookkeeping=bookkeeping)

    yield make
    from reactorkit.core.config import set_config

    set_config(None)
    set_clock(None)
