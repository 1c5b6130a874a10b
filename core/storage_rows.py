"""Helpers for ``TopicMapping.parse`` functions: rows from MQTT topics."""

from __future__ import annotations

from typing import Any

from reactorkit.core.clock import iso_to_utc_iso_ms, parse_iso, utc_iso_ms


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
        row["timestamp"] = iso_to_utc_iso_ms(timestamp)
    row.update(values)
    return row


def automation_settings_row(topic: str, payload: bytes) -> dict[str, Any]:
    """``{x}_automation/{x}_automation_settings`` → a ``{x}_automation_settings`` row.

    The payload is ``{pioreactor_unit, experiment, started_at, ended_at,
    automation_name, settings}`` (domain facts §3.4); ``settings`` (base64 of
    the JSON settings) is stored as is, times in the database format.

    Raises:
        ValueError / KeyError: not a settings record.
    """
    import json

    data = json.loads(payload)
    row = row_from_topic(topic)
    row.update(
        started_at=utc_iso_ms(parse_iso(data["started_at"])),
        ended_at=utc_iso_ms(parse_iso(data["ended_at"])) if data.get("ended_at") else None,
        automation_name=str(data["automation_name"]),
        settings=str(data["settings"]),
    )
    return row


def automation_event_row(topic: str, payload: bytes) -> dict[str, Any] | None:
    """``{x}_automation/latest_event`` ``{event_name, message, data}`` → a ``{x}_automation_events``
    row stamped with the receive time (cluster clock); empty payloads (job stopped) give None.

    Raises:
        ValueError / KeyError: not an event.
    """
    import json

    from reactorkit.core.clock import get_clock

    if not payload:
        return None
    data = json.loads(payload)
    return row_from_topic(topic, timestamp=utc_iso_ms(get_clock().now()), event_name=str(data["event_name"]),
                          message=str(data.get("message", "")), data=json.dumps(data.get("data") or {}))
