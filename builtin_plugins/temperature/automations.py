"""Built-in temperature automations: ``thermostat`` and ``only_record_temperature``."""

from __future__ import annotations

import math
from typing import Any

from reactorkit.plugin import AutomationEvent, ErrorOccurred, NoEvent, UpdatedHeaterDC
from reactorkit.plugin import get_config
from reactorkit.plugin import PID, automation_settings

from .base import TemperatureAutomationJob
from .descriptors import AUTOMATIONS
from .limits import heating_limits

GAINS_SECTION = "temperature_automation.thermostat"
#: Default gains (per reading cycle). They are the Pioreactor's for its heater board, and they also hold
#: the simulated vessel (0.5 ℃ per % heater, τ = 600 s, 200 s cycle): 22 → 30 ℃ in about 25 min without
#: overshoot, then within ±0.1 ℃. Override with [temperature_automation.thermostat] Kp, Ki, Kd.
DEFAULT_GAINS = {"Kp": 2.6, "Ki": 0.0, "Kd": 4.6}
MAX_DC_CHANGE = 25.0  # % per cycle: the PID output is clamped to ±25


class Thermostat(TemperatureAutomationJob):
    """Hold the vial at ``target_temperature`` (℃) with a PID loop on the heater.

    After each temperature reading the PID output (gains ``[temperature_automation.thermostat]``
    Kp, Ki, Kd, default 2.6, 0, 4.6, applied per reading cycle; clamped to ±25 %)
    is added to the heater duty cycle (0–100 %), and an ``UpdatedHeaterDC``
    event ``{current_dc, delta_dc, target_temperature, latest_temperature}`` is published.

    Args:
        target_temperature: ℃; capped at the model's ``max_temp_to_reduce_heating`` (78 ℃) with a warning.

    Raises:
        ValueError: ``target_temperature`` missing, not a number or negative.
    """

    automation_name = "thermostat"
    published_settings = automation_settings(AUTOMATIONS, "thermostat")  # its fields, declared once

    def __init__(self, unit: str, experiment: str, *, target_temperature: float | str | None = None,
                 **kwargs: Any) -> None:
        cfg = kwargs.get("config") or get_config()
        target = self._parse_target(target_temperature)
        cap = heating_limits(cfg).reduce_c
        super().__init__(unit, experiment, **kwargs)
        gains = {k: cfg.getfloat(GAINS_SECTION, k, fallback=v) for k, v in DEFAULT_GAINS.items()}
        self.pid = PID(gains["Kp"], gains["Ki"], gains["Kd"], setpoint=min(target, cap),
                       output_limits=(-MAX_DC_CHANGE, MAX_DC_CHANGE))
        self.target_temperature = self._capped(target)

    @staticmethod
    def _parse_target(value: Any) -> float:
        if value is None or value == "":
            raise ValueError("target_temperature is required (℃), e.g. --target-temperature 30")
        try:
            target = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"target_temperature must be a number of ℃, got {value!r}") from None
        if not math.isfinite(target) or target < 0:
            raise ValueError(f"target_temperature must be a temperature ≥ 0 ℃, got {value!r}")
        return target

    def _capped(self, target: float) -> float:
        cap = self.limits.reduce_c
        if target > cap:
            self.logger.warning("target_temperature %.1f ℃ is above the limit of this model; using %.1f ℃.", target, cap)
            return cap
        return target

    def set_target_temperature(self, value: float) -> None:
        target = self._capped(self._parse_target(value))
        self.pid.setpoint = target
        self.target_temperature = target

    def execute(self) -> AutomationEvent:
        if self.heating_disabled:
            return ErrorOccurred(message="Heating is disabled by a safety limit; only recording the temperature.")
        if self.latest_temperature is None:
            return NoEvent(message="No temperature reading yet.")
        delta = self.pid.update(self.latest_temperature, 1.0)  # gains are per reading cycle
        current = self.update_heater(self.heater_duty_cycle + delta)
        return UpdatedHeaterDC(
            message=f"Heater duty cycle {current:.2f} % (Δ {delta:+.2f} %).",
            data={
                "current_dc": round(current, 3),
                "delta_dc": round(delta, 3),
                "target_temperature": self.target_temperature,
                "latest_temperature": round(self.latest_temperature, 3),
            },
        )


class OnlyRecordTemperature(TemperatureAutomationJob):
    """Record the temperature; the heater stays off."""

    automation_name = "only_record_temperature"

    def execute(self) -> AutomationEvent:
        self.update_heater(0.0)
        return NoEvent(message=f"Temperature {self.latest_temperature:.2f} ℃." if self.latest_temperature is not None
                       else "No temperature reading yet.")
