"""Signal processing of ``od_reading`` (pure; no hardware, no MQTT).

The order of steps follows the Pioreactor software (domain facts §3.2):

1. dark offset: the reading with every LED off, taken at start, is subtracted;
2. reference normalisation by the REF photodiode, which sees the IR LED
   directly and so tracks its output (temperature, ageing):

   * ``classic``: ``signal / EMA(REF)``;
   * ``unity``: ``signal / (EMA(REF) / REF₀)`` where ``REF₀`` is the first
     REF reading of the experiment, so values stay in volts;

3. the experiment's blank (``od_blank`` cache) is subtracted on channels
   without a calibration.

Calibrated channels and the ``od_fused`` estimator take the signal in the
form the calibration protocols record it: raw photodiode volts (no dark
offset), corrected only for the IR LED's drift since the start of the
experiment (``× REF₀ / EMA(REF)``, the ``unity`` factor); the active
``od{angle}`` calibration maps it to OD600 and the estimator fuses the angles
(:func:`.fusion.fuse`).

The EMA weights the previous value by ``pd_reference_ema`` (α):
``EMA ← α·EMA + (1 − α)·REF``.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

ANGLES = ("45", "90", "135", "180")
REF = "REF"


class ConfigurationError(ValueError):
    """``[od_config.photodiode_channel]`` or ``[od_reading.config]`` is not usable (message names the key)."""


def parse_photodiode_channels(items: list[tuple[str, str]]) -> tuple[dict[int, str], int | None]:
    """``[od_config.photodiode_channel]`` items → (``{channel: angle}`` for signal channels, REF channel).

    Channels are ``1``–``4``; values ``45|90|135|180|REF`` (empty values are unused channels).

    Raises:
        ConfigurationError: unknown channel or angle, more than one REF, or no signal channel.
    """
    signal: dict[int, str] = {}
    ref: int | None = None
    for key, value in items:
        value = (value or "").strip()
        if not value:
            continue
        try:
            channel = int(key)
        except ValueError:
            raise ConfigurationError(f"[od_config.photodiode_channel] key {key!r} must be a channel 1–4") from None
        if channel not in (1, 2, 3, 4):
            raise ConfigurationError(f"[od_config.photodiode_channel] channel {channel} must be within 1–4")
        if value.upper() == REF:
            if ref is not None:
                raise ConfigurationError("[od_config.photodiode_channel] at most one channel may be REF")
            ref = channel
        elif value in ANGLES:
            signal[channel] = value
        else:
            raise ConfigurationError(
                f"[od_config.photodiode_channel] {channel} = {value!r}: use one of 45, 90, 135, 180, REF"
            )
    if not signal:
        raise ConfigurationError("[od_config.photodiode_channel] names no signal channel (45, 90, 135 or 180)")
    return dict(sorted(signal.items())), ref


class ExponentialMovingAverage:
    """``value ← α·value + (1 − α)·new`` (the first value is taken as is).

    Args:
        alpha: Weight of the past, 0 ≤ α < 1 (``pd_reference_ema``, default 0.75).

    Raises:
        ValueError: α outside [0, 1).
    """

    def __init__(self, alpha: float) -> None:
        if not 0.0 <= alpha < 1.0:
            raise ValueError(f"pd_reference_ema must be within [0, 1), got {alpha}")
        self.alpha = float(alpha)
        self.value: float | None = None

    def update(self, new: float) -> float:
        self.value = new if self.value is None else self.alpha * self.value + (1.0 - self.alpha) * new
        return self.value


class ReferenceNormalizer:
    """REF-photodiode normalisation (``ref_normalization`` ``unity`` or ``classic``).

    Args:
        mode: ``"unity"`` or ``"classic"`` (anything else falls back to ``classic``).
        alpha: ``pd_reference_ema``.
        first_ref: REF₀ for ``unity`` (volts); None: the first REF seen.
    """

    def __init__(self, mode: str, alpha: float, first_ref: float | None = None) -> None:
        self.mode = mode if mode in ("unity", "classic") else "classic"
        self.ema = ExponentialMovingAverage(alpha)
        self.first_ref = first_ref if first_ref and first_ref > 0 else None

    def update(self, ref_volts: float) -> float:
        """Feed a REF reading (V); returns the divisor to apply to the signals."""
        if self.first_ref is None and ref_volts > 0:
            self.first_ref = ref_volts
        ema = self.ema.update(ref_volts)
        if ema <= 0:
            return 1.0
        if self.mode == "unity":
            return ema / (self.first_ref or ema)
        return ema

    @property
    def drift(self) -> float:
        """``EMA(REF) / REF₀``: the IR LED's output relative to the experiment's start (1 before any REF)."""
        ema = self.ema.value
        if ema is None or ema <= 0 or not self.first_ref:
            return 1.0
        return ema / self.first_ref

    def relative_intensity(self, ref_volts: float) -> float | None:
        """REF / REF₀: the IR LED's output relative to the start of the experiment."""
        return ref_volts / self.first_ref if self.first_ref else None


class ReferenceNoiseMonitor:
    """Flags a noisy REF: SD of REF/REF₀ over ``window`` readings above ``0.025·√(interval/5 s)``."""

    def __init__(self, interval_s: float, window: int = 20) -> None:
        self.readings: deque[float] = deque(maxlen=window)
        self.threshold = 0.025 * math.sqrt(max(interval_s, 1e-9) / 5.0)

    def add(self, relative_ref: float) -> float | None:
        """Add one REF/REF₀; returns the SD when it exceeds the threshold (window full), else None."""
        self.readings.append(relative_ref)
        if len(self.readings) < (self.readings.maxlen or 0):
            return None
        import statistics  # here, once the window is full: with its decimal and fractions, ~2 ms of the job's start

        sd = statistics.pstdev(self.readings)
        return sd if sd > self.threshold else None


def apply_calibration(calibration: Any, value: float) -> tuple[float, str | None]:
    """OD600 for a normalised reading (volts) through ``calibration.y_to_x``.

    Outside the calibrated range the OD is clamped to the nearest calibrated end
    (``OutOfCalibratedRange.nearest``; else the recorded x range), as the
    Pioreactor software does.

    Returns:
        ``(od600, warning)``; ``warning`` is None inside the range, else a message.
    """
    try:
        return float(calibration.y_to_x(value)), None
    except ValueError as exc:
        nearest = getattr(exc, "nearest", None)
        if nearest is None:
            nearest = _nearest_recorded_x(calibration, value)
        if nearest is None:
            raise
        return float(nearest), (
            f"{value:.5g} V is outside calibration {getattr(calibration, 'name', '?')!r}; OD clamped to {nearest:.5g}"
        )


def _nearest_recorded_x(calibration: Any, value: float) -> float | None:
    recorded = (getattr(calibration, "record", {}) or {}).get("recorded_data") or {}
    xs, ys = recorded.get("x") or [], recorded.get("y") or []
    if not xs or len(xs) != len(ys):
        return None
    i_low = min(range(len(ys)), key=lambda i: ys[i])
    i_high = max(range(len(ys)), key=lambda i: ys[i])
    return float(xs[i_low] if value <= ys[i_low] else xs[i_high])


def reading_payload(*, timestamp: str, channel: int, angle: str, od: float, ir_led_intensity: float,
                    calibration_name: str | None = None) -> dict[str, Any]:
    """The contract's ``ODReading``: ``{calibrated, timestamp, angle, od, channel, ir_led_intensity}``
    (+ ``calibration_name`` when calibrated); angle and channel are strings."""
    payload: dict[str, Any] = {
        "calibrated": 1 if calibration_name else 0,
        "timestamp": timestamp,
        "angle": str(angle),
        "od": float(od),
        "channel": str(channel),
        "ir_led_intensity": float(ir_led_intensity),
    }
    if calibration_name:
        payload["calibration_name"] = calibration_name
    return payload


def raw_reading_payload(*, timestamp: str, channel: int, angle: str, od: float, ir_led_intensity: float) -> dict[str, Any]:
    """``RawODReading``: ``{timestamp, angle, od, channel, ir_led_intensity}`` (volts, before calibration)."""
    return {"timestamp": timestamp, "angle": str(angle), "od": float(od), "channel": str(channel),
            "ir_led_intensity": float(ir_led_intensity)}
