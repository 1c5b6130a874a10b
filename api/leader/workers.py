"""The cluster inventory (``/api/workers``, ``/api/units``) and experiment assignments.

Changing who belongs where has effects on the workers (domain facts §1.1, §4.4):
deactivating or deleting a worker stops its jobs; re-assigning a worker stops
the jobs of its old experiment and publishes its retained ``assignment``;
unassigning stops the jobs of that experiment. The database changes first and
the request never waits for the workers (see :mod:`reactorkit.api.leader.effects`).
"""

from __future__ import annotations

from typing import Any, Callable

import falcon

from reactorkit.api.errors import ApiError
from reactorkit.api.leader import effects
from reactorkit.api.leader.common import (
    Context,
    invalid,
    read_body,
    require_experiment,
    require_worker,
    success,
    worker_not_found,
)
from reactorkit.api.leader.models import find_model, model_display_name
from reactorkit.core.leader_db import now_iso


def _address(unit: str, config: Any) -> str | None:
    from reactorkit.core.cluster import unit_address

    try:
        return unit_address(unit, config)[0]
    except Exception:
        return None


def _addresses(units: list[str], config: Any) -> dict[str, str | None]:
    """``{unit: host}`` (:func:`_address` of each, the shared settings read once)."""
    from reactorkit.core.cluster import unit_addresses

    try:
        return {unit: address[0] for unit, address in unit_addresses(units, config).items()}
    except Exception:  # one bad entry: each unit on its own (the bad one's address is null)
        return {unit: _address(unit, config) for unit in units}


def reachability(ctx: Any) -> Any:
    """The app's :class:`~reactorkit.api.leader.reachability.Reachability` (created and started on first use)."""
    found = getattr(ctx, "reachability", None)
    if found is None:
        from reactorkit.api.leader.reachability import Reachability

        found = Reachability(lambda: ctx.config, lambda: [w["pioreactor_unit"] for w in ctx.db.workers()], ctx.unit)
        ctx.reachability = found
    return found


def worker_row(row: dict[str, Any], config: Any, ctx: Any = None,
               addresses: dict[str, str | None] | None = None) -> dict[str, Any]:
    """A worker of the inventory; with ``ctx``, also ``reachable`` (bool, null before the first probe) and
    ``last_seen_at`` (:mod:`reactorkit.api.leader.reachability`). ``addresses``: ``{unit: host}`` already
    looked up (:func:`_addresses`), else the unit's is looked up here."""
    unit = row["pioreactor_unit"]
    out = {
        "pioreactor_unit": unit,
        "added_at": row["added_at"],
        "is_active": int(row["is_active"]),
        "model_name": row["model_name"],
        "model_version": row["model_version"],
        "ipv4_address": addresses[unit] if addresses is not None and unit in addresses else _address(unit, config),
    }
    if ctx is not None:
        out.update(reachability(ctx).status(row["pioreactor_unit"]))
    return out


class _Kept:
    """What one route built for its last response, and what it was built from: ``state`` is one tuple
    ``(key, rows, leader_at)`` (``leader_at``: indexes of the leader's rows, whose last_seen_at is now on every
    request), replaced whole, so threads and greenlets share it without a lock."""

    state: tuple[tuple[Any, ...] | None, list[dict[str, Any]], tuple[int, ...]] = (None, [], ())


def _kept_rows(kept: _Kept, key: tuple[Any, ...] | None,
               build: Callable[[], tuple[list[dict[str, Any]], tuple[int, ...]]], reach: Any) -> list[dict[str, Any]]:
    """The response rows ``build()`` returns (``(rows, leader_at)``), built again only when ``key`` is not
    the key they were built with (elements compared by identity, then by value: the inventory rows another
    thread's connection read are equal, not the same list; the config and its ``generation``, the probes'
    ``generation``); ``key`` None: always built. The leader's rows get ``reachable: true, last_seen_at: now`` on
    every request; the other rows are shared between requests, threads and greenlets and never changed (Falcon
    only encodes them)."""
    kept_key, rows, leader_at = kept.state
    if key is None or kept_key != key:
        rows, leader_at = build()
        if key is None:
            return rows
        kept.state = (key, rows, leader_at)
    if not leader_at:
        return rows
    out = list(rows)
    now = reach.leader_status()
    for i in leader_at:
        out[i] = {**out[i], **now}
    return out


def _rows_key(rows: list[dict[str, Any]], config: Any, reach: Any) -> tuple[Any, ...] | None:
    """What a response of the inventory depends on: the kept inventory list (``rows``, as
    ``LeaderDB.workers(shared=True)`` returns it), the config and its ``generation``, the probes and their
    ``generation``; None for a config that does not count its changes (not cacheable)."""
    generation = getattr(config, "generation", None)
    return None if generation is None else (rows, config, generation, reach, reach.generation)


def _accepted(resp: falcon.Response, envelope: dict[str, Any] | None) -> None:
    resp.status = falcon.HTTP_202
    resp.media = envelope if envelope is not None else {"status": "accepted"}


class Workers:
    """``GET /api/workers``: the inventory; ``PUT /api/workers {pioreactor_unit, model_name?, model_version?}`` → 201."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._kept = _Kept()

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        # the response is built again only when the inventory (this thread's kept rows), the config or a probing
        # round changed; the leader's last_seen_at is now on every request
        rows = self.ctx.db.workers(shared=True)
        config = self.ctx.config
        reach = reachability(self.ctx)
        key = _rows_key(rows, config, reach)

        def build() -> tuple[list[dict[str, Any]], tuple[int, ...]]:
            units = [r["pioreactor_unit"] for r in rows]
            addresses = _addresses(units, config)
            statuses = reach.statuses(units)
            out = [{**worker_row(r, config, None, addresses), **status} for r, status in zip(rows, statuses)]
            return out, tuple(i for i, unit in enumerate(units) if unit == reach.leader)

        resp.media = _kept_rows(self._kept, key, build, reach)

    def on_put(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = read_body(req)  # checked by the schema middleware (the name's pattern too)
        unit = body["pioreactor_unit"]
        model_name, model_version = body.get("model_name"), body.get("model_version")
        if model_version is not None:
            model_version = str(model_version)
        if model_name is not None and model_version is not None and find_model(model_name, model_version) is None:
            raise invalid(f"Unknown model {model_name} {model_version}.", "See GET /api/models for the models.")
        self.ctx.db.add_worker(unit, model_name, model_version)
        success(resp, falcon.HTTP_201)


class Worker:
    """``GET /api/workers/{unit}`` (404 if unknown); ``DELETE`` removes it and stops its jobs → 202."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def on_get(self, req: falcon.Request, resp: falcon.Response, pioreactor_unit: str) -> None:
        resp.media = worker_row(require_worker(self.ctx, pioreactor_unit), self.ctx.config, self.ctx)

    def on_delete(self, req: falcon.Request, resp: falcon.Response, pioreactor_unit: str) -> None:
        require_worker(self.ctx, pioreactor_unit)
        with self.ctx.db.transaction():
            self.ctx.db.remove_worker(pioreactor_unit)
            self.ctx.db.execute("DELETE FROM config_files_histories WHERE filename IN (?, ?)",
                                (f"unit_config.ini::{pioreactor_unit}", f"config_{pioreactor_unit}.ini"))
        effects.stop_all_jobs([pioreactor_unit])
        effects.publish_assignment(pioreactor_unit, None, None, now_iso(), self.ctx.config)
        success(resp, falcon.HTTP_202)


class WorkerIsActive:
    """``PUT /api/workers/{unit}/is_active {is_active: 0|1}``; deactivating stops the worker's jobs."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def on_put(self, req: falcon.Request, resp: falcon.Response, pioreactor_unit: str) -> None:
        value = read_body(req)["is_active"]  # 0, 1, true or false: checked by the schema middleware
        require_worker(self.ctx, pioreactor_unit)
        self.ctx.db.set_worker_active(pioreactor_unit, bool(value))
        if not value:
            effects.stop_all_jobs([pioreactor_unit])
        success(resp)


class WorkerModel:
    """``GET /api/workers/{unit}/model`` → ``{pioreactor_unit, model_name, model_version, display_name}`` and the
    model's definition (capacity, max fill, diameter, heating limits, ``is_legacy``, ``is_contrib``: a model of
    ``GET /api/models``; the web UI draws the vessel from it); ``PUT {model_name, model_version}``."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def on_get(self, req: falcon.Request, resp: falcon.Response, pioreactor_unit: str) -> None:
        row = require_worker(self.ctx, pioreactor_unit)
        resp.media = {
            **(find_model(row["model_name"], row["model_version"]) or {}),
            "pioreactor_unit": pioreactor_unit,
            "model_name": row["model_name"],
            "model_version": row["model_version"],
            "display_name": model_display_name(row["model_name"], row["model_version"]),
        }

    def on_put(self, req: falcon.Request, resp: falcon.Response, pioreactor_unit: str) -> None:
        body = read_body(req)  # checked by the schema middleware
        name, version = body["model_name"], str(body["model_version"])
        if find_model(name, version) is None:
            raise invalid(f"Unknown model {name} {version}.", "See GET /api/models for the models.")
        require_worker(self.ctx, pioreactor_unit)
        self.ctx.db.set_worker_model(pioreactor_unit, name, version)
        success(resp)


class WorkerExperiment:
    """``GET /api/workers/{unit}/experiment`` → ``{pioreactor_unit, is_active, experiment, model_name, model_version}``;
    404 when the worker is unknown or unassigned."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def on_get(self, req: falcon.Request, resp: falcon.Response, pioreactor_unit: str) -> None:
        row = require_worker(self.ctx, pioreactor_unit)
        experiment = self.ctx.db.assignment_of(pioreactor_unit)
        if experiment is None:
            raise ApiError(falcon.HTTP_404, f"{pioreactor_unit} is not assigned to an experiment.",
                           cause=f"No assignment row for {pioreactor_unit}.",
                           remediation=f"Assign it with PUT /api/experiments/<experiment>/workers "
                                       f'{{"pioreactor_unit": "{pioreactor_unit}"}}.')
        resp.media = {"pioreactor_unit": pioreactor_unit, "is_active": int(row["is_active"]), "experiment": experiment,
                      "model_name": row["model_name"], "model_version": row["model_version"]}


class Assignments:
    """``GET /api/workers/assignments`` → ``[{pioreactor_unit, experiment | null, is_active}]``;
    ``DELETE`` unassigns every worker (their jobs in those experiments are stopped) → 202."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = [{"pioreactor_unit": r["pioreactor_unit"], "experiment": r["experiment"],
                       "is_active": int(r["is_active"])} for r in self.ctx.db.assignments()]

    def on_delete(self, req: falcon.Request, resp: falcon.Response) -> None:
        pairs = self.ctx.db.unassign_all()
        now = now_iso()
        envelope = None
        for experiment in sorted({e for _, e in pairs}):
            units = [u for u, e in pairs if e == experiment]
            envelope = effects.stop_experiment_jobs(units, experiment) or envelope
        for unit, _ in pairs:
            effects.publish_assignment(unit, None, None, now, self.ctx.config)
        _accepted(resp, envelope)


class ExperimentWorkers:
    """``GET /api/experiments/{experiment}/workers`` → ``[{pioreactor_unit, is_active, model_name, model_version, assigned_at}]``;
    ``PUT {pioreactor_unit}`` assigns (replacing any other assignment); ``DELETE`` unassigns all → 202."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def on_get(self, req: falcon.Request, resp: falcon.Response, experiment: str) -> None:
        require_experiment(self.ctx, experiment)
        resp.media = self.ctx.db.query(
            "SELECT w.pioreactor_unit, w.is_active, w.model_name, w.model_version, a.assigned_at"
            " FROM experiment_worker_assignments a JOIN workers w ON w.pioreactor_unit = a.pioreactor_unit"
            " WHERE a.experiment = ? ORDER BY w.pioreactor_unit", (experiment,))

    def on_put(self, req: falcon.Request, resp: falcon.Response, experiment: str) -> None:
        unit = read_body(req)["pioreactor_unit"]  # checked by the schema middleware
        require_experiment(self.ctx, experiment)
        if self.ctx.db.worker(unit) is None:
            raise worker_not_found(unit)
        previous = self.ctx.db.assign(unit, experiment)
        if previous != experiment:
            if previous is not None:
                effects.stop_experiment_jobs([unit], previous)
            assigned_at = self.ctx.db.query_one(
                "SELECT assigned_at FROM experiment_worker_assignments WHERE pioreactor_unit = ?", (unit,))
            now = now_iso()
            effects.publish_assignment(unit, experiment, assigned_at["assigned_at"] if assigned_at else now, now,
                                       self.ctx.config)
        success(resp)

    def on_delete(self, req: falcon.Request, resp: falcon.Response, experiment: str) -> None:
        require_experiment(self.ctx, experiment)
        units = self.ctx.db.unassign_experiment(experiment)
        now = now_iso()
        for unit in units:
            effects.publish_assignment(unit, None, None, now, self.ctx.config)
        _accepted(resp, effects.stop_experiment_jobs(units, experiment))


class ExperimentWorker:
    """``DELETE /api/experiments/{experiment}/workers/{unit}``: unassign one worker (its jobs there stop)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def on_delete(self, req: falcon.Request, resp: falcon.Response, experiment: str, pioreactor_unit: str) -> None:
        require_experiment(self.ctx, experiment)
        require_worker(self.ctx, pioreactor_unit)
        with self.ctx.db.transaction():
            if self.ctx.db.assignment_of(pioreactor_unit) != experiment:
                raise ApiError(falcon.HTTP_404, f"{pioreactor_unit} is not assigned to {experiment!r}.",
                               cause=f"{pioreactor_unit}'s assignment is "
                                     f"{self.ctx.db.assignment_of(pioreactor_unit) or 'none'}.",
                               remediation=f"See GET /api/experiments/{experiment}/workers.")
            self.ctx.db.unassign(pioreactor_unit)
        effects.stop_experiment_jobs([pioreactor_unit], experiment)
        effects.publish_assignment(pioreactor_unit, None, None, now_iso(), self.ctx.config)
        success(resp)


class HistoricalAssignments:
    """``GET /api/experiments/{experiment}/historical_worker_assignments``:
    ``[{pioreactor_unit, experiment, is_currently_assigned_to_experiment, first_assigned_at, last_unassigned_at}]``."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def on_get(self, req: falcon.Request, resp: falcon.Response, experiment: str) -> None:
        require_experiment(self.ctx, experiment)
        resp.media = self.ctx.db.query(
            "SELECT h.pioreactor_unit, h.experiment,"
            " EXISTS (SELECT 1 FROM experiment_worker_assignments a WHERE a.pioreactor_unit = h.pioreactor_unit"
            "         AND a.experiment = h.experiment) AS is_currently_assigned_to_experiment,"
            " min(h.assigned_at) AS first_assigned_at,"
            " CASE WHEN count(*) = count(h.unassigned_at) THEN max(h.unassigned_at) END AS last_unassigned_at"
            " FROM experiment_worker_assignments_history h WHERE h.experiment = ?"
            " GROUP BY h.pioreactor_unit ORDER BY h.pioreactor_unit", (experiment,))


class Units:
    """``GET /api/units``: the leader and every worker, ``[{pioreactor_unit, reachable, last_seen_at}]`` sorted
    by name."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._kept = _Kept()

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        # as Workers.on_get: built again only when the inventory, the config or a probing round changed
        db = self.ctx.db
        rows = db.workers(shared=True)
        reach = reachability(self.ctx)
        key = _rows_key(rows, db.config, reach)

        def build() -> tuple[list[dict[str, Any]], tuple[int, ...]]:
            units = sorted({db.leader_unit(), *(r["pioreactor_unit"] for r in rows)})  # as LeaderDB.units()
            out = [{"pioreactor_unit": u, **status} for u, status in zip(units, reach.statuses(units))]
            return out, tuple(i for i, unit in enumerate(units) if unit == reach.leader)

        resp.media = _kept_rows(self._kept, key, build, reach)


class DiscoverWorkers:
    """``GET /api/workers/discover``: units this leader can address (``[cluster.addresses]``) that are
    not in the inventory yet, ``[{pioreactor_unit}]``. (Off a Pi there is no mDNS browsing.)"""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        config = self.ctx.config
        known = {w["pioreactor_unit"] for w in self.ctx.db.workers()} | {self.ctx.db.leader_unit()}
        candidates = config.options("cluster.addresses") if config.has_section("cluster.addresses") else []
        resp.media = [{"pioreactor_unit": u} for u in sorted(set(candidates) - known)]


class SetupWorker:
    """``POST /api/workers/setup {name, model?, version?}``: check that the new worker answers
    ``/unit_api/health``, then add it to the inventory → ``{"msg": "Worker <name> added successfully."}``.

    Errors: 400 bad name/model; 502 when the worker cannot be reached or reports another name.
    """

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        import httpx

        from reactorkit.core.cluster import unit_url

        body = read_body(req)  # checked by the schema middleware (the name's pattern too)
        name, model, version = body["name"], body.get("model"), body.get("version")
        version = None if version is None else str(version).lstrip("v")
        if model is not None and version is not None and find_model(model, version) is None:
            raise invalid(f"Unknown model {model} {version}.", "See GET /api/models for the models.")
        url = unit_url(name, self.ctx.config)
        try:
            reply = httpx.get(f"{url}/unit_api/health", timeout=5.0)
            health = reply.json() if reply.status_code == 200 else None
        except (httpx.HTTPError, ValueError) as exc:
            raise ApiError(falcon.HTTP_502, f"Could not reach {name}.", cause=f"GET {url}/unit_api/health: {exc}",
                           remediation=f"Start the worker's API, and give its address in [cluster.addresses] {name}.")
        if not health or health.get("pioreactor_unit") not in (None, name):
            raise ApiError(falcon.HTTP_502, f"{url} is not {name}.",
                           cause=f"/unit_api/health answered {health!r}.",
                           remediation=f"Check [cluster.addresses] {name} and the worker's HOSTNAME.")
        self.ctx.db.add_worker(name, model, version)
        resp.media = {"msg": f"Worker {name} added successfully."}
