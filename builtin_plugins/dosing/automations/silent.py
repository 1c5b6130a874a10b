"""``silent``: a dosing automation that never doses (keeps the host job and its bookkeeping alive)."""

from __future__ import annotations

from typing import Any

from reactorkit.builtin_plugins.dosing.automation import DosingAutomationJob
from reactorkit.plugin import AutomationEvent, NoEvent


class Silent(DosingAutomationJob):
    """Do nothing; with a ``duration`` (min) it reports ``NoEvent`` every ``duration`` minutes."""

    automation_name = "silent"

    def __init__(self, unit: str, experiment: str, **kwargs: Any) -> None:
        super().__init__(unit, experiment, **kwargs)

    def execute(self) -> AutomationEvent:
        return NoEvent(message="silent: nothing to do")
