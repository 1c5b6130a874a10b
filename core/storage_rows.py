"""Helpers for ``TopicMapping.parse`` functions: rows from MQTT topics."""

from __future__ import annotations

from typing import Any

from reactorkit.core.clock import parse_iso, utc_iso_ms


def row_from_topic(topic: str, *, timestamp: str | None = None, **values: Any) -> dict[str, Any]:
    """A row with ``pioreactor_unit`` and ``experiment`` taken from a topic
    ``[prefix]pioreactor/{unit}/{experiment}/…`` and ``timestamp`` normalised
    to the database format (UTC, milliseconds, ``Z``).

    Raises:
        ValueError: the topic has no unit/experiment segments or the timestamp is not ISO-8601.
    """
    parts = topic.split("/")
    try:
        index = parts.index("pioreactor")
        unit, experiment = parts[index + 1], parts[index + 2]
    except (ValueError, IndexError) as exc:
        raise ValueError(f"topic {topic!r} has no pioreactor/{{unit}}/{{experiment}} segments") from exc
    row: dict[str, Any] = {"pioreactor_unit": unit, "experiment": experiment}
    if timestamp is not None:
        row["timestamp"] = utc_iso_ms(parse_iso(timestamp))
    row.update(values)
    return row
