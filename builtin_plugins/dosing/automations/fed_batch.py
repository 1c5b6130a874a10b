"""``fed_batch``: add media every ``duration`` minutes without removing any."""

from __future__ import annotations

from typing import Any

from reactorkit.builtin_plugins.dosing.automation import DosingAutomationJob, exchange_volume, positive
from reactorkit.builtin_plugins.dosing.pumps import reaches
from reactorkit.plugin import AddMediaEvent, AutomationEvent, ErrorOccurred
from reactorkit.builtin_plugins.dosing.descriptors import AUTOMATIONS
from reactorkit.plugin import automation_settings


class FedBatch(DosingAutomationJob):
    """Add ``dosing_volume_ml`` of media every ``duration`` minutes (default 720).

    The vial fills up: a dose that would reach ``[bioreactor] max_volume_to_stop``
    is skipped, logged as an error and the automation goes to ``sleeping``.

    Raises:
        ValueError: a parameter is not positive.
    """

    automation_name = "fed_batch"
    pumps = ("add_media",)
    published_settings = automation_settings(AUTOMATIONS, "fed_batch")  # its fields, declared once

    def __init__(self, unit: str, experiment: str, *, dosing_volume_ml: float, duration: float = 720.0,
                 **kwargs: Any) -> None:
        dose = exchange_volume("dosing_volume_ml", dosing_volume_ml, kwargs.get("config"))
        positive("duration", duration)
        super().__init__(unit, experiment, duration=duration, **kwargs)
        self.dosing_volume_ml = dose

    def set_dosing_volume_ml(self, value: float) -> None:
        self.dosing_volume_ml = exchange_volume("dosing_volume_ml", value, self.config)

    def set_duration(self, value: float) -> None:
        super().set_duration(positive("duration", value))

    def execute(self) -> AutomationEvent:
        dose = self.dosing_volume_ml
        volume = self.current_volume_ml()
        if reaches(volume + dose, self.max_volume_to_stop):
            message = (f"skipped {dose:g} mL: {volume:.2f} mL + {dose:g} mL would reach [bioreactor] "
                       f"max_volume_to_stop = {self.max_volume_to_stop:g} mL")
            self.logger.error("fed_batch %s; pausing.", message)
            self._pause_after_error()
            return ErrorOccurred(message=message, data={"current_volume_ml": volume, "dosing_volume_ml": dose})
        moved = self.execute_io_action(media_ml=dose, keep_volume=False)
        return AddMediaEvent(message=f"added {moved['media_ml']:.2f} mL of media",
                             data={"dosing_volume_ml": dose, "volumes_moved_ml": moved})
