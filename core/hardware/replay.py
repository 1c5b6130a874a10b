"""The replay backend: recorded OD readings played back through ``read_photodiodes``.

Selected with ``HARDWARE=replay`` (or ``[hardware] backend = replay``), it lets
the OD and growth-rate jobs run on real data, e.g. the
recordings in the Pioreactor repository::

    [hardware.replay]
    file = /data/pioreactor_1unit_5s_od_readings.csv.gz   ; or $REPLAY_FILE
    start_offset_s = 0        ; start this many seconds into the recording
    loop = 0                  ; 1: start again at the end; 0: hold the last value
    ref_voltage = 1.0         ; REF photodiode reading (V) at 80 % IR

The file is a CSV (optionally gzip-compressed) with a header and the columns
``timestamp`` (ISO-8601) and ``od_reading``, optionally ``angle`` (default
``"90"``) and ``channel``; rows of several angles are played back side by side.

Time: simulated time since the clock's origin (shared by every process of the
unit, see :mod:`reactorkit.core.clock`) maps onto time since the first row, so
with a speed-up of 100 an hour of recording plays in 36 s. A reading returns
the last recorded value at or before the mapped time (values are not
interpolated, so the recording's own noise is kept).

Photodiodes: with the IR LED off every channel reads 0 V (dark). With it on
at ``I`` %, a channel configured (``[od_config.photodiode_channel]``) with a
recorded angle reads ``value · I/80`` volts, the REF channel ``ref_voltage ·
I/80``, others 0 V; so REF-normalised OD equals the recorded value.

LEDs are kept in this process (replay is for the OD pipeline); PWM, the
temperature sensor and the tachometer are delegated to the simulated vessel so
that other jobs keep working.
"""

from __future__ import annotations

import bisect
import csv
import gzip
import io
import os
from pathlib import Path
from typing import Any

from reactorkit.core.clock import Clock, get_clock, parse_iso
from reactorkit.core.config import Config, led_channel_of
from reactorkit.core.hardware.base import ADC_CHANNELS, LED_CHANNELS, Hardware, HardwareError, check_duty_cycle

REFERENCE_IR_INTENSITY = 80.0


class Recording:
    """Recorded OD readings per angle: ``times[angle]`` (epoch s, sorted) and ``values[angle]``.

    Raises:
        HardwareError: the file is missing, unreadable, or has no usable rows.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise HardwareError(f"replay file {self.path} does not exist")
        series: dict[str, list[tuple[float, float]]] = {}
        try:
            with self._open() as fh:
                reader = csv.DictReader(fh)
                if not reader.fieldnames or not {"timestamp", "od_reading"} <= set(reader.fieldnames):
                    raise HardwareError(f"replay file {self.path} needs the columns timestamp and od_reading")
                for line, row in enumerate(reader, start=2):
                    try:
                        t, value = parse_iso(row["timestamp"]), float(row["od_reading"])
                    except (TypeError, ValueError) as exc:
                        raise HardwareError(f"replay file {self.path}, line {line}: {exc}") from None
                    angle = str(row.get("angle") or "90").strip()
                    series.setdefault(angle, []).append((t, value))
        except (OSError, EOFError, UnicodeDecodeError, csv.Error) as exc:
            raise HardwareError(f"cannot read replay file {self.path}: {exc}") from exc
        if not series:
            raise HardwareError(f"replay file {self.path} has no rows")
        self.times: dict[str, list[float]] = {}
        self.values: dict[str, list[float]] = {}
        for angle, pairs in series.items():
            pairs.sort()
            self.times[angle] = [t for t, _ in pairs]
            self.values[angle] = [v for _, v in pairs]
        self.start = min(ts[0] for ts in self.times.values())
        self.end = max(ts[-1] for ts in self.times.values())

    def _open(self) -> io.TextIOBase:
        with open(self.path, "rb") as raw:
            magic = raw.read(2)
        if magic == b"\x1f\x8b":
            return gzip.open(self.path, "rt", newline="", encoding="utf-8")  # type: ignore[return-value]
        return open(self.path, "rt", newline="", encoding="utf-8")

    @property
    def duration_s(self) -> float:
        return self.end - self.start

    def value_at(self, angle: str, elapsed_s: float) -> float | None:
        """The last value of ``angle`` recorded at or before ``start + elapsed_s`` (the first before it)."""
        times = self.times.get(angle)
        if not times:
            return None
        i = bisect.bisect_right(times, self.start + elapsed_s) - 1
        return self.values[angle][max(i, 0)]


class ReplayHardware(Hardware):
    """Hardware that plays a recording of OD readings back (see the module docstring).

    Args:
        config: Merged config (``[hardware.replay]``, ``[od_config.photodiode_channel]``, ``[leds]``).
        unit: Unit name (for the simulated vessel the other actuators use).
        clock: Time source (default: the process-wide clock).
        path: Recording (default ``$REPLAY_FILE``, else ``[hardware.replay] file``).

    Raises:
        HardwareError: no file configured, or the file is unusable.
    """

    def __init__(self, config: Config, unit: str, clock: Clock | None = None, path: Path | str | None = None) -> None:
        self.config = config
        self.unit = unit
        self.clock = clock or get_clock(config)
        section = config["hardware.replay"] if config.has_section("hardware.replay") else {}
        file = path or os.environ.get("REPLAY_FILE") or section.get("file")
        if not file:
            raise HardwareError("HARDWARE=replay needs a recording: set $REPLAY_FILE or [hardware.replay] file")
        self.recording = Recording(Path(file).expanduser())
        try:
            self.start_offset_s = float(section.get("start_offset_s", 0.0) or 0.0)
            self.ref_voltage = float(section.get("ref_voltage", 1.0) or 1.0)
        except ValueError as exc:
            raise HardwareError(f"[hardware.replay]: {exc}") from None
        self.loop = str(section.get("loop", "0")).strip().lower() in ("1", "true", "yes", "on")
        self.origin = self.clock.origin
        self._leds = {c: 0.0 for c in LED_CHANNELS}
        self._ir = led_channel_of(config, "IR") or "A"
        self._angles = (
            {int(k): v.strip() for k, v in config.items("od_config.photodiode_channel") if v and v.strip()}
            if config.has_section("od_config.photodiode_channel") else {}
        )
        self._simulated: Hardware | None = None

    # ------------------------------------------------------------------ time
    def elapsed_s(self) -> float:
        """Seconds into the recording that "now" corresponds to (wrapped when looping)."""
        elapsed = self.start_offset_s + (self.clock.now() - self.origin)
        duration = self.recording.duration_s
        if self.loop and duration > 0:
            elapsed %= duration
        return max(elapsed, 0.0)

    # ----------------------------------------------------------------- LEDs
    def set_led(self, channel: str, intensity: float) -> None:
        if channel not in LED_CHANNELS:
            raise HardwareError(f"LED channel must be one of {LED_CHANNELS}, got {channel!r}")
        self._leds[channel] = check_duty_cycle(intensity)

    def get_leds(self) -> dict[str, float]:
        return dict(self._leds)

    # --------------------------------------------------------------- sensors
    def read_photodiodes(self, channels: tuple[int, ...] = ADC_CHANNELS) -> dict[int, float]:
        scale = self._leds.get(self._ir, 0.0) / REFERENCE_IR_INTENSITY
        elapsed = self.elapsed_s()
        out: dict[int, float] = {}
        for channel in channels:
            angle = self._angles.get(int(channel))
            if scale <= 0 or angle is None:
                out[channel] = 0.0
            elif angle.upper() == "REF":
                out[channel] = self.ref_voltage * scale
            else:
                value = self.recording.value_at(angle, elapsed)
                out[channel] = 0.0 if value is None else value * scale
        return out

    def ground_truth(self) -> dict[str, Any]:
        """``{t, recording_elapsed_s, recording_time, od_signal: {angle: value}}`` (what is being replayed now)."""
        elapsed = self.elapsed_s()
        return {
            "t": self.clock.now(),
            "recording_elapsed_s": elapsed,
            "recording_time": self.recording.start + elapsed,
            "od_signal": {a: self.recording.value_at(a, elapsed) for a in self.recording.times},
        }

    # ------------------------------------------------- delegated actuators
    def _sim(self) -> Hardware:
        if self._simulated is None:
            from reactorkit.core.hardware.simulated import SimulatedHardware

            self._simulated = SimulatedHardware(self.config, self.unit, clock=self.clock)
        return self._simulated

    def set_pwm(self, channel: int, duty_cycle: float) -> None:
        self._sim().set_pwm(channel, duty_cycle)

    def get_pwm(self, channel: int) -> float:
        return self._sim().get_pwm(channel)

    def read_temperature(self) -> float:
        return self._sim().read_temperature()

    def measure_rpm(self, duration_s: float = 2.0) -> float:
        return self._sim().measure_rpm(duration_s)
