"""``/api/experiments/{experiment}/chart_preferences``: which charts the web UI shows, per experiment.

* ``GET`` → ``{"overview_chart_keys": [key…] | null, "pioreactor_chart_keys": [key…] | null}``;
  ``null`` means "no choice made": the UI then shows the charts switched on in
  ``[ui.overview.charts]``.
* ``PATCH {overview_chart_keys?, pioreactor_chart_keys?}`` (each a list of chart keys of
  ``GET /api/charts/descriptors``, or null to go back to the default) stores what is
  given and answers the stored preferences. At least one field; duplicates or unknown
  chart keys are a 400 naming them; an unknown experiment is a 404.

Stored in the leader database (``experiment_chart_preferences``, one row per experiment).
"""

from __future__ import annotations

import json
from typing import Any

import falcon

from reactorkit.api.leader.common import Context, invalid, read_body, require_experiment
from reactorkit.api.openapi.schemas.common import STR, array, nullable, obj, op

FIELDS = ("overview_chart_keys", "pioreactor_chart_keys")
TABLE_SQL = """CREATE TABLE IF NOT EXISTS experiment_chart_preferences (
    experiment TEXT PRIMARY KEY,
    overview_chart_keys TEXT,
    pioreactor_chart_keys TEXT
)"""

KEYS = nullable(array(STR))
PREFERENCES = obj(FIELDS, overview_chart_keys=KEYS, pioreactor_chart_keys=KEYS)


def load(ctx: Context, experiment: str) -> dict[str, list[str] | None]:
    """The stored preferences of ``experiment`` (both null when none were stored)."""
    ctx.db.execute(TABLE_SQL)
    row = ctx.db.query_one(f"SELECT {', '.join(FIELDS)} FROM experiment_chart_preferences WHERE experiment = ?",
                           (experiment,))
    return {name: (json.loads(row[name]) if row and row[name] is not None else None) for name in FIELDS}


def checked_keys(body: dict[str, Any], name: str, known: set[str]) -> list[str] | None:
    """``body[name]`` as a list of known, distinct chart keys (or None).

    Raises:
        ApiError: 400 naming the field and the offending keys.
    """
    value = body[name]
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(k, str) for k in value):
        raise invalid(f"Field '{name}' must be a list of chart keys (strings) or null.")
    if len(value) != len(set(value)):
        raise invalid(f"Field '{name}' names a chart key more than once.", "Name each chart key at most once.")
    unknown = sorted(set(value) - known)
    if unknown:
        raise invalid(f"Field '{name}' has unknown chart keys: {', '.join(unknown)}.",
                      "Choose chart keys from GET /api/charts/descriptors.")
    return value


class ChartPreferences:
    """``GET|PATCH /api/experiments/{experiment}/chart_preferences``."""

    openapi = {
        "GET": op("The experiment's chart choices of the web UI (null: the [ui.overview.charts] default).",
                  ok=PREFERENCES),
        "PATCH": op("Store the experiment's chart choices (given fields only); answers the stored choices.",
                    body=obj(overview_chart_keys=KEYS, pioreactor_chart_keys=KEYS,
                             _doc="At least one field; chart keys of GET /api/charts/descriptors."),
                    body_required=True, ok=PREFERENCES),
    }

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def on_get(self, req: falcon.Request, resp: falcon.Response, experiment: str) -> None:
        require_experiment(self.ctx, experiment)
        resp.media = load(self.ctx, experiment)

    def on_patch(self, req: falcon.Request, resp: falcon.Response, experiment: str) -> None:
        body = read_body(req)
        given = [name for name in FIELDS if name in body]
        if not given:
            raise invalid("Give overview_chart_keys or pioreactor_chart_keys.",
                          "Send {\"overview_chart_keys\": [...]} and/or {\"pioreactor_chart_keys\": [...]}.")
        require_experiment(self.ctx, experiment)
        known = set(self.ctx.registry.charts) if self.ctx.registry is not None else set()
        values = {name: checked_keys(body, name, known) for name in given}
        self.ctx.db.execute(TABLE_SQL)
        with self.ctx.db.transaction() as conn:
            for name, keys in values.items():
                conn.execute(
                    f"INSERT INTO experiment_chart_preferences (experiment, {name}) VALUES (?, ?)"
                    f" ON CONFLICT(experiment) DO UPDATE SET {name} = excluded.{name}",
                    (experiment, None if keys is None else json.dumps(keys)))
        resp.media = load(self.ctx, experiment)
