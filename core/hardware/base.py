"""The interface every hardware backend implements."""

from __future__ import annotations

from typing import Any, Mapping


class HardwareError(RuntimeError):
    """The hardware cannot do what was asked (missing channel, bus error …)."""


LED_CHANNELS = ("A", "B", "C", "D")
PWM_CHANNELS = (1, 2, 3, 4, 5)
ADC_CHANNELS = (1, 2, 3, 4)


class Hardware:
    """One unit's actuators and sensors.

    Units: duty cycles and LED intensities in percent (0–100), voltages in V,
    temperatures in °C, a stirrer's speed in RPM, durations in (simulated) seconds.

    ``pwm_survives_power_loss``: True when a channel left on stays on across a
    power cut of the unit (the simulated vessel); False on a Pi, whose pins
    reset at boot.
    """

    pwm_survives_power_loss: bool = False

    def set_pwm(self, channel: int, duty_cycle: float) -> None:
        """Set PWM ``channel`` (1–5) to ``duty_cycle`` % (0 turns it off).

        Raises:
            HardwareError: unknown channel; ValueError: duty cycle outside 0–100.
        """
        raise NotImplementedError

    def get_pwm(self, channel: int) -> float:
        """Current duty cycle (%) of ``channel``."""
        raise NotImplementedError

    def set_pwm_for(self, channel: int, duty_cycle: float, seconds: float) -> float | None:
        """Turn ``channel`` on at ``duty_cycle`` % for ``seconds`` (clock seconds), e.g. a timed pump run.

        A backend with a timer of its own (the simulated vessel) turns the
        channel off by itself after exactly ``seconds``, however late the caller
        is (a sped-up clock magnifies scheduling delays), and returns the clock
        time at which the channel went on. The default has no timer: it sets the
        duty cycle and returns None. Either way the caller ends the run with
        ``set_pwm(channel, 0)`` (earlier to stop early; harmless once off).
        """
        self.set_pwm(channel, duty_cycle)
        return None

    def set_led(self, channel: str, intensity: float) -> None:
        """Set LED ``channel`` (``"A"``–``"D"``) to ``intensity`` %."""
        raise NotImplementedError

    def get_leds(self) -> dict[str, float]:
        """``{"A": %, "B": %, "C": %, "D": %}``."""
        raise NotImplementedError

    def read_photodiodes(self, channels: tuple[int, ...] = ADC_CHANNELS) -> dict[int, float]:
        """One ADC reading per photodiode channel, in volts (dark offset not removed)."""
        raise NotImplementedError

    def read_temperature(self) -> float:
        """The vessel (heater PCB) temperature in °C."""
        raise NotImplementedError

    def measure_rpm(self, duration_s: float = 2.0) -> float:
        """Stirring speed in RPM from the tachometer, averaged over ``duration_s``."""
        raise NotImplementedError

    def all_off(self) -> None:
        """Every PWM channel to 0 and every LED off (safe state)."""
        for channel in PWM_CHANNELS:
            self.set_pwm(channel, 0.0)
        for led in LED_CHANNELS:
            self.set_led(led, 0.0)

    def ground_truth(self) -> Mapping[str, Any] | None:
        """Simulation only: the model's true state (OD, growth rate, volume …); None on real hardware."""
        return None


def check_duty_cycle(value: float) -> float:
    """Validate a percentage.

    Raises:
        ValueError: not within 0–100.
    """
    value = float(value)
    if not 0.0 <= value <= 100.0:
        raise ValueError(f"duty cycle / intensity must be within 0–100 %, got {value}")
    return value
