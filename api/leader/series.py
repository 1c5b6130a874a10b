"""Time-series queries of the leader database (no Falcon): windows, down-sampling, JSON built in SQL.

Named series (domain facts §4.3): one series per unit (``unit-channel`` for
tables whose time series is per channel), units ascending, empty series left
out. In the window ``now − lookback < timestamp ≤ now``:

* at most ``target_points`` rows → every row;
* more → down-sampled: evenly spaced times from the series' first to its last
  row, each taking the first row at or after it, duplicates removed, the last
  row always included.

Cost grows with the points returned, not with the rows stored. Rows are never
scanned: counting stops at ``target_points + 1``, the first/last rows are index
seeks, and the down-sampled points come from ``time_series_rollups`` — which
holds, per series and bucket size ``S`` (10·2^k and 15·2^k seconds), the first
row of every ``S``-second bucket, maintained by triggers at ingestion (see
:meth:`reactorkit.core.leader_db.LeaderDB.ensure_rollup`). With the bucket size
``S`` that just fits ``target_points`` into the series' span, the first rows of
the buckets are exactly "the first row at or after each of the evenly spaced
times ``k·S``": the same sampling as above on an aligned grid whose spacing is
at most 1.5× coarser than requested (so between about ⅔ of ``target_points``
and ``target_points`` points). Where no bucket size fits (spans under
``10 s × target_points``, or when the rollup is missing) the grid is
computed exactly, one index seek per point.

The fallback ``{data_source}/{column}`` keeps, per unit, the rows whose
1-based index is divisible by ``k = ceil(n / target_points)`` (so each series'
first row is dropped when ``k > 1``), as the Pioreactor software does.

All JSON (``[{"x": timestamp, "y": value}, …]``) is produced by SQLite.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from typing import Any

from reactorkit.core.clock import parse_iso
from reactorkit.core.leader_db import ROLLUP_BUCKETS, LeaderDB


@dataclass(frozen=True)
class SeriesSpec:
    """A named time series: its table, value column, decimals and whether series split by channel."""

    table: str
    column: str
    decimals: int
    by_channel: bool = False


def named_series_specs(registry: Any) -> dict[str, SeriesSpec]:
    """The named series: one per table whose ``TableDescriptor`` declares ``time_series``, keyed by table."""
    out: dict[str, SeriesSpec] = {}
    for descriptor in (getattr(registry, "tables", None) or {}).values():
        series = descriptor.time_series
        if series is not None:
            out[descriptor.table] = SeriesSpec(descriptor.table, series.value_column, series.decimals,
                                               by_channel=series.per_channel)
    return out

EMPTY = '{"series":[],"data":[]}'


class SeriesQueryError(ValueError):
    """A fallback query names a table or column that cannot be read (the API answers 400)."""


def _series_keys(db: LeaderDB, spec: SeriesSpec, experiment: str, unit: str | None) -> list[tuple[str, int | None]]:
    """``[(unit, channel | None)]`` present for the experiment, sorted; a loose index scan (one seek per key)."""
    conn = db.conn
    table = spec.table
    if unit is None:
        units: list[str] = []
        current = conn.execute(f'SELECT min(pioreactor_unit) FROM "{table}" WHERE experiment = ?', (experiment,)).fetchone()[0]
        while current is not None:
            units.append(current)
            current = conn.execute(
                f'SELECT min(pioreactor_unit) FROM "{table}" WHERE experiment = ? AND pioreactor_unit > ?',
                (experiment, current)).fetchone()[0]
    else:
        units = [unit]
    if not spec.by_channel:
        return [(u, None) for u in units]
    keys: list[tuple[str, int | None]] = []
    for u in units:
        channel = conn.execute(f'SELECT min(channel) FROM "{table}" WHERE experiment = ? AND pioreactor_unit = ?',
                               (experiment, u)).fetchone()[0]
        while channel is not None:
            keys.append((u, channel))
            channel = conn.execute(
                f'SELECT min(channel) FROM "{table}" WHERE experiment = ? AND pioreactor_unit = ? AND channel > ?',
                (experiment, u, channel)).fetchone()[0]
    return keys


def _points_json(spec: SeriesSpec) -> str:
    return f"json_group_array(json_object('x', timestamp, 'y', round(value, {spec.decimals})))"


def _where(spec: SeriesSpec) -> str:
    return "experiment = :e AND pioreactor_unit = :u" + (" AND channel = :c" if spec.by_channel else "")


def _one_series(db: LeaderDB, spec: SeriesSpec, params: dict[str, Any], target: int) -> str | None:
    """The JSON array of one series' points in the window, or None when it has no row there."""
    conn = db.conn
    t, col, where = spec.table, spec.column, _where(spec)
    window = f"{where} AND timestamp > :lo AND timestamp <= :hi"
    p = {**params, "n": target}
    first, last, count = conn.execute(
        f'SELECT (SELECT timestamp FROM "{t}" WHERE {window} ORDER BY timestamp LIMIT 1),'
        f' (SELECT timestamp FROM "{t}" WHERE {window} ORDER BY timestamp DESC LIMIT 1),'
        f' (SELECT count(*) FROM (SELECT 1 FROM "{t}" WHERE {window} LIMIT :n + 1))', p).fetchone()
    if first is None:
        return None
    points = _points_json(spec)
    if count <= target:
        return conn.execute(
            f'SELECT {points} FROM (SELECT timestamp, "{col}" AS value FROM "{t}" WHERE {window} ORDER BY timestamp)',
            p).fetchone()[0]
    p.update(f=first, l=last)
    span = parse_iso(last) - parse_iso(first)
    size = _bucket_size(span, target) if db.rollup_ready(t) else None
    if size is None:
        return _exact_grid(conn, spec, p, target)
    f_epoch, l_epoch = int(parse_iso(first)), int(parse_iso(last))
    p.update(src=t, s=size, bf=f_epoch // size, bl=l_epoch // size, ch=params.get("c") or 0)
    return conn.execute(
        f"SELECT {points} FROM ("
        " SELECT timestamp, value FROM time_series_rollups WHERE experiment = :e AND data_source = :src"
        " AND pioreactor_unit = :u AND channel = :ch AND bucket_s = :s AND bucket BETWEEN :bf AND :bl"
        " AND timestamp > :f AND timestamp < :l"
        f' UNION ALL SELECT * FROM (SELECT timestamp, "{col}" FROM "{t}" WHERE {where} AND timestamp = :f LIMIT 1)'
        f' UNION ALL SELECT * FROM (SELECT timestamp, "{col}" FROM "{t}" WHERE {where} AND timestamp = :l LIMIT 1)'
        " ORDER BY timestamp)", p).fetchone()[0]


def _bucket_size(span_s: float, target: int) -> int | None:
    """The smallest rollup bucket (s) with ``span/S + 3 ≤ target`` points; None when none fits or when even the
    finest bucket would be coarser than needed (short spans: the exact grid is used)."""
    if target < 4:
        return None
    needed = span_s / (target - 3)
    if needed < ROLLUP_BUCKETS[0]:  # the finest bucket would return too few points: use the exact grid
        return None
    for size in ROLLUP_BUCKETS:
        if size >= needed:
            return size
    return None


def _exact_grid(conn: sqlite3.Connection, spec: SeriesSpec, p: dict[str, Any], target: int) -> str:
    """Down-sample on the exact grid (first → last row, ``target`` times): one index seek per time."""
    t, col, where = spec.table, spec.column, _where(spec)
    n = max(target, 2)
    return conn.execute(
        "WITH RECURSIVE"
        " b(jf, step) AS (SELECT julianday(:f), (julianday(:l) - julianday(:f)) / (:n - 1)),"
        " g(i, t, tprev) AS (SELECT 0, :f, NULL UNION ALL"
        "   SELECT i + 1, CASE WHEN i + 2 = :n THEN :l ELSE strftime('%Y-%m-%dT%H:%M:%fZ', jf + (i + 1) * step) END, t"
        "   FROM g, b WHERE i + 1 < :n),"
        f' p(rid) AS (SELECT (SELECT rowid FROM "{t}" WHERE {where} AND timestamp >= g.tprev AND timestamp < g.t'
        "   ORDER BY timestamp LIMIT 1) FROM g WHERE tprev IS NOT NULL"
        f'   UNION ALL SELECT (SELECT rowid FROM "{t}" WHERE {where} AND timestamp = :l LIMIT 1))'
        f' SELECT {_points_json(spec)} FROM (SELECT o.timestamp, o."{col}" AS value FROM p'
        f' JOIN "{t}" o ON o.rowid = p.rid ORDER BY o.timestamp)', {**p, "n": n}).fetchone()[0]


def named_series(db: LeaderDB, spec: SeriesSpec, experiment: str, lo: str, hi: str, target: int,
                 unit: str | None = None) -> str:
    """``{"series": [...], "data": [...]}`` (JSON text) of a named series in ``(lo, hi]``.

    Args:
        spec: The series (from :func:`named_series_specs`).
        lo, hi: Window bounds in the database's timestamp format.
        target: ``target_points`` (> 0).
        unit: Only this unit (per-unit endpoints).

    A table that no plugin has declared yet gives an empty result.
    """
    if not db.table_exists(spec.table):
        return EMPTY
    names: list[str] = []
    arrays: list[str] = []
    for u, channel in _series_keys(db, spec, experiment, unit):
        params = {"e": experiment, "u": u, "c": channel, "lo": lo, "hi": hi}
        array = _one_series(db, spec, params, target)
        if array is None or array == "[]":
            continue
        names.append(f"{u}-{channel}" if spec.by_channel else u)
        arrays.append(array)
    return _document(names, arrays)


def _document(names: list[str], arrays: list[str]) -> str:
    import json

    return '{"series":' + json.dumps(names) + ',"data":[' + ",".join(arrays) + "]}"


_SAFE = re.compile(r"[^A-Za-z0-9_]")


def safe_name(name: str) -> str:
    """``name`` reduced to ``[A-Za-z0-9_]``."""
    return _SAFE.sub("", name)


def fallback_series(db: LeaderDB, data_source: str, column: str, experiment: str, lo: str, hi: str, target: int,
                    unit: str | None = None) -> str:
    """``{data_source}/{column}``: per-unit series of any table with ``experiment, pioreactor_unit, timestamp``.

    Raises:
        SeriesQueryError: the table or column does not exist (or is ``sqlite_*``), or the query fails.
    """
    table, col = safe_name(data_source), safe_name(column)
    if not table or not col or table.lower().startswith("sqlite_"):
        raise SeriesQueryError(f"data_source {data_source!r} / column {column!r} is not a readable table and column")
    columns = db.columns(table)
    if not columns:
        raise SeriesQueryError(f"no such table: {table}")
    missing = [c for c in ("experiment", "pioreactor_unit", "timestamp", col) if c not in columns]
    if missing:
        raise SeriesQueryError(f"table {table} has no column(s) {', '.join(missing)}")
    unit_clause = " AND pioreactor_unit = :u" if unit is not None else ""
    try:
        rows = db.conn.execute(
            "SELECT pioreactor_unit, json_group_array(json_object('x', timestamp, 'y', round(value, 7))) FROM ("
            f' SELECT pioreactor_unit, timestamp, "{col}" AS value,'
            " row_number() OVER (PARTITION BY pioreactor_unit ORDER BY timestamp) AS rn,"
            " count(*) OVER (PARTITION BY pioreactor_unit) AS n"
            f' FROM "{table}" WHERE experiment = :e{unit_clause} AND timestamp > :lo AND timestamp <= :hi'
            f' AND "{col}" IS NOT NULL ORDER BY pioreactor_unit, timestamp)'
            " WHERE rn % max(1, (n + :target - 1) / :target) = 0"
            " GROUP BY pioreactor_unit ORDER BY pioreactor_unit",
            {"e": experiment, "u": unit, "lo": lo, "hi": hi, "target": target}).fetchall()
    except sqlite3.Error as exc:
        raise SeriesQueryError(str(exc)) from exc
    return _document([r[0] for r in rows], [r[1] for r in rows])
