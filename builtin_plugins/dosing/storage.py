"""Rows for the leader database from dosing MQTT messages (``TopicMapping`` parsers).

Each parser takes ``(topic, payload: bytes)`` and returns one row; unit and
experiment come from the topic (:func:`reactorkit.plugin.row_from_topic`).
Tables and topics follow domain facts §4.1–4.2.
"""

from __future__ import annotations

import json
from typing import Any

from reactorkit.plugin import get_clock, utc_iso_ms
from reactorkit.plugin import row_from_topic


def _receive_time() -> str:
    return utc_iso_ms(get_clock().now())


def parse_dosing_event(topic: str, payload: bytes) -> dict[str, Any]:
    """``{volume_change, event, source_of_event, timestamp}`` → a ``dosing_events`` row.

    ``volume_change_ml`` is accepted as the volume key too.

    Raises:
        ValueError / KeyError: not a dosing event.
    """
    data = json.loads(payload)
    volume = data["volume_change"] if "volume_change" in data else data["volume_change_ml"]
    return row_from_topic(topic, timestamp=data["timestamp"], event=str(data["event"]),
                          volume_change_ml=float(volume), source_of_event=data.get("source_of_event"))


def parse_current_volume(topic: str, payload: bytes) -> dict[str, Any]:
    """``bioreactor/current_volume_ml`` (a number, mL) → a ``liquid_volumes`` row at receive time."""
    return row_from_topic(topic, timestamp=_receive_time(), liquid_volume=float(payload))


def parse_alt_media_fraction(topic: str, payload: bytes) -> dict[str, Any]:
    """``bioreactor/alt_media_fraction`` (a number, 0–1) → an ``alt_media_fractions`` row at receive time."""
    return row_from_topic(topic, timestamp=_receive_time(), alt_media_fraction=float(payload))
