"""Runner of ``pio run dosing_automation`` (the host job of dosing automations)."""

from __future__ import annotations

from typing import Any

TRUE_WORDS = ("1", "true", "yes", "on", "y", "t", "")


def run_dosing_automation(*, unit: str, experiment: str, config: Any, automation_name: str, **kwargs: Any) -> int:
    """Start the automation ``automation_name`` and block until it disconnects.

    Other options arrive as strings and are cast with the automation's field
    types. ``--skip-first-run`` is read as a boolean.

    Returns:
        0 after a clean stop; 1 when it could not start (error on stderr and in
        the logs); 2 for an unknown automation or a bad option.
    """
    from reactorkit.builtin_plugins.dosing.calibration import MissingCalibration
    from reactorkit.builtin_plugins.dosing.pumps import PumpError
    from reactorkit.plugin import run_automation_host

    if isinstance(kwargs.get("skip_first_run"), str):
        kwargs["skip_first_run"] = kwargs["skip_first_run"].strip().lower() in TRUE_WORDS
    return run_automation_host("dosing", unit=unit, experiment=experiment, config=config,
                               automation_name=automation_name, refusals=(PumpError, MissingCalibration, ValueError,
                                                                          TypeError), refusal_exit=1, **kwargs)
