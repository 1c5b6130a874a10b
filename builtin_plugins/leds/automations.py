"""Built-in LED automations: ``silent`` and ``light_dark_cycle``."""

from __future__ import annotations

import math
import threading
from typing import Any

from reactorkit.plugin import AutomationEvent, ChangedLedIntensity, NoEvent
from reactorkit.plugin import READY, PublishedSetting, automation_settings

from .base import LedAutomationJob
from .descriptors import AUTOMATIONS

DEFAULT_LIGHT_MINUTES = 16 * 60.0
DEFAULT_DARK_MINUTES = 8 * 60.0


class Silent(LedAutomationJob):
    """Do nothing to the LEDs."""

    automation_name = "silent"

    def execute(self) -> AutomationEvent:
        return NoEvent()


def _number(name: str, value: Any) -> float | None:
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"{name} must be ≥ 0, got {value!r}")
    return number


def phase_minutes(phase: str, minutes: Any = None, hours: Any = None, default: float = 0.0) -> float:
    """Length of the light or dark phase in minutes, from ``<phase>_duration_minutes`` or ``<phase>_duration_hours``.

    Either name may be given (the UI sends minutes; older clients and profiles hours);
    both must then agree.

    Raises:
        ValueError: not a number, negative, or minutes and hours disagree (names the fields).
    """
    by_minutes = _number(f"{phase}_duration_minutes", minutes)
    by_hours = _number(f"{phase}_duration_hours", hours)
    if by_minutes is not None and by_hours is not None and not math.isclose(by_minutes, by_hours * 60.0):
        raise ValueError(f"{phase}_duration_minutes ({by_minutes:g}) and {phase}_duration_hours ({by_hours:g}) disagree")
    if by_minutes is not None:
        return by_minutes
    if by_hours is not None:
        return by_hours * 60.0
    return default


class LightDarkCycle(LedAutomationJob):
    """Alternate light and dark phases on LED channels D and C.

    The cycle starts lit: ``light_intensity`` % for ``light_duration_minutes``,
    then 0 % for ``dark_duration_minutes``, repeated. A timer fires at each
    phase boundary (simulated time) and publishes a ``ChangedLedIntensity``
    event. Changing a duration re-places the boundaries (the cycle keeps its
    start time); changing the intensity during the light phase applies at once.
    Sleeping turns the lights off; waking restores the current phase. The
    channels go to 0 % when the automation stops.

    Args:
        light_intensity: % (default 50).
        light_duration_minutes / light_duration_hours: Light phase (default 16 h).
        dark_duration_minutes / dark_duration_hours: Dark phase (default 8 h).

    Raises:
        ValueError: an intensity outside 0–100 %, a negative duration, or both phases empty.
    """

    automation_name = "light_dark_cycle"
    channels = ("D", "C")
    published_settings = (*automation_settings(AUTOMATIONS, "light_dark_cycle"),  # its fields, declared once
                          PublishedSetting(key="light_active", type="boolean", display=False))

    def __init__(self, unit: str, experiment: str, *, light_intensity: Any = 50.0,
                 light_duration_minutes: Any = None, dark_duration_minutes: Any = None,
                 light_duration_hours: Any = None, dark_duration_hours: Any = None, **kwargs: Any) -> None:
        intensity = self._check_intensity(light_intensity)
        light = phase_minutes("light", light_duration_minutes, light_duration_hours, DEFAULT_LIGHT_MINUTES)
        dark = phase_minutes("dark", dark_duration_minutes, dark_duration_hours, DEFAULT_DARK_MINUTES)
        self._check_cycle(light, dark)
        self._cycle_lock = threading.RLock()
        self._boundary = threading.Event()
        self._stop_cycle = threading.Event()
        super().__init__(unit, experiment, **kwargs)
        self.light_intensity = intensity
        self.light_duration_minutes = light
        self.dark_duration_minutes = dark
        self.light_active = False
        self.cycle_started_at = self.clock.now()
        self._thread = threading.Thread(target=self._run_cycle, name="light-dark-cycle", daemon=True)

    # ------------------------------------------------------------ validation
    @staticmethod
    def _check_intensity(value: Any) -> float:
        number = _number("light_intensity", value)
        if number is None or number > 100:
            raise ValueError(f"light_intensity must be within 0–100 %, got {value!r}")
        return number

    @staticmethod
    def _check_cycle(light: float, dark: float) -> None:
        if light + dark <= 0:
            raise ValueError("light_duration_minutes and dark_duration_minutes cannot both be 0")

    # ----------------------------------------------------------------- cycle
    def _phase(self, now: float) -> tuple[bool, float]:
        """``(lit, simulated seconds to the next boundary)`` at ``now``."""
        light_s, dark_s = self.light_duration_minutes * 60.0, self.dark_duration_minutes * 60.0
        position = (now - self.cycle_started_at) % (light_s + dark_s)
        if position < light_s:
            return True, light_s - position
        return False, light_s + dark_s - position

    def _apply_phase(self, force: bool = False, waking: bool = False) -> float:
        """Switch the lights to the phase of now (if needed); returns seconds to the next boundary."""
        with self._cycle_lock:
            lit, remaining = self._phase(self.clock.now())
            active = (self.state == READY or waking) and not self._stop_cycle.is_set()
            if active and (force or lit != self.light_active):
                intensity = self.light_intensity if lit else 0.0
                self.set_led_intensities({c: intensity for c in self.channels})
                self.light_active = lit
                minutes = self.light_duration_minutes if lit else self.dark_duration_minutes
                event = ChangedLedIntensity(
                    message=f"{'Light' if lit else 'Dark'} phase for {minutes:g} min: "
                            f"{', '.join(self.channels)} at {intensity:g} %.",
                    data={"channels": list(self.channels), "intensity": intensity, "light_active": lit},
                )
                self.latest_event = event.to_dict()
                self.logger.info("%s: %s", event.event_name, event.message)
            return remaining

    def _run_cycle(self) -> None:
        while not self._stop_cycle.is_set():
            self._boundary.clear()
            try:
                remaining = self._apply_phase()
            except Exception as exc:
                self.logger.error("light_dark_cycle could not switch the LEDs: %s", exc)
                remaining = 60.0
            # a little past the boundary, so the next evaluation lands in the new phase
            self.clock.wait(self._boundary, remaining + 1e-3)

    def execute(self) -> AutomationEvent | None:
        """With a ``duration`` timer: re-check the phase (the boundary timer does the switching)."""
        self._apply_phase()
        return None

    def _post_init(self) -> None:
        super()._post_init()
        # the cycle starts when the lights first go on, not when the job was built: going ready
        # (registry, MQTT) can take a noticeable part of a phase under a large speed-up
        self.cycle_started_at = self.clock.now()
        self._apply_phase(force=True)  # starts lit
        self._thread.start()

    # -------------------------------------------------------------- settings
    def set_light_intensity(self, value: float) -> None:
        intensity = self._check_intensity(value)
        with self._cycle_lock:
            self.light_intensity = intensity
            if self.light_active and self.state == READY:
                self._apply_phase(force=True)

    def set_light_duration_minutes(self, value: float) -> None:
        minutes = phase_minutes("light", value)
        self._check_cycle(minutes, self.dark_duration_minutes)
        self.light_duration_minutes = minutes
        self._boundary.set()

    def set_dark_duration_minutes(self, value: float) -> None:
        minutes = phase_minutes("dark", value)
        self._check_cycle(self.light_duration_minutes, minutes)
        self.dark_duration_minutes = minutes
        self._boundary.set()

    # ------------------------------------------------------------- lifecycle
    def on_ready_to_sleeping(self) -> None:
        super().on_ready_to_sleeping()
        with self._cycle_lock:
            if self.light_active:
                self.set_led_intensities({c: 0.0 for c in self.channels})
            self.light_active = False

    def on_sleeping_to_ready(self) -> None:
        super().on_sleeping_to_ready()
        self._apply_phase(force=True, waking=True)  # the phase of now, lit or dark
        self._boundary.set()

    def on_disconnected(self) -> None:
        self._stop_cycle.set()
        self._boundary.set()
        with self._cycle_lock:
            super().on_disconnected()
