"""Storage records plugins build alike: a table of rows per experiment and unit, and what an
automation host stores (its runs' settings and its events, domain facts §3.4).

Kept to record building (no database, no MQTT), so that a plugin's descriptors stay cheap to load.
"""

from __future__ import annotations

from typing import Any

from reactorkit.core.descriptors import DatasetDescriptor, TableDescriptor, TopicMapping


def unit_table(name: str, columns: str, *, index: str = "experiment, pioreactor_unit, timestamp",
               time_series: Any = None) -> TableDescriptor:
    """A table of rows per experiment and unit: ``experiment`` (deleted with its experiment), ``pioreactor_unit``,
    then ``columns`` (SQL column definitions, e.g. ``"timestamp TEXT NOT NULL, rate REAL NOT NULL"``),
    indexed on ``index``.

    Args:
        time_series: A ``TimeSeries`` when the rows are readings over time.
    """
    return TableDescriptor(
        table=name,
        time_series=time_series,
        create_sql=f"""
            CREATE TABLE IF NOT EXISTS {name} (
                experiment TEXT NOT NULL REFERENCES experiments (experiment) ON DELETE CASCADE,
                pioreactor_unit TEXT NOT NULL,
                {columns}
            );
            CREATE INDEX IF NOT EXISTS {name}_ix ON {name} ({index});
        """,
    )


def automation_host_records(kind: str, label: str, events: str) -> tuple[tuple[DatasetDescriptor, ...], tuple[Any, ...]]:
    """What the automation host ``{kind}_automation`` stores: a row per automation run (its name, start and end,
    its settings) and its automations' events, with their datasets.

    Args:
        kind: ``"dosing"``, ``"led"``, ``"temperature"`` …: the job is ``{kind}_automation``.
        label: How the datasets name the automations, e.g. ``"dosing"``, ``"LED"``.
        events: What the events dataset holds, e.g. ``"What dosing automations did …, with messages and data."``.

    Returns:
        ``(datasets, storage)``: the settings and events datasets; their two tables and two topic mappings
        (rows by :func:`reactorkit.core.storage_rows.automation_settings_row` and ``automation_event_row``).
    """
    job, settings, events_table = f"{kind}_automation", f"{kind}_automation_settings", f"{kind}_automation_events"
    datasets = (
        DatasetDescriptor(
            dataset_name=settings,
            display_name=f"{label[:1].upper()}{label[1:]} automation settings",
            description=f"One row per {label} automation run: its name, start and end times and its settings as "
                        "JSON (as they were when it ended, or latest while it runs).",
            query=("SELECT experiment, pioreactor_unit, automation_name, started_at, MAX(ended_at) AS ended_at, "
                   f"json_from_base64(settings) AS settings FROM {settings} "
                   "GROUP BY experiment, pioreactor_unit, automation_name, started_at"),  # stored at start and end
            column_descriptions={"settings": "The automation's settings, a JSON object."},
            default_order_by="started_at",
            timestamp_columns=("started_at", "ended_at"),
        ),
        DatasetDescriptor(dataset_name=events_table, display_name=f"{label[:1].upper()}{label[1:]} automation events",
                          description=events, table=events_table),
    )
    storage = (
        unit_table(settings, "started_at TEXT NOT NULL, ended_at TEXT, automation_name TEXT NOT NULL, "
                             "settings BLOB NOT NULL", index="experiment, pioreactor_unit, started_at"),
        unit_table(events_table, "timestamp TEXT NOT NULL, event_name TEXT NOT NULL, message TEXT, data TEXT"),
        TopicMapping(topic=f"pioreactor/+/+/{job}/{settings}", table=settings,
                     parse="reactorkit.core.storage_rows:automation_settings_row"),
        TopicMapping(topic=f"pioreactor/+/+/{job}/latest_event", table=events_table,
                     parse="reactorkit.core.storage_rows:automation_event_row"),
    )
    return datasets, storage
