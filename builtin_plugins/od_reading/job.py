"""The ``od_reading`` job: optical density from the photodiodes, every ``interval`` seconds."""

from __future__ import annotations

import math
import threading
from typing import Any

from reactorkit.builtin_plugins.od_reading.processing import (
    ConfigurationError,
    ReferenceNoiseMonitor,
    ReferenceNormalizer,
    apply_calibration,
    parse_photodiode_channels,
    raw_reading_payload,
    reading_payload,
)
from reactorkit.plugin import mqtt as mq
from reactorkit.plugin import RepeatedTimer
from reactorkit.plugin import led_channel_of
from reactorkit.plugin import Hardware, get_hardware
from reactorkit.plugin import BackgroundJob

SECTION = "od_reading.config"
CALIBRATION_WARNING_EVERY_S = 300.0  # out-of-range warnings at most every 5 min (domain facts §6.2)
AUTO_IR_RANGE = (50.0, 85.0)
AUTO_IR_TARGET_REF_V = 0.25
RELATIVE_INTENSITY_EVERY = 5  # publish relative_intensity_of_ir_led on ~20 % of the readings
DARK_SAMPLES = 3
ADC_SAMPLES = 1  # ADC reads averaged per reading ([od_reading.config] adc_samples_per_reading)
MIN_INTERVAL_S = 0.5


def _od_settings() -> dict[str, dict[str, Any]]:
    settings: dict[str, dict[str, Any]] = {
        "first_od_obs_time": {"datatype": "float", "settable": False, "unit": "s"},
        "ir_led_intensity": {"datatype": "float", "settable": True, "unit": "%"},
        "interval": {"datatype": "float", "settable": True, "unit": "s"},
        "relative_intensity_of_ir_led": {"datatype": "json", "settable": False},
        "ods": {"datatype": "json", "settable": False},
        "od_fused": {"datatype": "json", "settable": False},
    }
    for n in (1, 2, 3, 4):
        for prefix in ("od", "raw_od", "calibrated_od"):
            settings[f"{prefix}{n}"] = {"datatype": "json", "settable": False}
    return settings


class ODReader(BackgroundJob):
    """Read the culture's optical density on every configured photodiode channel.

    Each reading (every ``interval`` s; ``[od_reading.config] samples_per_second``,
    default 0.2 → 5 s): other LEDs off (``turn_off_leds_during_reading``), the IR
    LED (the ``[leds]`` channel labelled ``IR``) on at ``ir_led_intensity`` %,
    wait ``duration_between_led_off_and_od_reading`` s, read the ADC
    (``adc_samples_per_reading`` reads averaged, default 1), IR off and other
    LEDs restored. The voltages are processed as described in
    :mod:`.processing` (dark offset, REF normalisation, blank, calibration,
    fusion) and published:

    * ``od{n}``: ``{calibrated, timestamp, angle, od, channel, ir_led_intensity}``
      (+ ``calibration_name``); ``od`` is OD600 when channel n's angle has an
      active ``od{angle}`` calibration, else the normalised signal;
    * ``raw_od{n}`` (volts given to the calibration) and ``calibrated_od{n}``:
      only for calibrated channels;
    * ``ods``: ``{timestamp, ods: {"n": reading, …}}``;
    * ``od_fused``: ``{od_fused, timestamp}`` with an active ``od_fused`` estimator;
    * ``first_od_obs_time`` (epoch s), ``interval`` (s), ``ir_led_intensity`` (%);
    * ``relative_intensity_of_ir_led``: ``{relative_intensity_of_ir_led, timestamp}``
      (REF / first REF of the experiment) on every 5th reading.

    A noisy REF (SD of REF/REF₀ over 20 readings > 0.025·√(interval/5)) is
    logged and pauses ``dosing_automation`` (``$state/set`` → ``sleeping``).

    Args:
        unit, experiment: Where the readings belong.
        interval: Seconds between readings (overrides ``samples_per_second``).
        ir_led_intensity: IR LED intensity in % (1–100) or ``"auto"`` (default from config, 80).
        hardware: The unit's hardware (default: the configured backend).

    Raises:
        ConfigurationError: bad photodiode channels, no IR LED, or bad ``[od_reading.config]`` values.
    """

    job_name = "od_reading"
    published_settings = _od_settings()

    def __init__(self, unit: str, experiment: str, *, interval: float | None = None,
                 ir_led_intensity: float | str | None = None, hardware: Hardware | None = None,
                 **kwargs: Any) -> None:
        super().__init__(unit, experiment, **kwargs)
        try:
            self._setup(interval, ir_led_intensity, hardware)
        except Exception:
            self.clean_up()  # registered and connected already: leave nothing behind
            raise

    def _setup(self, interval: float | None, ir_led_intensity: float | str | None, hardware: Hardware | None) -> None:
        cfg = self.config
        items = cfg.items("od_config.photodiode_channel") if cfg.has_section("od_config.photodiode_channel") else []
        self.channels, self.ref_channel = parse_photodiode_channels(items)
        ir = led_channel_of(cfg, "IR")
        if ir is None:
            raise ConfigurationError("no [leds] channel is labelled IR (e.g. A = IR)")
        self._lock = threading.RLock()
        self.hardware = hardware or get_hardware(cfg, self.unit)
        self.ir_channel = ir
        self.turn_off_leds = cfg.getboolean_loose(SECTION, "turn_off_leds_during_reading", True)
        self.led_settle_s = self._config_float("duration_between_led_off_and_od_reading", 0.125, minimum=0.0)
        self.use_dark_offsets = cfg.getboolean_loose(SECTION, "use_dark_offsets", True)
        self.adc_samples = int(self._config_float("adc_samples_per_reading", ADC_SAMPLES, minimum=1))
        alpha = self._config_float("pd_reference_ema", 0.75, minimum=0.0)
        mode = cfg.get(SECTION, "ref_normalization", fallback="classic").strip().lower()
        self.normalizer = ReferenceNormalizer(mode, alpha, first_ref=self._cache_get("od_reading_first_ref"))
        self.blanks = self._load_blanks()
        self.calibrations = self._load_calibrations()
        self.estimator = self._load_estimator()
        self._last_calibration_warning: dict[int, float] = {}
        self._reading_count = 0
        self._dark_offsets: dict[int, float] = {}
        self._ref_monitor: ReferenceNoiseMonitor | None = None
        self._last_ref_warning = -math.inf

        if interval is None:
            sps = self._config_float("samples_per_second", 0.2, minimum=1e-6)
            interval = 1.0 / sps
        self._check_interval(float(interval))
        self.interval = float(interval)
        self.ir_led_intensity = self._initial_ir_intensity(ir_led_intensity)
        self.first_od_obs_time = None
        self._ref_monitor = ReferenceNoiseMonitor(self.interval)
        self.hardware.set_led(self.ir_channel, 0.0)
        # measured by the first reading (LEDs off, settle, sample), so that the job is ready without waiting
        self._dark_offsets_due = self.use_dark_offsets
        self.timer = self._new_timer(run_after=0.0)

    # ------------------------------------------------------------ config/caches
    def _config_float(self, key: str, default: float, minimum: float | None = None) -> float:
        raw = self.config.get(SECTION, key, fallback=None)
        if raw is None or str(raw).strip() == "":
            return default
        try:
            value = float(raw)
        except ValueError:
            raise ConfigurationError(f"[{SECTION}] {key} must be a number, got {raw!r}") from None
        if minimum is not None and value < minimum:
            raise ConfigurationError(f"[{SECTION}] {key} must be ≥ {minimum}, got {value}")
        return value

    def _cache_get(self, cache: str) -> Any:
        try:
            from reactorkit.plugin import PersistentCache

            return PersistentCache(cache).get(self.experiment)
        except Exception as exc:  # a cache problem never stops readings
            self.logger.debug("cache %s unreadable: %s", cache, exc)
            return None

    def _cache_set(self, cache: str, value: Any) -> None:
        try:
            from reactorkit.plugin import PersistentCache

            PersistentCache(cache).set(self.experiment, value)
        except Exception as exc:
            self.logger.debug("cache %s not written: %s", cache, exc)

    def _load_blanks(self) -> dict[int, float]:
        blanks = self._cache_get("od_blank") or {}
        out: dict[int, float] = {}
        if isinstance(blanks, dict):
            for channel, value in blanks.items():
                try:
                    out[int(channel)] = float(value)
                except (TypeError, ValueError):
                    continue
        if out:
            self.logger.debug("using blanks %s", out)
        return out

    def _load_calibrations(self) -> dict[int, Any]:
        try:
            from reactorkit.plugin import active_calibration
        except ImportError:
            return {}
        found: dict[int, Any] = {}
        for channel, angle in self.channels.items():
            try:
                calibration = active_calibration(f"od{angle}")
            except Exception as exc:
                self.logger.warning("cannot load the od%s calibration: %s", angle, exc)
                continue
            if calibration is not None:
                found[channel] = calibration
                self.logger.debug("channel %s uses calibration %s", channel, calibration.name)
        return found

    def _load_estimator(self) -> Any:
        try:
            from reactorkit.plugin import active_estimator

            return active_estimator("od_fused")
        except Exception:
            return None

    def _initial_ir_intensity(self, requested: float | str | None) -> float:
        raw = requested if requested is not None else self.config.get(SECTION, "ir_led_intensity", fallback="80")
        if str(raw).strip().lower() == "auto":
            for calibration in self.calibrations.values():
                value = calibration.record.get("ir_led_intensity")
                if value not in (None, "auto"):
                    return self._check_ir(float(value))
            return self._auto_ir_intensity()
        try:
            value = float(raw)
        except (TypeError, ValueError):
            raise ConfigurationError(f"ir_led_intensity must be a number (%) or auto, got {raw!r}") from None
        self._check_ir(value)
        self._drop_mismatched_calibrations(value)
        return value

    @staticmethod
    def _check_ir(value: float) -> float:
        if not 0.0 < value <= 100.0:
            raise ConfigurationError(f"ir_led_intensity must be within (0, 100] %, got {value}")
        return value

    def _drop_mismatched_calibrations(self, intensity: float) -> None:
        for channel, calibration in list(self.calibrations.items()):
            wanted = calibration.record.get("ir_led_intensity")
            try:
                matches = wanted is None or abs(float(wanted) - intensity) < 1e-6
            except (TypeError, ValueError):
                matches = False
            if not matches:
                self.logger.warning(
                    "calibration %s was made at IR intensity %s %%, not %s %%; channel %s stays uncalibrated",
                    calibration.name, wanted, intensity, channel,
                )
                del self.calibrations[channel]
        if self.estimator is not None:
            wanted = self.estimator.record.get("ir_led_intensity")
            try:
                matches = wanted is None or abs(float(wanted) - intensity) < 1e-6
            except (TypeError, ValueError):
                matches = False
            if not matches:
                self.logger.warning("od_fused estimator %s was made at IR intensity %s %%, not %s %%; no fused OD",
                                    self.estimator.name, wanted, intensity)
                self.estimator = None

    def _auto_ir_intensity(self) -> float:
        """Pick 50–85 % so that REF reads about 0.25 V (linear in intensity); 80 % without REF."""
        if self.ref_channel is None:
            return 80.0
        probe = 80.0
        self.hardware.set_led(self.ir_channel, probe)
        try:
            self.clock.sleep(self.led_settle_s)
            ref = self.hardware.read_photodiodes((self.ref_channel,)).get(self.ref_channel, 0.0)
        finally:
            self.hardware.set_led(self.ir_channel, 0.0)
        if ref <= 0:
            return probe
        value = min(max(probe * AUTO_IR_TARGET_REF_V / ref, AUTO_IR_RANGE[0]), AUTO_IR_RANGE[1])
        value = round(value, 1)
        self.logger.info("auto IR LED intensity: %.1f %%", value)
        return value

    def _measure_dark_offsets(self) -> dict[int, float]:
        """Mean ADC reading (V) per channel with every LED off."""
        channels = self._adc_channels()
        leds = self._leds_off()
        try:
            self.clock.sleep(self.led_settle_s)
            sums = {c: 0.0 for c in channels}
            for _ in range(DARK_SAMPLES):
                for c, v in self.hardware.read_photodiodes(channels).items():
                    sums[c] += v
        finally:
            self._restore_leds(leds)
        return {c: s / DARK_SAMPLES for c, s in sums.items()}

    # ----------------------------------------------------------------- timer
    def _new_timer(self, run_after: float) -> RepeatedTimer:
        return RepeatedTimer(self.interval, self.record_reading, clock=self.clock, run_after=run_after,
                             on_error=lambda exc: self.logger.error("OD reading failed: %s", exc), name="od_reading")

    def _post_init(self) -> None:
        super()._post_init()
        self.timer.start()

    @staticmethod
    def _check_interval(value: float) -> None:
        if not value >= MIN_INTERVAL_S:
            raise ValueError(f"interval must be at least {MIN_INTERVAL_S} s, got {value}")

    def set_interval(self, value: float) -> None:
        self._check_interval(float(value))
        with self._lock:
            self.timer.cancel()
            self.interval = float(value)
            self._ref_monitor = ReferenceNoiseMonitor(self.interval)
            self.timer = self._new_timer(run_after=self.interval)
            if self.state == "sleeping":
                self.timer.pause()
            self.timer.start()

    def set_ir_led_intensity(self, value: float) -> None:
        self._check_ir(float(value))
        with self._lock:
            self.ir_led_intensity = float(value)
            self.calibrations = self._load_calibrations()
            self.estimator = self._load_estimator()
            self._drop_mismatched_calibrations(self.ir_led_intensity)

    # --------------------------------------------------------------- reading
    def _adc_channels(self) -> tuple[int, ...]:
        channels = set(self.channels)
        if self.ref_channel is not None:
            channels.add(self.ref_channel)
        return tuple(sorted(channels))

    def _leds_off(self) -> dict[str, float]:
        """Turn the other LEDs off if configured; returns what to restore."""
        if not self.turn_off_leds:
            return {}
        before = self.hardware.get_leds()
        changed = {c: v for c, v in before.items() if c != self.ir_channel and v > 0}
        for channel in changed:
            self.hardware.set_led(channel, 0.0)
        return changed

    def _restore_leds(self, leds: dict[str, float]) -> None:
        for channel, value in leds.items():
            self.hardware.set_led(channel, value)

    def take_voltages(self) -> tuple[float, dict[int, float]]:
        """One raw reading: (epoch s, ``{channel: volts}``) with the IR LED on (dark offset not removed)."""
        channels = self._adc_channels()
        leds = self._leds_off()
        try:
            self.hardware.set_led(self.ir_channel, self.ir_led_intensity)
            try:
                self.clock.sleep(self.led_settle_s)
                now = self.clock.now()
                sums = dict.fromkeys(channels, 0.0)
                for _ in range(self.adc_samples):
                    for c, v in self.hardware.read_photodiodes(channels).items():
                        sums[c] += v
                volts = {c: v / self.adc_samples for c, v in sums.items()}
            finally:
                self.hardware.set_led(self.ir_channel, 0.0)
        finally:
            self._restore_leds(leds)
        return now, volts

    def record_reading(self) -> dict[str, Any] | None:
        """Take, process and publish one reading; returns the ``ods`` payload (None when not ready)."""
        with self._lock:
            if self.state != "ready":
                return None
            if self._dark_offsets_due:
                self._dark_offsets = self._measure_dark_offsets()
                self._dark_offsets_due = False
            now, volts = self.take_voltages()
            timestamp = self.clock.utc_iso(now)
            if self.first_od_obs_time is None:
                self.first_od_obs_time = now
            divisor = 1.0
            if self.ref_channel is not None:
                ref = volts.get(self.ref_channel, 0.0) - self._dark_offsets.get(self.ref_channel, 0.0)
                first_known = self.normalizer.first_ref is not None
                divisor = self.normalizer.update(ref)
                if not first_known and self.normalizer.first_ref is not None:
                    self._cache_set("od_reading_first_ref", self.normalizer.first_ref)
                self._watch_reference(ref, timestamp)
            self._reading_count += 1
            ods: dict[str, Any] = {}
            drift = self.normalizer.drift
            drift_corrected: dict[str, float] = {}
            for channel, angle in self.channels.items():
                raw = volts.get(channel, 0.0)
                drift_corrected[angle] = raw / drift
                value = (raw - self._dark_offsets.get(channel, 0.0)) / divisor
                reading = self._publish_channel(channel, angle, value, raw / drift, timestamp, now)
                if reading is not None:
                    ods[str(channel)] = reading
            payload = {"timestamp": timestamp, "ods": ods}
            self.ods = payload
            if self.estimator is not None:
                self._publish_fused(drift_corrected, timestamp)
            return payload

    def _publish_channel(self, channel: int, angle: str, value: float, volts: float, timestamp: str,
                         now: float) -> dict[str, Any] | None:
        """Publish channel ``channel``'s reading(s); returns its ``ODReading`` (None if it failed).

        ``value`` is the normalised signal (uncalibrated channels), ``volts`` the
        drift-corrected raw voltage given to a calibration.
        """
        calibration = self.calibrations.get(channel)
        ir = self.ir_led_intensity
        if calibration is None:
            od = value - self.blanks.get(channel, 0.0)
            reading = reading_payload(timestamp=timestamp, channel=channel, angle=angle, od=od, ir_led_intensity=ir)
            setattr(self, f"od{channel}", reading)
            return reading
        raw = raw_reading_payload(timestamp=timestamp, channel=channel, angle=angle, od=volts, ir_led_intensity=ir)
        setattr(self, f"raw_od{channel}", raw)
        try:
            od600, warning = apply_calibration(calibration, volts)
        except ValueError as exc:
            self._warn_calibration(channel, now, f"calibration {calibration.name} failed: {exc}; reading skipped")
            return None
        if warning:
            self._warn_calibration(channel, now, warning)
        reading = reading_payload(timestamp=timestamp, channel=channel, angle=angle, od=od600, ir_led_intensity=ir,
                                  calibration_name=calibration.name)
        setattr(self, f"calibrated_od{channel}", reading)
        setattr(self, f"od{channel}", reading)
        return reading

    def _warn_calibration(self, channel: int, now: float, message: str) -> None:
        if now - self._last_calibration_warning.get(channel, -math.inf) >= CALIBRATION_WARNING_EVERY_S:
            self._last_calibration_warning[channel] = now
            self.logger.warning(message)

    def _publish_fused(self, volts_by_angle: dict[str, float], timestamp: str) -> None:
        from .fusion import fuse

        try:
            value = fuse(self.estimator.record, volts_by_angle)
        except (ValueError, KeyError, TypeError) as exc:
            self.logger.debug("no fused OD: %s", exc)
            return
        self.od_fused = {"od_fused": value, "timestamp": timestamp}

    def _watch_reference(self, ref: float, timestamp: str) -> None:
        relative = self.normalizer.relative_intensity(ref)
        if relative is None:
            return
        if self._reading_count % RELATIVE_INTENSITY_EVERY == 0:
            self.relative_intensity_of_ir_led = {"relative_intensity_of_ir_led": relative, "timestamp": timestamp}
        sd = self._ref_monitor.add(relative) if self._ref_monitor else None
        now = self.clock.now()
        if sd is not None and now - self._last_ref_warning > 3600.0:
            self._last_ref_warning = now
            self.logger.warning(
                "The REF photodiode is noisy (SD %.3f of its level); check the IR LED and the REF photodiode. "
                "Pausing dosing_automation.", sd,
            )
            topic = mq.job_topic(self.unit, self.experiment, "dosing_automation", "$state", "set", config=self.config)
            self.mqtt.publish(topic, "sleeping", qos=mq.QOS_EXACTLY_ONCE)

    # ------------------------------------------------------------- lifecycle
    def on_ready_to_sleeping(self) -> None:
        self.timer.pause()
        self.hardware.set_led(self.ir_channel, 0.0)

    def on_sleeping_to_ready(self) -> None:
        self.timer.unpause()

    def on_disconnected(self) -> None:
        timer = self.__dict__.get("timer")
        if timer is not None:
            timer.cancel()
        if "hardware" not in self.__dict__ or "ir_channel" not in self.__dict__:
            return  # stopped during set-up, before touching the LEDs
        with self._lock:
            try:
                self.hardware.set_led(self.ir_channel, 0.0)
            except Exception as exc:
                self.logger.error("could not turn the IR LED off: %s", exc)
