"""Logs: every read variant of domain facts §4.4, and publishing a log from the UI.

Reads are newest first, 100 per page (``?skip=N`` rows skipped), filtered by
``?min_level=`` (default ``INFO``; a level includes the ones above it:
``DEBUG < INFO < NOTICE < WARNING < ERROR < CRITICAL``). ``recent_logs`` returns
the 50 newest since ``max(now − 24 h, experiment creation)``. Queries for a unit
include rows logged for ``$broadcast``.

Rows: ``{timestamp, level, pioreactor_unit, message, task, source, experiment}``.
"""

from __future__ import annotations

import json
from typing import Any

import falcon

from reactorkit.api.errors import ApiError
from reactorkit.api.leader.common import (
    BROADCAST,
    UNIVERSAL_EXPERIMENT,
    Context,
    int_param,
    invalid,
    query_param,
    read_body,
    require_experiment,
    require_unit,
    require_worker,
)
from reactorkit.core.clock import get_clock, parse_iso, utc_iso_ms

LEVELS = ("DEBUG", "INFO", "NOTICE", "WARNING", "ERROR", "CRITICAL")
PUBLISHABLE_LEVELS = ("DEBUG", "INFO", "NOTICE", "WARNING", "ERROR")
PAGE_SIZE = 100
RECENT_COUNT = 50
RECENT_WINDOW_H = 24.0
ASSIGNMENT_GRACE_S = 5.0

_COLUMNS = "timestamp, level, pioreactor_unit, message, task, source, experiment"


def levels_from(req: falcon.Request) -> tuple[str, ...]:
    """The levels at or above ``?min_level=`` (default INFO).

    Raises:
        ApiError: 400 naming ``min_level`` when it is not a level.
    """
    raw = query_param(req, "min_level") or "INFO"
    level = raw.strip().upper()
    if level not in LEVELS:
        raise ApiError(falcon.HTTP_400, "Invalid query parameter 'min_level'.",
                       cause=f"Query parameter 'min_level' must be one of {', '.join(LEVELS)}, got {raw!r}.",
                       remediation="Send min_level=INFO (or DEBUG, NOTICE, WARNING, ERROR).")
    return LEVELS[LEVELS.index(level):]


def _select(ctx: Context, where: list[str], params: list[Any], levels: tuple[str, ...], *, limit: int,
            offset: int = 0) -> list[dict[str, Any]]:
    clauses = [*where, f"level IN ({', '.join('?' for _ in levels)})"]
    sql = (f"SELECT {_COLUMNS} FROM logs WHERE {' AND '.join(clauses)}"
           " ORDER BY timestamp DESC, rowid DESC LIMIT ? OFFSET ?")
    return ctx.db.query(sql, [*params, *levels, limit, offset])


def _since_recent(ctx: Context, experiment: str) -> str:
    since = get_clock().now() - RECENT_WINDOW_H * 3600
    row = ctx.db.query_one("SELECT created_at FROM experiments WHERE experiment = ?", (experiment,))
    if row:
        try:
            since = max(since, parse_iso(row["created_at"]))
        except ValueError:
            pass
    return utc_iso_ms(since)


def _unit_clause(unit: str) -> tuple[str, list[Any]]:
    if unit == BROADCAST:
        return "1", []
    return "pioreactor_unit IN (?, ?)", [unit, BROADCAST]


def _check_experiment(ctx: Context, experiment: str) -> None:
    if experiment != UNIVERSAL_EXPERIMENT:
        require_experiment(ctx, experiment)


class AllLogs:
    """``GET /api/logs``: every experiment and unit."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = _select(self.ctx, [], [], levels_from(req), limit=PAGE_SIZE,
                             offset=int_param(req, "skip", 0, minimum=0))


class ExperimentLogs:
    """``GET /api/experiments/{experiment}/logs``: all units of one experiment."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def on_get(self, req: falcon.Request, resp: falcon.Response, experiment: str) -> None:
        _check_experiment(self.ctx, experiment)
        resp.media = _select(self.ctx, ["experiment = ?"], [experiment], levels_from(req), limit=PAGE_SIZE,
                             offset=int_param(req, "skip", 0, minimum=0))


class ExperimentRecentLogs:
    """``GET /api/experiments/{experiment}/recent_logs``: the 50 newest of the last 24 h."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def on_get(self, req: falcon.Request, resp: falcon.Response, experiment: str) -> None:
        _check_experiment(self.ctx, experiment)
        resp.media = _select(self.ctx, ["experiment = ?", "timestamp >= ?"],
                             [experiment, _since_recent(self.ctx, experiment)], levels_from(req), limit=RECENT_COUNT)


class UnitLogs:
    """``GET /api/units/{unit}/logs``: one unit (or ``$broadcast``: all) across experiments."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def on_get(self, req: falcon.Request, resp: falcon.Response, pioreactor_unit: str) -> None:
        require_unit(self.ctx, pioreactor_unit)
        clause, params = _unit_clause(pioreactor_unit)
        resp.media = _select(self.ctx, [clause], params, levels_from(req), limit=PAGE_SIZE,
                             offset=int_param(req, "skip", 0, minimum=0))


class UnitSystemLogs:
    """``GET /api/units/{unit}/system_logs``: one unit's logs outside experiments (``$experiment``)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def on_get(self, req: falcon.Request, resp: falcon.Response, pioreactor_unit: str) -> None:
        require_unit(self.ctx, pioreactor_unit)
        clause, params = _unit_clause(pioreactor_unit)
        resp.media = _select(self.ctx, [clause, "experiment = ?"], [*params, UNIVERSAL_EXPERIMENT], levels_from(req),
                             limit=PAGE_SIZE, offset=int_param(req, "skip", 0, minimum=0))


def _assignment_windows(ctx: Context, unit: str, experiment: str) -> tuple[str, list[Any]]:
    """SQL restricting ``timestamp`` to the unit's assignment periods in the experiment (+5 s grace)."""
    rows = ctx.db.query(
        "SELECT assigned_at, unassigned_at FROM experiment_worker_assignments_history"
        " WHERE pioreactor_unit = ? AND experiment = ? ORDER BY assigned_at", (unit, experiment))
    if not rows:
        return "0", []
    parts, params = [], []
    for r in rows:
        if r["unassigned_at"] is None:
            parts.append("timestamp >= ?")
            params.append(r["assigned_at"])
        else:
            parts.append("(timestamp >= ? AND timestamp <= ?)")
            params.extend([r["assigned_at"], utc_iso_ms(parse_iso(r["unassigned_at"]) + ASSIGNMENT_GRACE_S)])
    return "(" + " OR ".join(parts) + ")", params


class WorkerExperimentLogs:
    """``GET /api/workers/{unit}/experiments/{experiment}/logs``: a worker's logs while it was assigned."""

    def __init__(self, ctx: Context, recent: bool = False) -> None:
        self.ctx = ctx
        self.recent = recent

    def on_get(self, req: falcon.Request, resp: falcon.Response, pioreactor_unit: str, experiment: str) -> None:
        levels = levels_from(req)
        _check_experiment(self.ctx, experiment)
        # the leader, or a unit not in the inventory, has no assignment: its own logs (none for a stranger: []),
        # as the web UI reads them for the leader's page
        is_worker = pioreactor_unit != BROADCAST and pioreactor_unit in {
            w["pioreactor_unit"] for w in self.ctx.db.workers()}
        unit_clause, unit_params = _unit_clause(pioreactor_unit)
        where, params = ["experiment = ?", unit_clause], [experiment, *unit_params]
        if is_worker and experiment != UNIVERSAL_EXPERIMENT:
            window, window_params = _assignment_windows(self.ctx, pioreactor_unit, experiment)
            where.append(window)
            params.extend(window_params)
        if self.recent:
            where.append("timestamp >= ?")
            params.append(_since_recent(self.ctx, experiment))
            resp.media = _select(self.ctx, where, params, levels, limit=RECENT_COUNT)
        else:
            resp.media = _select(self.ctx, where, params, levels, limit=PAGE_SIZE,
                                 offset=int_param(req, "skip", 0, minimum=0))


class PublishLog:
    """``POST /api/{workers|units}/{unit}/experiments/{experiment}/logs``
    ``{message, level?, source?, timestamp?, task?, source_?}`` → MQTT → 202 ``{"status": "accepted"}``.

    Published (QoS 2, not retained) on ``…/{unit}/{experiment}/logs/{source_}/{level}``
    (``source_`` default ``ui``) with ``{message, level, task, timestamp, source}``;
    ``$broadcast`` means the workers assigned to the experiment (all active workers for
    ``$experiment``; every unit for ``/api/units``). The leader's ingestion job
    stores it.
    """

    def __init__(self, ctx: Context, family: str) -> None:
        self.ctx = ctx
        self.family = family

    def _targets(self, unit: str, experiment: str) -> list[str]:
        db = self.ctx.db
        if unit != BROADCAST:
            if self.family == "workers":
                require_worker(self.ctx, unit)
            else:
                require_unit(self.ctx, unit)
            return [unit]
        if experiment == UNIVERSAL_EXPERIMENT:
            return db.units() if self.family == "units" else [w["pioreactor_unit"] for w in db.workers(active_only=True)]
        return db.assigned_workers(experiment)

    def on_post(self, req: falcon.Request, resp: falcon.Response, pioreactor_unit: str, experiment: str) -> None:
        from reactorkit.api.unit.common import publish_messages
        from reactorkit.core.mqtt import root_topic

        body = read_body(req)  # its fields' types checked by the schema middleware (LOG_BODY)
        message = body["message"]
        level = (body.get("level") or "INFO").strip().upper()
        if level not in PUBLISHABLE_LEVELS:
            raise invalid(f"Field 'level' must be one of {', '.join(PUBLISHABLE_LEVELS)}, got {body.get('level')!r}.")
        source_topic = body.get("source_") or "ui"
        if not source_topic or "/" in source_topic or "+" in source_topic or "#" in source_topic:
            raise invalid("Field 'source_' must be a single topic segment, e.g. \"ui\".")
        source = body.get("source") or source_topic
        task = body.get("task") or "ui"
        timestamp = body.get("timestamp")
        if timestamp is None:
            timestamp = get_clock().utc_iso()
        else:
            try:
                parse_iso(timestamp)
            except ValueError:
                raise invalid(f"Field 'timestamp' must be an ISO-8601 time, got {timestamp!r}.") from None
        _check_experiment(self.ctx, experiment)
        payload = json.dumps({"message": message, "level": level, "task": task, "timestamp": timestamp,
                              "source": source})
        root = root_topic(self.ctx.config)
        units = self._targets(pioreactor_unit, experiment)
        publish_messages([(f"{root}/{u}/{experiment}/logs/{source_topic}/{level.lower()}", payload) for u in units],
                         qos=2, stored=True)
        resp.status = falcon.HTTP_202
        resp.media = {"status": "accepted"}
