"""Heating limits and reading cadence per bioreactor model (domain facts §1.4, §3.6).

The model comes from ``$MODEL_NAME`` / ``$MODEL_VERSION`` (default
``pioreactor_20ml`` 1.5). Each limit can be overridden in
``[temperature_automation.config]`` (``max_temp_to_reduce_heating``,
``max_temp_to_disable_heating``, ``max_temp_to_shutdown``, °C).
"""

from __future__ import annotations

import os
from typing import Any

from reactorkit.plugin import Record

SECTION = "temperature_automation.config"
DEFAULT_MODEL = ("pioreactor_20ml", "1.5")
#: (model_name, model_version) → (reduce, disable, shutdown) in °C; every other model uses 78/80/85.
_MODEL_LIMITS_C = {("pioreactor_20ml", "1.0"): (63.0, 65.0, 66.0)}
_DEFAULT_LIMITS_C = (78.0, 80.0, 85.0)


class HeatingLimits(Record, kw_only=False):
    """Heater-PCB temperatures (°C) at which heating is reduced (×0.9), disabled (0 %), or the unit shut down.

    Raises:
        ValueError: the limits are not increasing.
    """

    reduce_c: float = 78.0
    disable_c: float = 80.0
    shutdown_c: float = 85.0

    def __post_init__(self) -> None:
        if not self.reduce_c <= self.disable_c <= self.shutdown_c:
            raise ValueError(
                "heating limits must satisfy max_temp_to_reduce_heating ≤ max_temp_to_disable_heating ≤ "
                f"max_temp_to_shutdown, got {self.reduce_c}, {self.disable_c}, {self.shutdown_c}"
            )


def current_model() -> tuple[str, str]:
    """``(model_name, model_version)`` of this unit (``$MODEL_NAME``, ``$MODEL_VERSION``)."""
    return os.environ.get("MODEL_NAME") or DEFAULT_MODEL[0], os.environ.get("MODEL_VERSION") or DEFAULT_MODEL[1]


def heating_limits(config: Any, model: tuple[str, str] | None = None) -> HeatingLimits:
    """The model's limits, each overridable in ``[temperature_automation.config]``.

    Raises:
        ValueError: a configured limit is not a number, or the limits are not increasing.
    """
    reduce_c, disable_c, shutdown_c = _MODEL_LIMITS_C.get(model or current_model(), _DEFAULT_LIMITS_C)
    return HeatingLimits(
        reduce_c=config.getfloat(SECTION, "max_temp_to_reduce_heating", fallback=reduce_c),
        disable_c=config.getfloat(SECTION, "max_temp_to_disable_heating", fallback=disable_c),
        shutdown_c=config.getfloat(SECTION, "max_temp_to_shutdown", fallback=shutdown_c),
    )


def default_reading_cadence(model: tuple[str, str] | None = None) -> tuple[float, int]:
    """``(seconds between temperature readings, samples per reading)``: 225 s / 29 on the 20 mL v1.0, else 200 s / 21."""
    return (225.0, 29) if (model or current_model()) == ("pioreactor_20ml", "1.0") else (200.0, 21)
