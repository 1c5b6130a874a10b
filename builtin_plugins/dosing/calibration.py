"""Pump rates: mL ↔ seconds through the active pump calibration (or the default rate).

A pump calibration (``simple_peristaltic_pump``, devices ``media_pump``,
``alt_media_pump``, ``waste_pump``) is a zero-intercept line x = duration (s)
→ y = volume (mL), measured at a PWM frequency ``hz`` and duty cycle ``dc``;
the pump must run at that duty cycle for the line to hold. Without a
calibration, a pump may still run for a *duration* at 100 % duty cycle and
its volume is booked at the default 0.0911 mL/s (domain facts §3.8); a
request in mL needs a calibration.
"""

from __future__ import annotations

from typing import Any

from reactorkit.plugin import Record

DEFAULT_ML_PER_SECOND = 0.0911  # Pioreactor default pump rate (domain facts §3.8)
DEFAULT_DUTY_CYCLE = 100.0  # %
DEFAULT_HZ = 200.0

ACTION_DEVICES = {
    # action: (``[PWM]`` device name, calibration device, liquid in words)
    "add_media": ("media", "media_pump", "media"),
    "add_alt_media": ("alt_media", "alt_media_pump", "alt media"),
    "remove_waste": ("waste", "waste_pump", "waste"),
}


class MissingCalibration(RuntimeError):
    """A volume (mL) was asked of a pump that has no active calibration."""


class PumpRate(Record, kw_only=False):
    """How one pump converts between run time and volume.

    Attributes:
        device: ``media_pump``, ``alt_media_pump`` or ``waste_pump``.
        calibration_name: Name of the active calibration, or None for the default rate.
        duty_cycle: PWM duty cycle (%) to run the pump at (the calibration's ``dc``).
        hz: PWM frequency (Hz) of the calibration.
        calibration: The calibration object (``x_to_y``/``y_to_x``), or None.
    """

    device: str
    calibration_name: str | None
    duty_cycle: float
    hz: float
    calibration: Any = None

    @property
    def is_calibrated(self) -> bool:
        return self.calibration is not None

    def ml_for(self, seconds: float) -> float:
        """Volume (mL) delivered in ``seconds`` of pumping (x → y of the calibration)."""
        if seconds <= 0:
            return 0.0
        if self.calibration is None:
            return DEFAULT_ML_PER_SECOND * seconds
        return float(self.calibration.x_to_y(seconds))

    def seconds_for(self, ml: float) -> float:
        """Run time (s) that delivers ``ml`` (y → x of the calibration).

        Raises:
            MissingCalibration: no active calibration for this pump.
            ValueError: the calibration gives no positive duration for ``ml``.
        """
        if ml <= 0:
            return 0.0
        if self.calibration is None:
            raise MissingCalibration(missing_calibration_message(self.device))
        try:
            seconds = float(self.calibration.y_to_x(ml, enforce_bounds=False))
        except TypeError:  # a calibration object without the keyword
            seconds = float(self.calibration.y_to_x(ml))
        if not seconds > 0:
            raise ValueError(f"the {self.device} calibration {self.calibration_name!r} gives no positive duration for {ml} mL")
        return seconds


def missing_calibration_message(device: str) -> str:
    """The error text for a volume request without an active calibration of ``device``."""
    return (
        f"No active calibration for {device}: a volume in mL cannot be converted to a pump run time. "
        f"Create one with `pio calibrations run --device {device}` (protocol duration_based) or the UI's "
        f"calibration page, or give --duration in seconds instead."
    )


def _active_calibration(device: str) -> Any:
    """The active calibration of ``device`` from the calibration store, or None."""
    try:
        from reactorkit.plugin import active_calibration
    except ImportError:  # the store is not installed: behave as "no calibration"
        return None
    return active_calibration(device)


def pump_rate(action: str) -> PumpRate:
    """The rate of the pump behind ``action`` (``add_media``, ``add_alt_media``, ``remove_waste``).

    Raises:
        KeyError: unknown action.
    """
    _, device, _ = ACTION_DEVICES[action]
    calibration = _active_calibration(device)
    if calibration is None:
        return PumpRate(device=device, calibration_name=None, duty_cycle=DEFAULT_DUTY_CYCLE, hz=DEFAULT_HZ)
    record = getattr(calibration, "record", None) or {}

    def number(key: str, fallback: float) -> float:
        value = record.get(key, getattr(calibration, key, None))
        try:
            return float(value) if value is not None else fallback
        except (TypeError, ValueError):
            return fallback

    duty_cycle = min(max(number("dc", DEFAULT_DUTY_CYCLE), 0.0), 100.0)
    return PumpRate(device=device, calibration_name=getattr(calibration, "name", None), duty_cycle=duty_cycle,
                    hz=number("hz", DEFAULT_HZ), calibration=calibration)


def pump_calibration_record(device: str, ml_per_second: float, *, name: str, unit: str, created_at: str,
                            dc: float = 100.0, hz: float = DEFAULT_HZ, voltage: float = -1.0) -> dict[str, Any]:
    """A ``simple_peristaltic_pump`` calibration record for a pump delivering ``ml_per_second`` at ``dc`` %.

    Used to write a calibration that matches a known pump (e.g. the simulated
    one: ``[simulation] pump_ml_per_second × dc / 100``).
    """
    durations = [1.0, 2.0, 5.0, 10.0]
    return {
        "calibration_type": "simple_peristaltic_pump",
        "calibration_name": name,
        "calibrated_on_pioreactor_unit": unit,
        "created_at": created_at,
        "curve_data_": {"type": "poly", "coefficients": [float(ml_per_second), 0.0]},
        "x": "Duration",
        "y": "Volume",
        "recorded_data": {"x": durations, "y": [round(ml_per_second * d, 6) for d in durations]},
        "hz": float(hz),
        "dc": float(dc),
        "voltage": float(voltage),
    }
