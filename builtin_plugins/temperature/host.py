"""Runner of ``pio run temperature_automation`` (the host job of temperature automations)."""

from __future__ import annotations

from typing import Any


def run_temperature_automation(**kwargs: Any) -> int:
    """:func:`reactorkit.plugin.run_automation_host` for temperature automations (options such as
    ``--target-temperature 30`` are cast with the automation's field types)."""
    from reactorkit.plugin import run_automation_host

    return run_automation_host("temperature", **kwargs)
