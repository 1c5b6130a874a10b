"""A discrete PID controller (used by the plugins' controllers: RPM, temperature, growth rate)."""

from __future__ import annotations


class PID:
    """Positional PID: ``output = Kp·e + Ki·Σe·dt + Kd·Δe/dt``, clamped to ``output_limits``.

    Args:
        kp, ki, kd: Gains (units of output per unit of error, per error·s, per error/s).
        setpoint: Target of the controlled variable.
        output_limits: ``(low, high)`` clamp of the output (and of the integral term).

    The integral is clamped too (anti-windup). ``dt`` is in seconds.
    """

    def __init__(self, kp: float, ki: float = 0.0, kd: float = 0.0, *, setpoint: float = 0.0,
                 output_limits: tuple[float, float] = (float("-inf"), float("inf"))) -> None:
        self.kp, self.ki, self.kd = kp, ki, kd
        self.setpoint = setpoint
        self.low, self.high = output_limits
        self._integral = 0.0
        self._last_error: float | None = None

    def update(self, measured: float, dt: float) -> float:
        """One step: the controller output for a ``measured`` value ``dt`` seconds after the last."""
        error = self.setpoint - measured
        if dt > 0:
            self._integral = min(max(self._integral + self.ki * error * dt, self.low), self.high)
        derivative = 0.0 if self._last_error is None or dt <= 0 else (error - self._last_error) / dt
        self._last_error = error
        output = self.kp * error + self._integral + self.kd * derivative
        return min(max(output, self.low), self.high)

    def reset(self) -> None:
        self._integral = 0.0
        self._last_error = None
