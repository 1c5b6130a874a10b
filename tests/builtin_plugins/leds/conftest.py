"""Fixtures: the simulated vessel's ground truth for the unit of ``unit_env``."""

import pytest


@pytest.fixture
def ground_truth(unit_env, monkeypatch):
    """``ground_truth()`` → the vessel model's true state now (``rpm``, ``temperature_c``, ``pwm``, ``leds``, ``t`` …).

    The unit's environment is applied to this process so the model file and the
    sped-up clock are the ones the job processes use.
    """
    for key, value in unit_env.env().items():
        monkeypatch.setenv(key, value)

    def read():
        from reactorkit.core.clock import Clock
        from reactorkit.core.config import load_config
        from reactorkit.core.hardware.simulated import SimulatedHardware

        clock = Clock(unit_env.speedup, unit_env.origin)
        return SimulatedHardware(load_config(), unit_env.unit, clock=clock).ground_truth()

    return read
