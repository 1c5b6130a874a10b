"""``chemostat``: exchange a fixed volume every ``duration`` minutes.

The dilution rate is D = exchange_volume_ml / V · 60 / duration (h⁻¹), with V
the vial volume (mL); at steady state the culture's growth rate equals D
(Monod 1950, *Ann. Inst. Pasteur* 79:390; Novick & Szilard 1950, *Science* 112:715).
"""

from __future__ import annotations

from typing import Any

from reactorkit.builtin_plugins.dosing.automation import DosingAutomationJob, exchange_volume, positive
from reactorkit.plugin import AutomationEvent, DilutionEvent
from reactorkit.builtin_plugins.dosing.descriptors import AUTOMATIONS
from reactorkit.plugin import automation_settings



class Chemostat(DosingAutomationJob):
    """Media in and waste out, ``exchange_volume_ml`` every ``duration`` minutes.

    Args:
        exchange_volume_ml: mL of media (and waste) per exchange (> 0).
        duration: Minutes between exchanges (default 20).

    Raises:
        ValueError: a parameter is not positive.
    """

    automation_name = "chemostat"
    pumps = ("add_media", "remove_waste")
    published_settings = automation_settings(AUTOMATIONS, "chemostat")  # its fields, declared once

    def __init__(self, unit: str, experiment: str, *, exchange_volume_ml: float, duration: float = 20.0,
                 **kwargs: Any) -> None:
        exchange = exchange_volume("exchange_volume_ml", exchange_volume_ml, kwargs.get("config"))
        positive("duration", duration)
        super().__init__(unit, experiment, duration=duration, **kwargs)
        self.exchange_volume_ml = exchange

    def set_exchange_volume_ml(self, value: float) -> None:
        self.exchange_volume_ml = exchange_volume("exchange_volume_ml", value, self.config)

    def set_duration(self, value: float) -> None:
        super().set_duration(positive("duration", value))

    def execute(self) -> AutomationEvent:
        volume = self.exchange_volume_ml
        moved = self.execute_io_action(media_ml=volume, waste_ml=volume)
        return DilutionEvent(
            message=f"exchanged {moved['media_ml']:.2f} mL",
            data={"exchange_volume_ml": volume, "volumes_moved_ml": moved},
        )
