"""The stirring job: a PID loop on the stir motor's duty cycle."""

from __future__ import annotations

from typing import Any

from reactorkit.core.clock import RepeatedTimer
from reactorkit.core.config import pwm_channel_of
from reactorkit.core.hardware import Hardware, get_hardware
from reactorkit.core.job import BackgroundJob
from reactorkit.core.pid import PID

MAX_RPM = 5000.0
MAX_DC_STEP = 7.5  # % per update, as the Pioreactor software clamps the PID output


class Stirring(BackgroundJob):
    """Hold one unit's stir bar at ``target_rpm`` during an experiment.

    Every ``[stirring.config] duration_between_updates_seconds`` (default 23 s)
    the tachometer is read and a PID step (``[stirring.pid]`` Kp, Ki, Kd; output
    clamped to ±7.5 %) adjusts the duty cycle (0–100 %). With ``use_rpm`` false
    the duty cycle is fixed. Sleeping stops the motor; disconnecting leaves it at 0 %.

    Args:
        unit: Hostname of the unit, e.g. ``"worker3"``.
        experiment: The experiment the readings belong to.
        target_rpm: Setpoint in RPM (0–5000; default ``initial_target_rpm``, 500).
        use_rpm: Closed loop on RPM (default ``[stirring.config] use_rpm``, true).
        duty_cycle: Starting duty cycle in % (default from the active stirring
            calibration, else ``initial_duty_cycle``, 30).
        hardware: The unit's hardware (default: the configured backend).

    Raises:
        ValueError: ``target_rpm`` outside 0–5000 RPM.
    """

    job_name = "stirring"
    published_settings = {
        "target_rpm": {"datatype": "float", "settable": True, "unit": "RPM"},
        "measured_rpm": {"datatype": "json", "settable": False, "unit": "RPM"},
        "duty_cycle": {"datatype": "float", "settable": True, "unit": "%"},
    }

    def __init__(self, unit: str, experiment: str, *, target_rpm: float | None = None, use_rpm: bool | None = None,
                 duty_cycle: float | None = None, hardware: Hardware | None = None, **kwargs: Any) -> None:
        super().__init__(unit, experiment, **kwargs)
        section = "stirring.config"
        cfg = self.config
        target = cfg.getfloat(section, "initial_target_rpm", fallback=500.0) if target_rpm is None else float(target_rpm)
        self._check_rpm(target)
        self.use_rpm = cfg.getboolean_loose(section, "use_rpm", True) if use_rpm is None else bool(use_rpm)
        self.update_interval = cfg.getfloat(section, "duration_between_updates_seconds", fallback=23.0)
        self.hardware = hardware or get_hardware(cfg, unit)
        self.channel = pwm_channel_of(cfg, "stirring") or 1
        self.pid = PID(
            cfg.getfloat("stirring.pid", "Kp", fallback=0.005),
            cfg.getfloat("stirring.pid", "Ki", fallback=0.0),
            cfg.getfloat("stirring.pid", "Kd", fallback=0.0),
            setpoint=target,
            output_limits=(-MAX_DC_STEP, MAX_DC_STEP),
        )
        self.target_rpm = target
        self.measured_rpm = None
        initial = duty_cycle if duty_cycle is not None else self._initial_duty_cycle(target)
        self._set_motor(initial)
        self._last_update = self.clock.now()
        self.timer = RepeatedTimer(
            self.update_interval, self.poll_and_update, clock=self.clock, run_after=min(5.0, self.update_interval),
            on_error=lambda exc: self.logger.error("stirring update failed: %s", exc), name="stirring",
        )

    @staticmethod
    def _check_rpm(value: float) -> None:
        if not 0 <= value <= MAX_RPM:
            raise ValueError(f"target_rpm must be within 0–{MAX_RPM:.0f} RPM, got {value}")

    def _initial_duty_cycle(self, target_rpm: float) -> float:
        """Duty cycle (%) for ``target_rpm`` from the active stirring calibration, else config."""
        try:
            from reactorkit.core.calibration_store import active_curve_inverse

            value = active_curve_inverse("stirring", target_rpm)
            if value is not None:
                self.logger.debug("initial duty cycle %.1f %% from the stirring calibration", value)
                return min(max(value, 0.0), 100.0)
        except Exception as exc:
            self.logger.debug("no usable stirring calibration: %s", exc)
        return self.config.getfloat("stirring.config", "initial_duty_cycle", fallback=30.0)

    def _set_motor(self, duty_cycle: float) -> None:
        duty_cycle = min(max(float(duty_cycle), 0.0), 100.0)
        self.hardware.set_pwm(self.channel, duty_cycle)
        self.duty_cycle = duty_cycle

    def _post_init(self) -> None:
        super()._post_init()
        self.timer.start()

    # -------------------------------------------------------------- settings
    def set_target_rpm(self, value: float) -> None:
        self._check_rpm(value)
        self.target_rpm = float(value)
        self.pid.setpoint = self.target_rpm
        self.pid.reset()
        if not self.use_rpm:
            return
        estimate = self._initial_duty_cycle(self.target_rpm) if value else 0.0
        self._set_motor(estimate if self.duty_cycle == 0 or value == 0 else self.duty_cycle)

    def set_duty_cycle(self, value: float) -> None:
        if not 0 <= value <= 100:
            raise ValueError(f"duty_cycle must be within 0–100 %, got {value}")
        self._set_motor(value)

    # ------------------------------------------------------------------ loop
    def poll_and_update(self) -> float | None:
        """Measure RPM, publish it, and move the duty cycle one PID step. Returns the RPM."""
        if self.state != "ready":
            return None
        rpm = self.hardware.measure_rpm(2.0)
        now = self.clock.now()
        self.measured_rpm = {"measured_rpm": round(rpm, 1), "timestamp": self.clock.utc_iso(now)}
        if self.use_rpm and self.target_rpm > 0:
            step = self.pid.update(rpm, now - self._last_update)
            self._set_motor(self.duty_cycle + step)
        self._last_update = now
        return rpm

    def block_until_rpm_is_close_to_target(self, tolerance_rpm: float = 20.0, timeout_s: float = 60.0) -> bool:
        """Poll faster until |RPM − target| ≤ tolerance (simulated seconds); True if reached."""
        deadline = self.clock.now() + timeout_s
        while self.clock.now() < deadline:
            rpm = self.poll_and_update()
            if rpm is None or abs(rpm - self.target_rpm) <= tolerance_rpm:
                return rpm is not None
        return False

    # ------------------------------------------------------------- lifecycle
    def on_ready_to_sleeping(self) -> None:
        self.timer.pause()
        self._set_motor(0.0)

    def on_sleeping_to_ready(self) -> None:
        self._set_motor(self._initial_duty_cycle(self.target_rpm))
        self.timer.unpause()

    def on_disconnected(self) -> None:
        self.timer.cancel()
        self.hardware.set_pwm(self.channel, 0.0)
