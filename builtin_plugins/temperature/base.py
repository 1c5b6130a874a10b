"""The family base of temperature automations: periodic readings, the heater, safety limits."""

from __future__ import annotations

import threading
from typing import Any, ClassVar

from reactorkit.plugin import AutomationJob, ErrorOccurred
from reactorkit.plugin import RepeatedTimer
from reactorkit.plugin import get_config, pwm_channel_of
from reactorkit.plugin import Hardware, backend_name, get_hardware
from reactorkit.plugin import DISCONNECTED, READY

from .inference import asymptotic_temperature, mean_temperature
from .limits import SECTION, HeatingLimits, default_reading_cadence, heating_limits

SAFETY_CHECK_INTERVAL_S = 53.0  # the Pioreactor checks the heater PCB every 53 s
REDUCE_FACTOR = 0.9  # above max_temp_to_reduce_heating the duty cycle is multiplied by this


class TemperatureAutomationJob(AutomationJob):
    """Base class of every temperature automation (host job ``temperature_automation``).

    Every ``reading_interval_seconds`` (default 200 s; 225 s on the 20 mL v1.0)
    it takes ``samples_per_reading`` (21; 29) sensor samples
    ``seconds_between_samples`` (5 s) apart, infers the vial temperature,
    publishes ``temperature`` ``{"temperature": °C (2 dp), "timestamp"}`` and,
    when ready, runs :meth:`execute`. With ``heater_off_while_sampling`` (default
    ``auto``: on real hardware only, where the sensor sits on the heater PCB)
    the heater is off during the samples and the vial temperature is the
    asymptote of the cooling curve; otherwise it is their mean. All four are
    keys of ``[temperature_automation.config]``.

    Safety (every 53 s and after every reading; limits from the model, see
    :mod:`.limits`): above ``max_temp_to_reduce_heating`` the heater duty cycle
    is multiplied by 0.9 (warning); above ``max_temp_to_disable_heating``
    (80 °C) the heater goes to 0 % and stays there for the rest of the run
    (error log, ``ErrorOccurred`` event); above ``max_temp_to_shutdown`` the
    same, logged as a request to shut the unit down (the process does not power
    the computer off).

    Heating stops when temperature readings stop: when the sensor cannot be
    read at a safety check, or no reading succeeded for
    ``max_temperature_age_seconds`` (default 2.5 reading intervals), the heater
    goes to 0 % (error log, ``ErrorOccurred`` event) until a reading succeeds
    again (info log); then :meth:`execute` sets it as usual.

    Sleeping turns the heater off (readings continue, :meth:`execute` does not
    run); waking restores the duty cycle. Disconnecting leaves the heater at 0 %.

    Subclasses set ``automation_name`` and implement :meth:`execute`, changing
    the heater only through :meth:`update_heater`. There is no ``duration``
    timer: a ``duration`` option is ignored and ``/set`` of it refused.

    Args:
        unit, experiment: As :class:`~reactorkit.core.job.BackgroundJob`.
        hardware: The unit's hardware (default: the configured backend).
        **kwargs: Passed to :class:`~reactorkit.core.automation.AutomationJob`.

    Raises:
        ValueError: ``[PWM]`` has no ``heating`` channel, the reading cadence does
            not fit in its interval, or the limits are inconsistent.
    """

    job_name = "temperature_automation"
    automation_type: ClassVar[str] = "temperature"
    published_settings = {
        "temperature": {"datatype": "json", "settable": False, "unit": "℃"},
        "heater_duty_cycle": {"datatype": "float", "settable": False, "unit": "%"},
    }

    def __init__(self, unit: str, experiment: str, *, hardware: Hardware | None = None, **kwargs: Any) -> None:
        cfg = kwargs.get("config") or get_config()
        channel = pwm_channel_of(cfg, "heating")
        if channel is None:
            raise ValueError("[PWM] has no channel for 'heating'; add e.g. 5 = heating to config.ini")
        self.limits: HeatingLimits = heating_limits(cfg)
        interval, samples = default_reading_cadence()
        self.reading_interval_s = cfg.getfloat(SECTION, "reading_interval_seconds", fallback=interval)
        self.samples_per_reading = cfg.getint(SECTION, "samples_per_reading", fallback=samples)
        self.seconds_between_samples = cfg.getfloat(SECTION, "seconds_between_samples", fallback=5.0)
        burst = (self.samples_per_reading - 1) * self.seconds_between_samples
        if self.samples_per_reading < 1 or burst >= self.reading_interval_s:
            raise ValueError(
                f"{self.samples_per_reading} samples {self.seconds_between_samples} s apart do not fit in "
                f"reading_interval_seconds = {self.reading_interval_s}"
            )
        mode = (cfg.get(SECTION, "heater_off_while_sampling", fallback="auto") or "auto").strip().lower()
        self.heater_off_while_sampling = (backend_name(cfg) == "pi") if mode == "auto" else cfg.getboolean_loose(
            SECTION, "heater_off_while_sampling", False)
        self.safety_check_interval_s = cfg.getfloat(SECTION, "safety_check_interval_seconds",
                                                    fallback=SAFETY_CHECK_INTERVAL_S)
        self._heater_lock = threading.RLock()
        self._stopping = False
        self._sampling = False
        self._heating_disabled = False
        self._readings_stopped = False
        self.max_temperature_age_s = cfg.getfloat(SECTION, "max_temperature_age_seconds",
                                                  fallback=2.5 * self.reading_interval_s)
        if not self.max_temperature_age_s > 0:
            raise ValueError(f"[{SECTION}] max_temperature_age_seconds must be > 0 s, got {self.max_temperature_age_s}")
        self._dc_before_sleep = 0.0
        self.latest_temperature: float | None = None
        self.latest_temperature_at: float | None = None
        kwargs.pop("duration", None)  # execute runs after each reading, never on a timer
        kwargs.pop("skip_first_run", None)
        super().__init__(unit, experiment, **kwargs)
        self._watch_started_at = self.clock.now()
        self.hardware = hardware or get_hardware(cfg, unit)
        self.heater_channel = channel
        self.temperature = None
        self.heater_duty_cycle = 0.0
        self.hardware.set_pwm(self.heater_channel, 0.0)
        self._reading_timer = RepeatedTimer(
            self.reading_interval_s, self.read_and_execute, clock=self.clock, run_immediately=True,
            on_error=self._on_execute_error, name="temperature-reading",
        )
        self._safety_timer = RepeatedTimer(
            self.safety_check_interval_s, self.check_heating_limits, clock=self.clock,
            on_error=lambda exc: self.logger.error("temperature safety check failed: %s", exc), name="heater-safety",
        )

    def _post_init(self) -> None:
        super()._post_init()
        self._reading_timer.start()
        self._safety_timer.start()

    # ------------------------------------------------------------------ heater
    @property
    def heating_disabled(self) -> bool:
        """True once a safety limit has switched heating off for the rest of the run."""
        return self._heating_disabled

    def update_heater(self, duty_cycle: float) -> float:
        """Set the heater's duty cycle (%, clamped to 0–100); returns what was applied.

        While heating is disabled by a safety limit, while sleeping and while
        disconnecting the heater stays at 0 %. During a heater-off sample burst
        the value is recorded and applied when the burst ends.
        """
        duty_cycle = min(max(float(duty_cycle), 0.0), 100.0)
        with self._heater_lock:
            if self._stopping:
                return 0.0
            if self._heating_disabled or self._readings_stopped or self.state not in (READY, "init"):
                duty_cycle = 0.0
            if not (self._sampling and self.heater_off_while_sampling):
                self.hardware.set_pwm(self.heater_channel, duty_cycle)
            self.heater_duty_cycle = duty_cycle
            return duty_cycle

    def _disable_heating(self, message: str) -> None:
        with self._heater_lock:
            self._heating_disabled = True
            if not self._stopping:
                self.hardware.set_pwm(self.heater_channel, 0.0)
            self.heater_duty_cycle = 0.0
        self.logger.error(message)
        self.latest_event = ErrorOccurred(message=message).to_dict()

    def _stop_heating_without_readings(self, why: str) -> None:
        with self._heater_lock:
            if self._readings_stopped:
                return
            self._readings_stopped = True
            if not self._stopping:
                self.hardware.set_pwm(self.heater_channel, 0.0)
            self.heater_duty_cycle = 0.0
        message = f"Heating stopped: {why}. It resumes when temperature readings do."
        self.logger.error(message)
        self.latest_event = ErrorOccurred(message=message).to_dict()

    def check_heating_limits(self, temperature: float | None = None) -> None:
        """Compare the sensor temperature (°C; read now when None) with the limits and act (see class doc);
        without a temperature (sensor failing, readings stopped) the heater goes off."""
        if self._stopping or self.state == DISCONNECTED:
            return
        if temperature is None:
            last = self.latest_temperature_at if self.latest_temperature_at is not None else self._watch_started_at
            age = self.clock.now() - last
            if age > self.max_temperature_age_s:
                self._stop_heating_without_readings(
                    f"no temperature reading for {age:.0f} s (more than [{SECTION}] max_temperature_age_seconds = "
                    f"{self.max_temperature_age_s:g} s)")
            try:
                temp = self.hardware.read_temperature()
            except Exception as exc:
                self._stop_heating_without_readings(f"the temperature sensor cannot be read ({exc})")
                return
        else:
            temp = float(temperature)
        limits = self.limits
        if temp > limits.shutdown_c:
            self._disable_heating(
                f"Temperature {temp:.1f} ℃ is above max_temp_to_shutdown ({limits.shutdown_c:g} ℃): heating is off "
                "for the rest of this run; shut the unit down and check the heater."
            )
        elif temp > limits.disable_c:
            if not self._heating_disabled:
                self._disable_heating(
                    f"Temperature {temp:.1f} ℃ is above max_temp_to_disable_heating ({limits.disable_c:g} ℃): "
                    "the heater is forced to 0 % for the rest of this run. Take care touching the vial and heater."
                )
        elif temp > limits.reduce_c and self.heater_duty_cycle > 0:
            reduced = self.update_heater(self.heater_duty_cycle * REDUCE_FACTOR)
            self.logger.warning(
                "Temperature %.1f ℃ is above max_temp_to_reduce_heating (%g ℃): heater reduced to %.1f %%.",
                temp, limits.reduce_c, reduced,
            )

    # ---------------------------------------------------------------- readings
    def read_temperature(self) -> float:
        """One reading: a burst of samples (heater off during it when configured) → vial temperature in °C."""
        times: list[float] = []
        values: list[float] = []
        off = self.heater_off_while_sampling
        with self._heater_lock:
            self._sampling = True
            if off and not self._stopping:
                self.hardware.set_pwm(self.heater_channel, 0.0)
        try:
            start = self.clock.now()
            for i in range(self.samples_per_reading):
                if i:
                    self.clock.sleep(self.seconds_between_samples)
                if self._stopping:
                    raise RuntimeError("stopped while reading the temperature")
                times.append(self.clock.now() - start)
                values.append(self.hardware.read_temperature())
        finally:
            with self._heater_lock:
                self._sampling = False
                if off and not self._stopping:
                    self.hardware.set_pwm(self.heater_channel, self.heater_duty_cycle)
        self.check_heating_limits(max(values))
        return asymptotic_temperature(times, values) if off else mean_temperature(values)

    def read_and_execute(self) -> None:
        """Read, publish ``temperature`` and run :meth:`execute` when ready (called every reading interval)."""
        if self._stopping or self.state == DISCONNECTED:
            return
        value = self.read_temperature()
        now = self.clock.now()
        self.latest_temperature, self.latest_temperature_at = value, now
        if self._readings_stopped:
            with self._heater_lock:
                self._readings_stopped = False
            self.logger.info("Temperature readings are back (%.2f ℃); heating resumes.", value)
        self.temperature = {"temperature": round(value, 2), "timestamp": self.clock.utc_iso(now)}
        if self.state == READY:
            self.run()

    def set_duration(self, value: float) -> None:
        raise ValueError("temperature automations run after each temperature reading; duration is not used")

    # --------------------------------------------------------------- lifecycle
    def on_ready_to_sleeping(self) -> None:
        super().on_ready_to_sleeping()
        with self._heater_lock:
            self._dc_before_sleep = self.heater_duty_cycle
            self.hardware.set_pwm(self.heater_channel, 0.0)
            self.heater_duty_cycle = 0.0

    def on_sleeping_to_ready(self) -> None:
        super().on_sleeping_to_ready()
        with self._heater_lock:
            dc = 0.0 if self._heating_disabled else self._dc_before_sleep
            if not (self._sampling and self.heater_off_while_sampling):
                self.hardware.set_pwm(self.heater_channel, dc)
            self.heater_duty_cycle = dc

    def on_disconnected(self) -> None:
        with self._heater_lock:
            self._stopping = True
            self.hardware.set_pwm(self.heater_channel, 0.0)
        self._reading_timer.cancel()
        self._safety_timer.cancel()
        super().on_disconnected()
