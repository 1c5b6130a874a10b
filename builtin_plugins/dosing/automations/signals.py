"""Where the OD-like inputs of dosing automations come from (topics and payload keys).

Signals (domain facts §3.2, §3.3, §3.5):

* ``normalized_od``: ``growth_rate_calculating/od_filtered``, payload ``{"od_filtered", "timestamp"}``;
* ``od``: ``od_reading/od{channel}`` of the lowest-numbered signal photodiode
  (``[od_config.photodiode_channel]``, REF excluded), payload ``{"od", …}``;
* ``od_fused``: ``od_reading/od_fused``, payload ``{"od_fused", "timestamp"}``;
* ``growth_rate``: ``growth_rate_calculating/growth_rate``, payload ``{"growth_rate", "timestamp"}`` (h⁻¹).

``auto`` resolves once: ``[dosing_automation.turbidostat] biomass_signal`` if
set to a concrete signal, else ``od_fused`` when an ``od_fused`` estimator is
active, else ``od`` when the lowest signal channel's ``od{angle}`` calibration
is active, else ``normalized_od``.
"""

from __future__ import annotations

import json
import math
from typing import Any

BIOMASS_SIGNALS = ("auto", "normalized_od", "od", "od_fused")


def lowest_signal_channel(config: Any) -> tuple[str, str] | None:
    """``(channel, angle)`` of the lowest-numbered non-REF photodiode, e.g. ``("2", "90")``."""
    section = "od_config.photodiode_channel"
    if not config.has_section(section):
        return None
    channels = sorted((int(k), v) for k, v in config.items(section) if v and v != "REF" and k.isdigit())
    return (str(channels[0][0]), channels[0][1]) if channels else None


def _estimator_active(device: str) -> bool:
    try:
        from reactorkit.plugin import active_estimator

        return active_estimator(device) is not None
    except Exception:
        return False


def _calibration_active(device: str) -> bool:
    try:
        from reactorkit.plugin import active_calibration

        return active_calibration(device) is not None
    except Exception:
        return False


def resolve_biomass_signal(config: Any, requested: str = "auto") -> str:
    """A concrete signal name for ``requested`` (see the module docstring).

    Raises:
        ValueError: not one of ``auto, normalized_od, od, od_fused``.
    """
    if requested not in BIOMASS_SIGNALS:
        raise ValueError(f"biomass_signal must be one of {', '.join(BIOMASS_SIGNALS)}, got {requested!r}")
    if requested == "auto":
        configured = config.get("dosing_automation.turbidostat", "biomass_signal", fallback="auto") or "auto"
        if configured in BIOMASS_SIGNALS and configured != "auto":
            return configured
        if _estimator_active("od_fused"):
            return "od_fused"
        lowest = lowest_signal_channel(config)
        if lowest is not None and _calibration_active(f"od{lowest[1]}"):
            return "od"
        return "normalized_od"
    return requested


def signal_topic(signal: str, unit: str, experiment: str, config: Any) -> tuple[str, str]:
    """``(topic, payload_key)`` of a concrete signal (``normalized_od``, ``od``, ``od_fused``, ``growth_rate``).

    Raises:
        ValueError: unknown signal, or ``od`` without a signal photodiode.
    """
    from reactorkit.plugin import job_topic

    if signal == "normalized_od":
        return job_topic(unit, experiment, "growth_rate_calculating", "od_filtered", config=config), "od_filtered"
    if signal == "growth_rate":
        return job_topic(unit, experiment, "growth_rate_calculating", "growth_rate", config=config), "growth_rate"
    if signal == "od_fused":
        return job_topic(unit, experiment, "od_reading", "od_fused", config=config), "od_fused"
    if signal == "od":
        lowest = lowest_signal_channel(config)
        if lowest is None:
            raise ValueError("biomass_signal od needs a signal photodiode in [od_config.photodiode_channel]")
        return job_topic(unit, experiment, "od_reading", f"od{lowest[0]}", config=config), "od"
    raise ValueError(f"unknown signal {signal!r}")


def parse_signal(payload: bytes, key: str) -> float:
    """The number under ``key`` in a JSON payload (a bare number is accepted too).

    Raises:
        ValueError: not JSON, no such key, or not a finite number.
    """
    data = json.loads(payload)
    value = data[key] if isinstance(data, dict) else data
    if isinstance(value, bool):
        raise ValueError(f"{key} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{key} must be finite, got {value!r}")
    return value
