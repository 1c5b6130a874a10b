"""Runner of ``pio run led_automation`` (the host job of LED automations)."""

from __future__ import annotations

from typing import Any


def run_led_automation(**kwargs: Any) -> int:
    """:func:`reactorkit.plugin.run_automation_host` for LED automations (options such as
    ``--light-intensity 40`` are cast with the automation's field types)."""
    from reactorkit.plugin import run_automation_host

    return run_automation_host("led", **kwargs)
