"""Write exportable datasets from the leader database into a zip of CSVs (domain facts §11).

Rows are streamed from SQLite straight into zip members (one cursor, one open
member at a time), so a table of any size is never held in memory.

Layout of the archive::

    manifest.json
    <dataset>/schema.json
    <dataset>/<dataset>-<experiment|all_experiments>-<unit|all_units>-<YYYYMMDDHHMMSS>.csv

One clock for the whole archive: the task passes the unit's clock (simulated time
when simulated), whose UTC time names the zip and the CSVs and is
``export_created_at``; ``manifest.json`` names it under ``clock``.

Each CSV (UTF-8, comma, header, CRLF) has the dataset's columns ``T.*``, then
``<col>_localtime`` (local ``YYYY-MM-DD HH:MM:SS.fff``) per timestamp column,
then ``hours_since_experiment_created`` (from ``default_order_by`` and the
experiment's ``created_at``) when the dataset has an experiment. Floats are
rounded to 12 decimals. Units are split into their own CSVs when the dataset
has a unit and ``partition_by_unit`` or ``always_partition_by_unit``;
experiments when it has one and ``partition_by_experiment``. A dataset with no
rows gets its ``schema.json`` only.
"""

from __future__ import annotations

import csv
import io
import json
import re
import sqlite3
import time
import zipfile
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

SCHEMA_VERSION = 1
FLOAT_DECIMALS = 12
PROGRESS_EVERY_ROWS = 5000
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._$-]")
GENERATED_DESCRIPTIONS = {
    "hours_since_experiment_created": "Hours between the experiment's creation and this row's time.",
}


@dataclass(frozen=True)
class Filters:
    """What to export.

    Attributes:
        experiments: Experiments to keep (empty: all).
        start_time, end_time: Inclusive bounds on ``default_order_by`` in the
            database format (UTC ``…T…Z`` with milliseconds), or None.
        partition_by_unit, partition_by_experiment: One CSV per unit / per experiment.
    """

    experiments: tuple[str, ...] = ()
    start_time: str | None = None
    end_time: str | None = None
    partition_by_unit: bool = False
    partition_by_experiment: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"experiment": list(self.experiments) or None, "start_time": self.start_time,
                "end_time": self.end_time, "partition_by_unit": self.partition_by_unit,
                "partition_by_experiment": self.partition_by_experiment}


@dataclass
class DatasetExport:
    """What was written for one dataset (a ``manifest.json`` entry)."""

    dataset_name: str
    display_name: str
    schema_path: str
    csv_files: list[dict[str, Any]] = field(default_factory=list)
    row_count: int = 0
    experiments: set[str] = field(default_factory=set)
    units: set[str] = field(default_factory=set)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {
            "dataset_name": self.dataset_name,
            "display_name": self.display_name,
            "schema_path": self.schema_path,
            "csv_paths": [f["path"] for f in self.csv_files],
            "csv_files": self.csv_files,
            "row_count": self.row_count,
            "partition_values": {"experiments": sorted(self.experiments), "pioreactor_units": sorted(self.units)},
        }
        if self.error:
            out["error"] = self.error
        return out


def quote(identifier: str) -> str:
    """A SQL identifier, double-quoted.

    Raises:
        ValueError: not a plain identifier (letters, digits, ``_``).
    """
    if not _IDENTIFIER.fullmatch(identifier):
        raise ValueError(f"{identifier!r} is not a plain SQL identifier")
    return f'"{identifier}"'


def source_sql(dataset: Any) -> str:
    """``"table"`` or ``(query)`` of a dataset descriptor."""
    if dataset.table:
        return quote(dataset.table)
    return f"({dataset.query})"


def source_exists(conn: sqlite3.Connection, dataset: Any) -> bool:
    if not dataset.table:
        return True
    row = conn.execute("SELECT 1 FROM sqlite_master WHERE type IN ('table', 'view') AND name = ?",
                       (dataset.table,)).fetchone()
    return row is not None


def build_query(dataset: Any, filters: Filters, *, split_unit: bool, split_experiment: bool,
                has_experiments_table: bool = True) -> tuple[str, list[Any]]:
    """The export ``SELECT`` of a dataset and its parameters (see the module docstring for the columns)."""
    order_by = quote(dataset.default_order_by)
    select = ["T.*"]
    for column in dataset.timestamp_columns:
        select.append(f"strftime('%Y-%m-%d %H:%M:%f', T.{quote(column)}, 'localtime') AS {quote(column + '_localtime')}")
    join = ""
    if dataset.has_experiment and has_experiments_table:
        select.append(f"(julianday(T.{order_by}) - julianday(E.created_at)) * 24.0 AS hours_since_experiment_created")
        join = " LEFT JOIN experiments AS E ON E.experiment = T.experiment"
    where, params = [], []
    if dataset.has_experiment and filters.experiments:
        where.append(f"T.experiment IN ({', '.join('?' for _ in filters.experiments)})")
        params.extend(filters.experiments)
    if filters.start_time:
        where.append(f"T.{order_by} >= ?")
        params.append(filters.start_time)
    if filters.end_time:
        where.append(f"T.{order_by} <= ?")
        params.append(filters.end_time)
    order = (["T.experiment"] if split_experiment else []) + (["T.pioreactor_unit"] if split_unit else [])
    order.append(f"T.{order_by}")
    sql = f"SELECT {', '.join(select)} FROM {source_sql(dataset)} AS T{join}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    return sql + " ORDER BY " + ", ".join(order), params


def format_value(value: Any) -> Any:
    """A CSV cell: floats rounded to 12 decimals (shortest form), bytes as text, None as empty."""
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(round(value, FLOAT_DECIMALS))
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value


def csv_name(dataset_name: str, experiment: str | None, unit: str | None, stamp: str) -> str:
    """``<dataset>-<experiment|all_experiments>-<unit|all_units>-<stamp>.csv`` with unsafe characters as ``_``."""
    parts = [dataset_name, experiment if experiment is not None else "all_experiments",
             unit if unit is not None else "all_units", stamp]
    return _UNSAFE_NAME_CHARS.sub("_", "-".join(str(p) for p in parts)) + ".csv"


def schema_document(dataset: Any, columns: list[str], generated: list[str]) -> dict[str, Any]:
    """The dataset's ``schema.json``."""
    entries = []
    for name in columns:
        entry: dict[str, Any] = {"name": name, "generated": name in generated}
        description = dataset.column_descriptions.get(name) or GENERATED_DESCRIPTIONS.get(name)
        if description is None and name.endswith("_localtime") and name in generated:
            description = f"{name[:-len('_localtime')]} in the leader's local time."
        if description:
            entry["description"] = description
        unit = dataset.column_units.get(name) or ("h" if name == "hours_since_experiment_created" else None)
        if unit:
            entry["unit"] = unit
        entries.append(entry)
    return {
        "schema_version": SCHEMA_VERSION,
        "dataset_name": dataset.dataset_name,
        "display_name": dataset.display_name,
        "description": dataset.description,
        "source": dataset.source,
        "table": dataset.table,
        "query": dataset.query,
        "default_order_by": dataset.default_order_by,
        "timestamp_columns": list(dataset.timestamp_columns),
        "entity_columns": [c for c in ("experiment", "pioreactor_unit") if c in columns],
        "generated_columns": generated,
        "columns": entries,
    }


def write_dataset(zf: zipfile.ZipFile, conn: sqlite3.Connection, dataset: Any, filters: Filters, *,
                  stamp: str, progress: Callable[[int], None] | None = None) -> DatasetExport:
    """Stream one dataset into ``zf``; returns its manifest entry.

    A missing table or a failing query is recorded in the entry's ``error``
    (its ``schema.json`` is still written) and never stops the export.
    """
    name = dataset.dataset_name
    result = DatasetExport(name, dataset.display_name, f"{name}/schema.json")
    split_unit = bool(dataset.has_unit and (filters.partition_by_unit or dataset.always_partition_by_unit))
    split_experiment = bool(dataset.has_experiment and filters.partition_by_experiment)
    generated = [f"{c}_localtime" for c in dataset.timestamp_columns]
    if dataset.has_experiment:
        generated.append("hours_since_experiment_created")
    columns: list[str] = []
    try:
        if not source_exists(conn, dataset):
            raise LookupError(f"table {dataset.table!r} does not exist yet (no data recorded)")
        has_experiments = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'experiments'").fetchone() is not None
        if not has_experiments and "hours_since_experiment_created" in generated:
            generated.remove("hours_since_experiment_created")
        sql, params = build_query(dataset, filters, split_unit=split_unit, split_experiment=split_experiment,
                                  has_experiments_table=has_experiments)
        cursor = conn.execute(sql, params)
        columns = [d[0] for d in cursor.description]
        _stream_rows(zf, cursor, columns, result, name, split_unit, split_experiment, stamp, progress)
    except (sqlite3.Error, LookupError, ValueError) as exc:
        result.error = str(exc)
    zf.writestr(result.schema_path, json.dumps(schema_document(dataset, columns, [c for c in generated if c in columns]),
                                               indent=2))
    return result


def _stream_rows(zf: zipfile.ZipFile, cursor: sqlite3.Cursor, columns: list[str], result: DatasetExport, name: str,
                 split_unit: bool, split_experiment: bool, stamp: str, progress: Callable[[int], None] | None) -> None:
    exp_index = columns.index("experiment") if "experiment" in columns else None
    unit_index = columns.index("pioreactor_unit") if "pioreactor_unit" in columns else None
    current_key: Any = object()
    member = text = writer = None
    count = 0

    def close() -> None:
        if member is not None:
            text.flush()
            text.detach()
            member.close()

    try:
        while True:
            rows = cursor.fetchmany(1000)
            if not rows:
                break
            for row in rows:
                experiment = row[exp_index] if exp_index is not None else None
                unit = row[unit_index] if unit_index is not None else None
                if experiment is not None:
                    result.experiments.add(experiment)
                if unit is not None:
                    result.units.add(unit)
                key = (experiment if split_experiment else None, unit if split_unit else None)
                if key != current_key:
                    close()
                    path = f"{name}/{csv_name(name, key[0], key[1], stamp)}"
                    member = zf.open(path, "w", force_zip64=True)
                    text = io.TextIOWrapper(member, encoding="utf-8", newline="")
                    writer = csv.writer(text, lineterminator="\r\n")
                    writer.writerow(columns)
                    result.csv_files.append({"path": path, "row_count": 0,
                                             "partition": {"experiment": key[0], "pioreactor_unit": key[1]}})
                    current_key = key
                writer.writerow([format_value(v) for v in row])
                result.csv_files[-1]["row_count"] += 1
                count += 1
                if progress is not None and count % PROGRESS_EVERY_ROWS == 0:
                    progress(count)
    finally:
        close()
    result.row_count = count
    if progress is not None:
        progress(count)


GAP_COLUMNS = ("experiment", "pioreactor_unit", "topic", "count", "first_seq", "last_seq", "first_dropped_at",
               "last_dropped_at", "reason")


def ingestion_gaps(conn: sqlite3.Connection, filters: Filters) -> list[dict[str, Any]]:
    """Runs of readings the units reported lost (``ingestion_gaps``) within the export's experiments and time
    window, oldest first; empty when there are none (or no such table)."""
    try:
        sql = f"SELECT {', '.join(GAP_COLUMNS)} FROM ingestion_gaps WHERE 1 = 1"
        params: list[Any] = []
        if filters.experiments:
            sql += f" AND experiment IN ({', '.join('?' * len(filters.experiments))})"
            params += list(filters.experiments)
        if filters.start_time:
            sql += " AND last_dropped_at >= ?"
            params.append(filters.start_time)
        if filters.end_time:
            sql += " AND first_dropped_at <= ?"
            params.append(filters.end_time)
        rows = conn.execute(sql + " ORDER BY first_dropped_at", params).fetchall()
    except sqlite3.Error:
        return []
    return [dict(zip(GAP_COLUMNS, row)) for row in rows]


def _gaps_csv(gaps: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(GAP_COLUMNS)
    for gap in gaps:
        writer.writerow([gap[c] for c in GAP_COLUMNS])
    return out.getvalue()


def local_stamp(ts: float | None = None) -> str:
    """``YYYYMMDDHHMMSS`` in local time."""
    return time.strftime("%Y%m%d%H%M%S", time.localtime(ts))


def utc_stamp(ts: float) -> str:
    """``YYYYMMDDHHMMSS`` in UTC of epoch seconds ``ts`` (the zip's and the CSVs' names)."""
    return time.strftime("%Y%m%d%H%M%S", time.gmtime(ts))


def clock_entry(speedup: float, origin: float, now: float) -> dict[str, Any]:
    """The manifest's ``clock``: which clock every time of the export is on.

    Args:
        speedup: Simulated seconds per wall second (1: the real clock).
        origin: Epoch second where simulated and wall time coincide.
        now: The export's time on that clock (epoch seconds).
    """
    from datetime import datetime, timezone

    def iso(ts: float) -> str:
        return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"

    if speedup == 1:
        return {"kind": "real", "speedup": 1.0, "now": iso(now),
                "note": "Every time in this export (file names, export_created_at, the rows' timestamps) is UTC "
                        "wall-clock time."}
    return {"kind": "simulated", "speedup": speedup, "origin": iso(origin), "now": iso(now),
            "note": f"Every time in this export (file names, export_created_at, the rows' timestamps) is simulated "
                    f"time: it runs {speedup:g}× faster than the wall clock from origin, where both agree."}


def json_from_base64(value: Any) -> Any:
    """SQL function of exports: the JSON text inside base64 (automation settings as stored), compact;
    the value unchanged when it is not base64 of JSON."""
    import base64
    import binascii

    if not isinstance(value, (str, bytes)):
        return value
    try:
        decoded = json.loads(base64.b64decode(value, validate=True))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return value
    return json.dumps(decoded, sort_keys=True, separators=(", ", ": "))


def register_functions(conn: sqlite3.Connection) -> None:
    """SQL functions dataset queries may use: ``json_from_base64(text)``."""
    conn.create_function("json_from_base64", 1, json_from_base64, deterministic=True)


def write_export(path: Any, conn: sqlite3.Connection, datasets: Iterable[Any], filters: Filters, *,
                 version: str, created_at: str, selected: list[str],
                 progress: Callable[[str, int, int], None] | None = None, stamp: str | None = None,
                 clock: dict[str, Any] | None = None) -> list[DatasetExport]:
    """Write the whole archive at ``path`` (datasets, then ``manifest.json``); returns the entries.

    ``stamp`` names the CSVs (``YYYYMMDDHHMMSS``, default the local time now); ``clock``
    (:func:`clock_entry`) says in the manifest which clock the export's times are on.
    """
    datasets = list(datasets)
    stamp = stamp or local_stamp()
    register_functions(conn)
    entries = []
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
        for index, dataset in enumerate(datasets):
            callback = (lambda rows, i=index, n=dataset.dataset_name: progress(n, i, rows)) if progress else None
            entries.append(write_dataset(zf, conn, dataset, filters, stamp=stamp, progress=callback))
        manifest = {
            "schema_version": SCHEMA_VERSION,
            "pioreactor_version": version,
            "export_created_at": created_at,
            **({"clock": clock} if clock else {}),
            "filters": filters.to_dict(),
            "selected_datasets": selected,
            "datasets": [e.to_dict() for e in entries],
        }
        gaps = ingestion_gaps(conn, filters)
        if gaps:  # readings lost before they reached the database: marked, never silent
            manifest["ingestion_gaps"] = gaps
            zf.writestr("ingestion_gaps.csv", _gaps_csv(gaps))
        zf.writestr("manifest.json", json.dumps(manifest, indent=2))
    return entries
