"""The family base of LED automations (host job ``led_automation``)."""

from __future__ import annotations

import threading
from typing import Any, ClassVar, Mapping

from reactorkit.plugin import AutomationJob
from reactorkit.plugin import get_config
from reactorkit.plugin import Hardware, get_hardware

from .intensity import change_leds


class LedAutomationJob(AutomationJob):
    """Base class of every LED automation.

    LEDs are changed only through :meth:`set_led_intensities`, which publishes
    ``leds/intensity`` and ``led_change_events`` with ``source_of_event``
    ``led_automation:<automation_name>`` and remembers the channels touched;
    those are turned off (0 %) when the automation disconnects.

    Args:
        unit, experiment: As :class:`~reactorkit.core.job.BackgroundJob`.
        hardware: The unit's hardware (default: the configured backend).
        **kwargs: Passed to :class:`~reactorkit.core.automation.AutomationJob`.
    """

    job_name = "led_automation"
    automation_type: ClassVar[str] = "led"

    def __init__(self, unit: str, experiment: str, *, hardware: Hardware | None = None, **kwargs: Any) -> None:
        cfg = kwargs.get("config") or get_config()
        self._led_lock = threading.RLock()
        self.edited_channels: set[str] = set()
        super().__init__(unit, experiment, **kwargs)
        self.hardware = hardware or get_hardware(cfg, unit)

    @property
    def source_of_event(self) -> str:
        return f"{self.job_name}:{self.automation_name}"

    def set_led_intensities(self, intensities: Mapping[str, float]) -> dict[str, float]:
        """Set channels (``{"C": 50.0}``, %) and publish the change; returns all four intensities.

        Raises:
            InvalidLedIntensity: bad channel or intensity.
        """
        with self._led_lock:
            state, _ = change_leds(intensities, unit=self.unit, experiment=self.experiment,
                                   source_of_event=self.source_of_event, hardware=self.hardware,
                                   mqtt_client=self.mqtt, clock=self.clock, config=self.config, logger=self.logger)
            self.edited_channels.update(c.upper() for c in intensities)
            return state

    def on_disconnected(self) -> None:
        with self._led_lock:
            if self.edited_channels:
                try:
                    self.set_led_intensities({c: 0.0 for c in sorted(self.edited_channels)})
                except Exception as exc:
                    self.logger.error("could not turn the LEDs off: %s", exc)
        super().on_disconnected()
