"""Experiments: CRUD, latest/active, assignment counts, tags, unit labels, historical media/organisms.

Rows are ``{experiment, created_at, description, delta_hours, worker_count, tags}``
(domain facts §4.4); ``delta_hours`` is the age in whole hours on the cluster
clock; ``worker_count`` the workers assigned now.
"""

from __future__ import annotations

from typing import Any

import falcon

from reactorkit.api.errors import ApiError
from reactorkit.api.leader.common import (
    Context,
    invalid,
    read_body,
    require_experiment,
    success,
)
from reactorkit.core.clock import get_clock, parse_iso
from reactorkit.core.leader_db import now_iso

FORBIDDEN_CHARACTERS = "#$%+/\\"
MAX_NAME_LENGTH = 200

_EXPERIMENT_SQL = """
SELECT e.experiment, e.created_at, e.description, e.media_used, e.organism_used,
       (SELECT count(*) FROM experiment_worker_assignments a WHERE a.experiment = e.experiment) AS worker_count,
       (SELECT json_group_array(tag) FROM (SELECT tag FROM experiment_tags t
            WHERE t.experiment = e.experiment ORDER BY t.created_at, t.rowid)) AS tags
FROM experiments e
"""


def delta_hours(created_at: str) -> float:
    """Whole hours since ``created_at`` on the cluster clock (as the contract shows: ``71.0``)."""
    try:
        return float(round((get_clock().now() - parse_iso(created_at)) / 3600.0))
    except (TypeError, ValueError):
        return 0.0


def experiment_row(row: dict[str, Any], *, with_media: bool = False) -> dict[str, Any]:
    """The contract's experiment object from a row of :data:`_EXPERIMENT_SQL`."""
    import json

    out = {
        "experiment": row["experiment"],
        "created_at": row["created_at"],
        "description": row["description"] or "",
        "delta_hours": delta_hours(row["created_at"]),
        "worker_count": int(row["worker_count"] or 0),
        "tags": json.loads(row["tags"]) if row.get("tags") else [],
    }
    if with_media:
        out["media_used"] = row.get("media_used")
        out["organism_used"] = row.get("organism_used")
    return out


def get_experiment(ctx: Context, experiment: str, *, with_media: bool = False) -> dict[str, Any] | None:
    row = ctx.db.query_one(_EXPERIMENT_SQL + " WHERE e.experiment = ?", (experiment,))
    return experiment_row(row, with_media=with_media) if row else None


def validate_name(name: Any) -> str:
    """An experiment name the contract accepts (§4.4).

    Raises:
        ApiError: 400 naming ``experiment`` and what is wrong.
    """
    if not isinstance(name, str):
        raise invalid("Field 'experiment' must be a string.")
    stripped = name.strip()
    if not stripped:
        raise invalid("Field 'experiment' must not be empty.")
    if len(stripped) >= MAX_NAME_LENGTH:
        raise invalid(f"Field 'experiment' must be shorter than {MAX_NAME_LENGTH} characters.")
    if stripped == "current" or stripped.startswith("_testing"):
        raise invalid(f"Field 'experiment' may not be {stripped!r}: 'current' and '_testing…' are reserved.")
    bad = sorted({c for c in stripped if c in FORBIDDEN_CHARACTERS})
    if bad:
        raise invalid(f"Field 'experiment' may not contain {' '.join(bad)}.",
                      f"Remove the characters {' '.join(FORBIDDEN_CHARACTERS)} from the name.")
    return stripped


def validate_tags(body: dict[str, Any]) -> list[str] | None:
    """The body's ``tags`` stripped and without repeats (None when absent); the schema middleware checked
    that they are strings."""
    tags = body.get("tags")
    if tags is None:
        return None
    out: list[str] = []
    for i, tag in enumerate(tags):
        if not tag.strip():
            raise invalid(f"Field 'tags[{i}]' must be a non-empty string.")
        if tag.strip() not in out:
            out.append(tag.strip())
    return out


def _set_tags(ctx: Context, experiment: str, tags: list[str]) -> None:
    now = now_iso()
    ctx.db.execute("DELETE FROM experiment_tags WHERE experiment = ?", (experiment,))
    for tag in tags:
        ctx.db.execute("INSERT INTO experiment_tags (experiment, tag, created_at) VALUES (?, ?, ?)",
                       (experiment, tag, now))


class Experiments:
    """``GET /api/experiments`` (newest first) and ``POST /api/experiments`` → 201 / 409."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        rows = self.ctx.db.query_unchanged(_EXPERIMENT_SQL + " ORDER BY e.created_at DESC, e.rowid DESC")
        resp.media = [experiment_row(r) for r in rows]

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = read_body(req)  # checked by the schema middleware (NEW_EXPERIMENT)
        name = validate_name(body["experiment"])
        description = body.get("description") or ""
        media = body.get("mediaUsed") or body.get("media_used")
        organism = body.get("organismUsed") or body.get("organism_used")
        tags = validate_tags(body) or []
        with self.ctx.db.transaction():
            if self.ctx.db.experiment_exists(name):
                raise ApiError(falcon.HTTP_409, f"Experiment {name!r} already exists.",
                               cause=f"An experiment named {name!r} was created before.",
                               remediation="Choose another name, or open the existing experiment.")
            self.ctx.db.execute(
                "INSERT INTO experiments (experiment, created_at, description, media_used, organism_used)"
                " VALUES (?, ?, ?, ?, ?)",
                (name, now_iso(), description, media or None, organism or None),
            )
            _set_tags(self.ctx, name, tags)
        resp.status = falcon.HTTP_201
        resp.media = get_experiment(self.ctx, name)


class Experiment:
    """``GET|PATCH|DELETE /api/experiments/{experiment}``."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def on_get(self, req: falcon.Request, resp: falcon.Response, experiment: str) -> None:
        row = get_experiment(self.ctx, experiment)
        if row is None:
            require_experiment(self.ctx, experiment)
        resp.media = row

    def on_patch(self, req: falcon.Request, resp: falcon.Response, experiment: str) -> None:
        """Body ``{description?, tags?}`` → 200 with the updated experiment."""
        body = read_body(req)  # checked by the schema middleware
        description = body.get("description")
        tags = validate_tags(body)
        with self.ctx.db.transaction():
            require_experiment(self.ctx, experiment)
            if description is not None:
                self.ctx.db.execute("UPDATE experiments SET description = ? WHERE experiment = ?",
                                    (description, experiment))
            if tags is not None:
                _set_tags(self.ctx, experiment, tags)
        resp.media = get_experiment(self.ctx, experiment)

    def on_delete(self, req: falcon.Request, resp: falcon.Response, experiment: str) -> None:
        """Stops the experiment's jobs on its workers, then deletes it (and its rows) in a task → 202."""
        require_experiment(self.ctx, experiment)
        from reactorkit.api.unit.common import enqueue_task

        enqueue_task(resp, self.ctx.unit, "reactorkit.api.leader.tasks.delete_experiment", experiment,
                     str(self.ctx.db.path), timeout_s=120)


class LatestExperiment:
    """``GET /api/experiments/latest``: the most recently created experiment, ``null`` (200) when there is none:
    what the Pioreactor web UI reads on every page (a non-object meaning "no experiment yet"), as the Pioreactor
    API answers it."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        row = self.ctx.db.query_one(_EXPERIMENT_SQL + " ORDER BY e.created_at DESC, e.rowid DESC LIMIT 1")
        if row is None:
            resp.content_type = falcon.MEDIA_JSON
            resp.data = b"null"
            return
        resp.media = experiment_row(row, with_media=True)


class ActiveExperiments:
    """``GET /api/experiments/active``: experiments with at least one active assigned worker."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        rows = self.ctx.db.query(
            _EXPERIMENT_SQL + " WHERE EXISTS (SELECT 1 FROM experiment_worker_assignments a"
            " JOIN workers w ON w.pioreactor_unit = a.pioreactor_unit"
            " WHERE a.experiment = e.experiment AND w.is_active = 1) ORDER BY e.created_at DESC"
        )
        resp.media = [experiment_row(r) for r in rows]


class AssignmentCount:
    """``GET /api/experiments/assignment_count``: ``[{experiment, worker_count}]`` for every experiment."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = self.ctx.db.query(
            "SELECT e.experiment, count(a.pioreactor_unit) AS worker_count FROM experiments e"
            " LEFT JOIN experiment_worker_assignments a ON a.experiment = e.experiment"
            " GROUP BY e.experiment ORDER BY e.created_at DESC"
        )


class Historical:
    """``GET /api/historical_media`` / ``historical_organisms``: ``[{key}]``, most recently used first."""

    def __init__(self, ctx: Context, column: str) -> None:
        assert column in ("media_used", "organism_used")
        self.ctx = ctx
        self.column = column

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = self.ctx.db.query(
            f"SELECT {self.column} AS key FROM experiments WHERE coalesce(trim({self.column}), '') != ''"
            f" GROUP BY {self.column} ORDER BY max(created_at) DESC, max(rowid) DESC"
        )


class UnitLabels:
    """``GET /api/experiments/{experiment}/unit_labels`` → ``{unit: label}``;
    ``PUT|PATCH`` ``{unit, label}`` → 201 (an empty label removes it; 409 when another unit has that label)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def on_get(self, req: falcon.Request, resp: falcon.Response, experiment: str) -> None:
        require_experiment(self.ctx, experiment)
        rows = self.ctx.db.query(
            "SELECT pioreactor_unit, label FROM pioreactor_unit_labels WHERE experiment = ? ORDER BY pioreactor_unit",
            (experiment,))
        resp.media = {r["pioreactor_unit"]: r["label"] for r in rows}

    def on_put(self, req: falcon.Request, resp: falcon.Response, experiment: str) -> None:
        body = read_body(req)  # checked by the schema middleware
        unit, label = body["unit"], body.get("label") or ""
        if not unit.strip():
            raise invalid("Field 'unit' must not be empty.")
        with self.ctx.db.transaction():
            require_experiment(self.ctx, experiment)
            if not label.strip():
                self.ctx.db.execute("DELETE FROM pioreactor_unit_labels WHERE experiment = ? AND pioreactor_unit = ?",
                                    (experiment, unit))
            else:
                taken = self.ctx.db.query_one(
                    "SELECT pioreactor_unit FROM pioreactor_unit_labels WHERE experiment = ? AND label = ?"
                    " AND pioreactor_unit != ?", (experiment, label.strip(), unit))
                if taken:
                    raise ApiError(falcon.HTTP_409, f"Label {label.strip()!r} is already used.",
                                   cause=f"{taken['pioreactor_unit']} has the label {label.strip()!r} in {experiment!r}.",
                                   remediation="Labels are unique within an experiment: choose another one.")
                self.ctx.db.execute(
                    "INSERT INTO pioreactor_unit_labels (experiment, pioreactor_unit, label, created_at)"
                    " VALUES (?, ?, ?, ?) ON CONFLICT (pioreactor_unit, experiment) DO UPDATE SET label = excluded.label",
                    (experiment, unit, label.strip(), now_iso()))
        success(resp, falcon.HTTP_201)

    on_patch = on_put

