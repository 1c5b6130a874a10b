"""``/unit_api/jobs/…``: run, stop, list and tune this unit's jobs (§2.2, §2.3, §8).

Reads come from the unit's job registry (:mod:`reactorkit.core.job_registry`);
starting and stopping are queued on the unit's rq queue (``pio worker``) and
answered ``202 {unit, task_id, result_url_path, status}``; setting updates are
published on ``…/{job}/{setting}/set`` (QoS 1, not retained).
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from typing import Any

import falcon

from reactorkit.api.context import RouteResource
from reactorkit.api.errors import ApiError
from reactorkit.api.unit.common import (
    check_job_options,
    check_job_settings,
    check_run_body,
    enqueue_task,
    invalid,
    publish_messages,
    read_body,
    setting_payload,
    unavailable_queue,
)
from reactorkit.core.sqlite import open_sqlite

RUN_DEBOUNCE_MS = 1000  # §8: the same job requested again within 1 s → 429
TASKS = "reactorkit.core.task_functions"


def _registry() -> Any:
    from reactorkit.core.job_registry import JobRegistry

    return JobRegistry()


def as_row(row: dict[str, Any]) -> dict[str, Any]:
    """A registry row as the contract sends it: ``is_running`` and ``is_long_running_job`` as 0/1 integers
    (SQLite's, which the web UI compares with)."""
    return dict(row, is_running=int(bool(row["is_running"])), is_long_running_job=int(bool(row["is_long_running_job"])))


class _RunningRows(RouteResource):
    """A read of the running jobs, from the app's job registry (``context.job_registry``)."""

    def rows(self, **filters: Any) -> list[dict[str, Any]]:
        return [as_row(r.to_dict()) for r in self.context.job_registry.running(**filters)]


def running_job(job_name: str) -> tuple[Any, dict[str, Any]]:
    """The running ``job_name`` record and its settings.

    Raises:
        ApiError: 404 when no such job is running.
    """
    registry = _registry()
    try:
        rows = registry.running(job_name=job_name)
        if not rows:
            raise ApiError(falcon.HTTP_404, f"Job {job_name!r} is not running.",
                           cause=f"No running job named {job_name!r} in this unit's job registry.",
                           remediation="Start it first, or check GET /unit_api/jobs/running.")
        return rows[0], registry.settings(rows[0].job_id)
    finally:
        registry.close()


class AllJobs:
    """``GET /unit_api/jobs``: every row of the registry (running and ended)."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        registry = _registry()
        try:
            registry.clean_stale()
            path = registry.path
        finally:
            registry.close()
        with closing(open_sqlite(path, read_only=True, row_factory=sqlite3.Row)) as conn:
            rows = conn.execute("SELECT * FROM pio_job_metadata ORDER BY job_id").fetchall()
        resp.media = [as_row(dict(r)) for r in rows]


class RunningJobs(_RunningRows):
    """``GET /unit_api/jobs/running``: ``[{job_id, unit, experiment, job_name, job_source, started_at, …}]``."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = self.rows()


class RunningJob(_RunningRows):
    """``GET /unit_api/jobs/running/{job_name}``: the running rows with that name (maybe ``[]``)."""

    def on_get(self, req: falcon.Request, resp: falcon.Response, job_name: str) -> None:
        resp.media = self.rows(job_name=job_name)


class RunningJobsForExperiment(_RunningRows):
    """``GET /unit_api/jobs/running/experiments/{experiment}``."""

    def on_get(self, req: falcon.Request, resp: falcon.Response, experiment: str) -> None:
        resp.media = self.rows(experiment=experiment)


class LongRunningJobs(_RunningRows):
    """``GET /unit_api/long_running_jobs/running``: running jobs that survive "stop all"."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = [r for r in self.rows() if r["is_long_running_job"]]


class JobSettings:
    """``GET|PATCH /unit_api/jobs/settings/job_name/{job_name}``.

    GET → ``{"settings": {setting: value}}`` (404 when not running). PATCH
    ``{"settings": {setting: value}}`` publishes each ``…/{setting}/set``.
    """

    def __init__(self, unit: str, registry: Any = None) -> None:
        self.unit = unit
        self.registry = registry

    def on_get(self, req: falcon.Request, resp: falcon.Response, job_name: str) -> None:
        _, settings = running_job(job_name)
        resp.media = {"settings": settings}

    def on_patch(self, req: falcon.Request, resp: falcon.Response, job_name: str) -> None:
        from reactorkit.core.mqtt import job_topic

        settings = read_body(req)["settings"]  # at least one, named by topic levels: checked by the schema middleware
        if self.registry is not None:
            check_job_settings(self.registry.jobs.get(job_name), settings)
        record, _ = running_job(job_name)
        publish_messages(
            (job_topic(self.unit, record.experiment, job_name, str(key), "set"), setting_payload(value))
            for key, value in settings.items()
        )
        resp.media = {"status": "success"}


class JobSetting:
    """``GET /unit_api/jobs/settings/job_name/{job_name}/setting/{setting}`` → ``{setting: value}``."""

    def on_get(self, req: falcon.Request, resp: falcon.Response, job_name: str, setting: str) -> None:
        _, settings = running_job(job_name)
        if setting not in settings:
            raise ApiError(falcon.HTTP_404, f"Setting {setting!r} of {job_name!r} not found.",
                           cause=f"{job_name} has not published {setting!r}; it has: {', '.join(settings) or 'none'}.",
                           remediation="Use one of the settings listed by GET /unit_api/jobs/settings/job_name/"
                                       f"{job_name}.")
        resp.media = {setting: settings[setting]}


def _claim_run(unit: str, job_name: str) -> bool:
    """True unless ``job_name`` was requested on ``unit`` less than 1 s ago (shared via Redis)."""
    from redis.exceptions import RedisError

    from reactorkit.core.tasks import queue_name, redis_client

    try:  # keyed like the unit's queue, so clusters sharing one Redis do not debounce each other
        return bool(redis_client().set(f"{queue_name(unit)}:run:{job_name}", "1", nx=True, px=RUN_DEBOUNCE_MS))
    except RedisError as exc:
        raise unavailable_queue(exc) from exc


class RunJob:
    """``POST|PATCH /unit_api/jobs/run/job_name/{job_name}`` ``{options, env, args, config_overrides}``.

    Queues :func:`reactorkit.core.task_functions.start_job` → 202. Unknown job
    → 404; the same job again within 1 s → 429; bad body → 400 naming the field.
    """

    def __init__(self, registry: Any, unit: str) -> None:
        self.registry = registry
        self.unit = unit

    def on_post(self, req: falcon.Request, resp: falcon.Response, job_name: str) -> None:
        body = check_run_body(read_body(req))
        if job_name not in self.registry.jobs:
            raise ApiError(falcon.HTTP_404, f"Unknown job {job_name!r}.",
                           cause=f"No installed plugin registers a job named {job_name!r}.",
                           remediation="See GET /unit_api/jobs/descriptors or /unit_api/capabilities for the jobs "
                                       "of this unit.")
        check_job_options(self.registry.jobs[job_name], body["options"])
        if not _claim_run(self.unit, job_name):
            raise ApiError(falcon.HTTP_429, f"{job_name} was just requested.",
                           cause=f"{job_name} was requested on {self.unit} less than 1 s ago.",
                           remediation="Wait a second before asking again.")
        enqueue_task(resp, self.unit, f"{TASKS}.start_job", job_name, timeout_s=60, **body)

    on_patch = on_post


_STOP_FILTERS = ("job_name", "experiment", "job_source", "job_id")


class StopJobs:
    """``POST|PATCH /unit_api/jobs/stop`` ``{job_name?, experiment?, job_source?, job_id?}`` (≥ 1) → 202."""

    def __init__(self, unit: str) -> None:
        self.unit = unit

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = read_body(req)
        filters: dict[str, Any] = {}
        for name in ("job_name", "experiment", "job_source"):  # strings: checked by the schema middleware
            value = body.get(name)
            if value is not None:
                filters[name] = value
        job_id = body.get("job_id")
        if job_id is not None:
            try:
                filters["job_id"] = int(job_id)
            except ValueError:
                raise invalid(f"Field 'job_id' must be an integer job id, got {job_id!r}.") from None
        if not filters:
            raise invalid("Give at least one of job_name, experiment, job_source, job_id.",
                          'Example: {"job_name": "<job_name>"}; to stop everything use /unit_api/jobs/stop/all.')
        enqueue_task(resp, self.unit, f"{TASKS}.stop_jobs_task", timeout_s=120, **filters)

    on_patch = on_post


class StopAllJobs:
    """``POST|PATCH /unit_api/jobs/stop/all``: every job except long-running ones → 202."""

    def __init__(self, unit: str) -> None:
        self.unit = unit

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        enqueue_task(resp, self.unit, f"{TASKS}.stop_jobs_task", timeout_s=120, all_jobs=True)

    on_patch = on_post
