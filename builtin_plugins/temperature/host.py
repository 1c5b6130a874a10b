"""Runner of ``pio run temperature_automation`` (the host job of temperature automations)."""

from __future__ import annotations

import sys
from typing import Any


def run_temperature_automation(*, unit: str, experiment: str, config: Any, automation_name: str, **kwargs: Any) -> int:
    """Start the temperature automation ``automation_name`` and block until it disconnects.

    Other options (e.g. ``--target-temperature 30``) arrive as strings and are
    cast with the automation's field types.

    Returns:
        0 after a clean stop; 1 when it could not start (reason on stderr);
        2 for an unknown automation or a bad option.
    """
    from reactorkit.plugin import run_automation
    from reactorkit.plugin import JobAlreadyRunning

    try:
        return run_automation("temperature", unit=unit, experiment=experiment, config=config,
                              automation_name=automation_name, **kwargs)
    except JobAlreadyRunning as exc:
        print(f"Error: {exc}. Stop it first with: pio kill --job-name temperature_automation", file=sys.stderr)
        return 1
    except ConnectionError as exc:
        print(f"Error: {exc}. Is mosquitto running? Check [mqtt] in config.ini.", file=sys.stderr)
        return 1
    except (ValueError, TypeError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
