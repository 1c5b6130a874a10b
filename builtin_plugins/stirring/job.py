"""The stirring job: a PID loop on the stir motor's duty cycle, optionally dodging OD readings."""

from __future__ import annotations

import threading
from typing import Any

from reactorkit.plugin import mqtt as mq
from reactorkit.plugin import RepeatedTimer, parse_iso
from reactorkit.plugin import get_config, pwm_channel_of
from reactorkit.plugin import Hardware, get_hardware
from reactorkit.plugin import READY, BackgroundJob
from reactorkit.plugin import PID

from .descriptors import STIRRING
from .dodging import OdDodger

SETTINGS = {s.key: s for s in STIRRING.published_settings}
MAX_DC_STEP = 7.5  # % per update: the Pioreactor software clamps the PID output to ±7.5
KICK_DUTY_CYCLE = 100.0  # a stopped motor is started at full power …
KICK_DURATION_S = 0.5  # … for about half a second (Pioreactor "kick")
MAX_DC_AFTER_STALL = 60.0  # a re-kicked stalled motor is left at no more than 60 %
STIRRING_FAILED_ERROR_CODE = 4  # monitor blink code "stirring" (domain facts §3.9)
MEASURE_S = 2.0  # tachometer averaging window, seconds
SECTION = "stirring.config"


class Stirring(BackgroundJob):
    """Hold one unit's stir bar at ``target_rpm`` during an experiment.

    Every ``[stirring.config] duration_between_updates_seconds`` (default 23 s)
    the tachometer is read, ``measured_rpm`` (``{measured_rpm, timestamp}``) is
    published, and a PID step (``[stirring.pid]`` Kp 0.005, Ki 0, Kd 0; output
    clamped to ±7.5 %) is added to the duty cycle (0–100 %). With ``use_rpm``
    false the duty cycle is fixed. A stopped motor is started with a kick
    (100 % for 0.5 s). At start the job polls faster until the speed is within
    ±20 RPM of the target (at most 60 s). A measured 0 RPM with a positive
    target logs a warning, asks the monitor to blink error code 4 and re-kicks
    the motor (duty cycle then at most 60 %). Sleeping stops the motor;
    disconnecting leaves it at 0 %.

    Dodging OD readings (``enable_dodging_od``, default ``[stirring.config]
    enable_dodging_od``): while ``od_reading`` runs, its retained ``interval``
    and ``first_od_obs_time`` settings (read over MQTT, or from the unit's job
    registry) place a window around each reading, from ``pre_delay_duration``
    (1.5 s) before it to ``post_delay_duration`` (0.25 s) after it ended. In
    the window the stirrer runs at ``target_rpm_during_od_reading`` (default
    0: stopped) and no PID step is taken; after it the previous duty cycle is
    restored. ``currently_dodging_od`` tells whether this is happening.

    Args:
        unit: Hostname of the unit, e.g. ``"worker3"``.
        experiment: The experiment the readings belong to.
        target_rpm: Setpoint in RPM (0–5000; default ``initial_target_rpm``, 500).
        use_rpm: Closed loop on RPM (default ``[stirring.config] use_rpm``, true).
        duty_cycle: Starting duty cycle in % (default from the active stirring
            calibration, else ``initial_duty_cycle``, 30).
        enable_dodging_od: Step out of the way of OD readings.
        hardware: The unit's hardware (default: the configured backend).

    Raises:
        ValueError: ``target_rpm`` outside 0–5000 RPM or ``duty_cycle`` outside 0–100 %.
    """

    job_name = "stirring"
    published_settings = STIRRING.published_settings  # type, unit, editability and bounds: declared once

    def __init__(self, unit: str, experiment: str, *, target_rpm: float | None = None, use_rpm: bool | None = None,
                 duty_cycle: float | None = None, enable_dodging_od: bool | None = None,
                 hardware: Hardware | None = None, **kwargs: Any) -> None:
        cfg = kwargs.get("config") or get_config()
        target = cfg.getfloat(SECTION, "initial_target_rpm", fallback=500.0) if target_rpm is None else float(target_rpm)
        self._check_rpm("target_rpm", target)
        if duty_cycle is not None:
            self._check_duty_cycle(float(duty_cycle))
        # od_reading settings may arrive (retained) while the base class connects
        self._od_lock = threading.Lock()
        self._od_values: dict[str, float | None] = {}
        self._dodger: OdDodger | None = None
        super().__init__(unit, experiment, **kwargs)
        self.use_rpm = cfg.getboolean_loose(SECTION, "use_rpm", True) if use_rpm is None else bool(use_rpm)
        self.update_interval = cfg.getfloat(SECTION, "duration_between_updates_seconds", fallback=23.0)
        self.hardware = hardware or get_hardware(cfg, unit)
        self.channel = pwm_channel_of(cfg, "stirring") or 1
        self.pid = PID(
            cfg.getfloat("stirring.pid", "Kp", fallback=0.005),
            cfg.getfloat("stirring.pid", "Ki", fallback=0.0),
            cfg.getfloat("stirring.pid", "Kd", fallback=0.0),
            setpoint=target,
            output_limits=(-MAX_DC_STEP, MAX_DC_STEP),
        )
        self._motor_lock = threading.RLock()
        self._stopping = False
        self._stop_event = threading.Event()  # cuts a kick short when the job stops
        self._window_generation = 0
        self._dc_outside: float | None = None
        self._requested_dc = None if duty_cycle is None else float(duty_cycle)
        self.target_rpm = target
        self.measured_rpm = None
        self.duty_cycle = 0.0
        dodging = cfg.getboolean_loose(SECTION, "enable_dodging_od", False) if enable_dodging_od is None else bool(enable_dodging_od)
        self.enable_dodging_od = dodging
        self.currently_dodging_od = False
        self.target_rpm_during_od_reading = self._config_rpm_during() if dodging else None
        self.target_rpm_outside_od_reading = target if dodging else None
        dodger = OdDodger(
            self._before_od_reading, self._after_od_reading, clock=self.clock,
            pre_delay_s=cfg.getfloat(SECTION, "pre_delay_duration", fallback=1.5),
            post_delay_s=cfg.getfloat(SECTION, "post_delay_duration", fallback=0.25),
            on_error=lambda exc: self.logger.error("dodging OD readings failed: %s", exc),
        )
        with self._od_lock:
            self._dodger = dodger
            dodger.update(interval_s=self._od_values.get("interval"), first_obs_time=self._od_values.get("first_od_obs_time"))
        self._last_update = self.clock.now()
        self.timer = RepeatedTimer(
            self.update_interval, self.poll_and_update, clock=self.clock, run_after=min(5.0, self.update_interval),
            on_error=lambda exc: self.logger.error("stirring update failed: %s", exc), name="stirring",
        )

    # ------------------------------------------------------------ validation
    @staticmethod
    def _check_rpm(name: str, value: float) -> None:
        SETTINGS[name].check(value)  # the descriptor's bounds (SettingOutOfRange is a ValueError)

    @staticmethod
    def _check_duty_cycle(value: float) -> None:
        SETTINGS["duty_cycle"].check(value)

    def _config_rpm_during(self) -> float:
        value = self.config.getfloat(SECTION, "target_rpm_during_od_reading", fallback=0.0)
        self._check_rpm("target_rpm_during_od_reading", value)
        return value

    # ----------------------------------------------------------- duty cycles
    def _calibrated_duty_cycle(self, rpm: float) -> float | None:
        """Duty cycle (%) for ``rpm`` from the active stirring calibration, or None without one."""
        try:
            from reactorkit.plugin import active_curve_inverse

            value = active_curve_inverse("stirring", rpm)
        except Exception as exc:
            self.logger.debug("no usable stirring calibration: %s", exc)
            return None
        if value is None:
            return None
        self.logger.debug("duty cycle %.1f %% for %.0f RPM from the stirring calibration", value, rpm)
        return min(max(float(value), 0.0), 100.0)

    def _initial_duty_cycle(self, target_rpm: float) -> float:
        """Duty cycle (%) for ``target_rpm`` from the active stirring calibration, else config."""
        value = self._calibrated_duty_cycle(target_rpm)
        if value is not None:
            return value
        return self.config.getfloat(SECTION, "initial_duty_cycle", fallback=30.0)

    def _set_motor(self, duty_cycle: float) -> None:
        duty_cycle = min(max(float(duty_cycle), 0.0), 100.0)
        with self._motor_lock:
            if self._stopping:  # disconnecting: the motor stays off
                return
            self.hardware.set_pwm(self.channel, duty_cycle)
            self.duty_cycle = duty_cycle

    def _kick_then(self, duty_cycle: float) -> None:
        """Start a stopped motor at 100 % for 0.5 s, then settle at ``duty_cycle`` (%)."""
        with self._motor_lock:
            if duty_cycle > 0 and self.duty_cycle == 0 and not self._stopping:
                self.hardware.set_pwm(self.channel, KICK_DUTY_CYCLE)
                self.clock.wait(self._stop_event, KICK_DURATION_S)
            self._set_motor(duty_cycle)

    def start_stirring(self) -> None:
        """Start the motor: the requested or estimated duty cycle, with a kick from 0."""
        with self._motor_lock:
            if self.use_rpm and self.target_rpm == 0:
                self._set_motor(0.0)
                return
            if self._requested_dc is not None:
                dc, self._requested_dc = self._requested_dc, None
            else:
                dc = self._initial_duty_cycle(self.target_rpm)
            self._kick_then(dc)

    # ------------------------------------------------------------- lifecycle
    def _post_init(self) -> None:
        super()._post_init()
        # settling may take up to 60 s: do it off the main thread so a stop is never kept waiting
        threading.Thread(target=self._settle_then_regulate, name="stirring-settle", daemon=True).start()

    def _settle_then_regulate(self) -> None:
        """Kick the motor, poll until within 20 RPM of the target (≤ 60 s), then start the PID timer."""
        self.start_stirring()
        if self.use_rpm and self.target_rpm > 0:
            reached = self.block_until_rpm_is_close_to_target()
            if not reached and self.state == READY:
                self.logger.debug("stirring is not yet within 20 RPM of %.0f RPM after 60 s", self.target_rpm)
        if self.is_disconnected or self._stopping:
            return
        self.timer.start()
        if self.enable_dodging_od:
            self._start_dodging()

    def on_ready_to_sleeping(self) -> None:
        self.timer.pause()
        with self._motor_lock:
            if not self._in_od_window():
                self._dc_outside = self.duty_cycle
            self._set_motor(0.0)

    def on_sleeping_to_ready(self) -> None:
        self.pid.reset()
        with self._motor_lock:
            if not self._in_od_window():
                if self._dc_outside and self.use_rpm and self.target_rpm > 0:
                    self._kick_then(self._dc_outside)  # where it ran before sleeping
                else:
                    self.start_stirring()
        self.timer.unpause()

    def on_disconnected(self) -> None:
        self._stopping = True
        self._stop_event.set()  # a kick in progress ends now, so the motor lock is free at once
        self.timer.cancel()
        if self._dodger is not None:
            self._dodger.stop()
        with self._motor_lock:
            self.hardware.set_pwm(self.channel, 0.0)

    # -------------------------------------------------------------- settings
    def set_target_rpm(self, value: float) -> None:
        self._check_rpm("target_rpm", value)
        with self._motor_lock:
            self.target_rpm = float(value)
            if self.enable_dodging_od:
                self.target_rpm_outside_od_reading = self.target_rpm
            self.pid.setpoint = self.target_rpm
            self.pid.reset()
            if self.state != READY:
                self._dc_outside = None  # on waking, start from the estimate for the new target
            if not self.use_rpm or self.state != READY or self._in_od_window():
                return  # applied when the window closes / on waking
            if self.target_rpm == 0:
                self._set_motor(0.0)
            elif self.duty_cycle == 0:
                self.start_stirring()
            else:
                estimate = self._calibrated_duty_cycle(self.target_rpm)
                if estimate is not None:
                    self._set_motor(estimate)

    def set_target_rpm_outside_od_reading(self, value: float) -> None:
        """Same as setting ``target_rpm`` (the speed between OD readings)."""
        self.set_target_rpm(value)

    def set_target_rpm_during_od_reading(self, value: float) -> None:
        self._check_rpm("target_rpm_during_od_reading", value)
        with self._motor_lock:
            self.target_rpm_during_od_reading = float(value)
            if self._in_od_window() and self.state == READY:
                self._set_motor(self._during_duty_cycle())

    def set_duty_cycle(self, value: float) -> None:
        self._check_duty_cycle(value)
        with self._motor_lock:
            if self._in_od_window():
                self._dc_outside = float(value)
                return
            self._set_motor(value)

    def set_enable_dodging_od(self, value: bool) -> None:
        value = bool(value)
        if value == self.enable_dodging_od:
            return
        if value:
            self.target_rpm_during_od_reading = self._config_rpm_during()
            self.target_rpm_outside_od_reading = self.target_rpm
            self.enable_dodging_od = True
            if self.state in (READY, "sleeping"):
                self._start_dodging()
        else:
            self.enable_dodging_od = False
            if self._dodger is not None:
                self._dodger.stop()  # closes an open window: the motor is restored
            self.currently_dodging_od = False
            self.target_rpm_during_od_reading = None
            self.target_rpm_outside_od_reading = None

    # --------------------------------------------------------------- dodging
    def on_mqtt_connect(self, client: Any) -> None:
        for setting in ("interval", "first_od_obs_time"):
            client.subscribe(mq.job_topic(self.unit, self.experiment, "od_reading", setting, config=self.config),
                             qos=mq.QOS_AT_LEAST_ONCE)

    def on_message(self, message: Any) -> None:
        parts = message.topic.split("/")
        if len(parts) < 2 or parts[-2] != "od_reading" or parts[-1] not in ("interval", "first_od_obs_time"):
            return
        self._on_od_setting(parts[-1], parse_od_setting(message.payload))

    def _on_od_setting(self, name: str, value: float | None) -> None:
        with self._od_lock:
            self._od_values[name] = value
            dodger = self._dodger
            if dodger is None:
                return
            if name == "interval":
                dodger.update(interval_s=value)
            else:
                dodger.update(first_obs_time=value)
        if self.__dict__.get("enable_dodging_od"):
            self._refresh_dodging_state()

    def _od_settings_from_registry(self) -> None:
        """Fill missing od_reading settings from the unit's job registry (od_reading's published values)."""
        if self._od_values.get("interval") is not None and self._od_values.get("first_od_obs_time") is not None:
            return
        try:
            rows = self.registry.running(job_name="od_reading")
            settings = self.registry.settings(rows[0].job_id) if rows else {}
        except Exception as exc:
            self.logger.debug("cannot read od_reading from the job registry: %s", exc)
            return
        for name in ("interval", "first_od_obs_time"):
            if self._od_values.get(name) is None and settings.get(name) is not None:
                self._on_od_setting(name, parse_od_setting(settings[name]))

    def _start_dodging(self) -> None:
        self._od_settings_from_registry()
        if self._dodger is not None:
            self._dodger.start()
        self._refresh_dodging_state()

    def _refresh_dodging_state(self) -> None:
        dodger = self._dodger
        active = bool(self.enable_dodging_od and dodger is not None and dodger.active)
        if dodger is not None and dodger.problem and self.enable_dodging_od:
            self.logger.warning("not dodging OD readings: %s", dodger.problem)
        if active != self.currently_dodging_od:
            self.currently_dodging_od = active

    def _in_od_window(self) -> bool:
        return self._dodger is not None and self._dodger.in_window

    def _during_duty_cycle(self) -> float:
        during = self.target_rpm_during_od_reading or 0.0
        if during <= 0:
            return 0.0
        calibrated = self._calibrated_duty_cycle(during)
        if calibrated is not None:
            return calibrated
        outside = self._dc_outside if self._dc_outside is not None else self.duty_cycle
        if self.target_rpm > 0 and outside > 0:
            return min(outside * during / self.target_rpm, 100.0)  # proportional to the running point
        return self._initial_duty_cycle(during)

    def _before_od_reading(self) -> None:
        with self._motor_lock:
            self._window_generation += 1
            if self._stopping or self.state != READY:
                return
            self._dc_outside = self.duty_cycle
            self._set_motor(self._during_duty_cycle())

    def _after_od_reading(self) -> None:
        with self._motor_lock:
            self._window_generation += 1
            if self._stopping or self.state != READY:
                return
            if self.use_rpm and self.target_rpm == 0:
                self._set_motor(0.0)
                return
            dc = self._dc_outside if self._dc_outside is not None else self._initial_duty_cycle(self.target_rpm)
            self._kick_then(dc)

    def _wait_for_clear_slot(self) -> float:
        """With dodging on, sleep until a stretch outside the OD windows; returns the seconds to measure."""
        dodger = self._dodger
        schedule = dodger.schedule if dodger is not None and dodger.active else None
        if schedule is None:
            return MEASURE_S
        settle = KICK_DURATION_S + 0.5
        now = self.clock.now()
        start, length = schedule.clear_slot(now)
        if start > now:  # just after a window: let the kick settle
            start, length = start + settle, length - settle
        if length < 0.75:
            start, length = schedule.clear_slot(start + max(length, 0.0) + 1e-6)
            start, length = start + settle, length - settle
        self.clock.sleep(start - now)
        return max(0.5, min(MEASURE_S, length - 0.25))

    # ------------------------------------------------------------------ loop
    def poll_and_update(self) -> float | None:
        """Measure RPM, publish it, and move the duty cycle one PID step.

        Returns:
            The RPM, or None when not ready or the measurement overlapped an OD window.
        """
        if self.state != READY:
            return None
        duration = self._wait_for_clear_slot()
        generation = self._window_generation
        if self.state != READY or self._in_od_window():
            return None
        rpm = self.hardware.measure_rpm(duration)
        with self._motor_lock:
            if self.state != READY or generation != self._window_generation or self._in_od_window():
                return None  # an OD window (or a state change) came in between
            now = self.clock.now()
            self.measured_rpm = {"measured_rpm": round(rpm, 1), "timestamp": self.clock.utc_iso(now)}
            if self.use_rpm and self.target_rpm > 0:
                step = self.pid.update(rpm, now - self._last_update)
                if rpm == 0:
                    self._handle_stall(step)
                else:
                    self._set_motor(self.duty_cycle + step)
            self._last_update = now
        return rpm

    def _handle_stall(self, step: float) -> None:
        self.logger.warning("Stirring RPM is 0 with a target of %.0f RPM; restarting the motor.", self.target_rpm)
        topic = mq.job_topic(self.unit, "$experiment", "monitor", "flicker_led_with_error_code", config=self.config)
        self.mqtt.publish(topic, str(STIRRING_FAILED_ERROR_CODE), qos=mq.QOS_AT_LEAST_ONCE)
        if self._stopping:
            return
        restart_dc = min(max(self.duty_cycle + step, 0.0), MAX_DC_AFTER_STALL)
        self.hardware.set_pwm(self.channel, KICK_DUTY_CYCLE)
        self.clock.wait(self._stop_event, KICK_DURATION_S)
        self._set_motor(restart_dc)

    def block_until_rpm_is_close_to_target(self, tolerance_rpm: float = 20.0, timeout_s: float = 60.0) -> bool:
        """Poll back to back until |RPM − target| ≤ ``tolerance_rpm`` or ``timeout_s``
        (simulated seconds) passed; True if reached."""
        deadline = self.clock.now() + timeout_s
        while self.clock.now() < deadline and self.state == READY:
            rpm = self.poll_and_update()
            if rpm is not None and abs(rpm - self.target_rpm) <= tolerance_rpm:
                return True
        return False


def parse_od_setting(payload: bytes | str | float | int | None) -> float | None:
    """od_reading's ``interval`` (s) or ``first_od_obs_time`` (epoch s, or an ISO-8601 time) as a float.

    Empty payloads (od_reading stopped) and unreadable ones give None.
    """
    if payload is None:
        return None
    if isinstance(payload, (int, float)):
        return float(payload)
    text = payload.decode("utf-8", errors="replace") if isinstance(payload, bytes) else str(payload)
    text = text.strip().strip('"')
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        try:
            return parse_iso(text)
        except ValueError:
            return None
