"""Vial temperature from a burst of sensor samples, and the heating limits per model."""

import math

import pytest

from reactorkit.builtin_plugins.temperature.inference import asymptotic_temperature, mean_temperature
from reactorkit.builtin_plugins.temperature.limits import HeatingLimits, default_reading_cadence, heating_limits
from reactorkit.core.config import Config


def test_mean_of_samples_when_the_heater_stayed_on():
    assert mean_temperature([29.9, 30.0, 30.1]) == pytest.approx(30.0)
    with pytest.raises(ValueError):
        mean_temperature([])


def test_cooling_curve_asymptote_is_recovered():
    times = [5.0 * i for i in range(21)]
    temps = [31.0 + 6.0 * math.exp(-t / 40.0) for t in times]  # PCB cooling from 37 towards the 31 ℃ vial
    assert asymptotic_temperature(times, temps) == pytest.approx(31.0, abs=0.05)


def test_flat_samples_give_their_mean_and_too_few_the_last():
    assert asymptotic_temperature([0, 5, 10, 15], [30.0, 30.02, 29.98, 30.0]) == pytest.approx(30.0)
    assert asymptotic_temperature([0, 5], [33.0, 32.0]) == 32.0


def test_limits_follow_the_model_and_config(monkeypatch):
    config = Config()
    monkeypatch.setenv("MODEL_NAME", "pioreactor_20ml")
    monkeypatch.setenv("MODEL_VERSION", "1.0")
    assert heating_limits(config) == HeatingLimits(63.0, 65.0, 66.0)
    assert default_reading_cadence() == (225.0, 29)
    monkeypatch.setenv("MODEL_NAME", "pioreactor_40ml")
    monkeypatch.setenv("MODEL_VERSION", "1.5")
    assert heating_limits(config) == HeatingLimits(78.0, 80.0, 85.0)
    assert default_reading_cadence() == (200.0, 21)
    config.read_string("[temperature_automation.config]\nmax_temp_to_disable_heating = 45\nmax_temp_to_reduce_heating = 40\n")
    assert heating_limits(config) == HeatingLimits(40.0, 45.0, 85.0)


def test_limits_out_of_order_are_refused():
    with pytest.raises(ValueError, match="max_temp_to_reduce_heating"):
        HeatingLimits(reduce_c=90.0, disable_c=80.0, shutdown_c=85.0)
