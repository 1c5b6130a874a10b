"""Leader variants of the job, descriptor and system routes (``/api/…``), built on :mod:`reactorkit.api.fanout`.

* Async fan-outs (§8) answer ``202 {unit, task_id, result_url_path, status}``;
  the task's ``result`` is ``{unit: envelope}``: job runs, jobs/running,
  capabilities, versions, UTC clocks, job-settings reads, stop-by-experiment.
* Publish-only actions answer ``202 {"status": "accepted"}`` (single-job stop,
  setting updates) or ``{"status": "success"}`` (blink).
* Worker descriptors are synchronous single-worker proxies (``$broadcast`` → 400).

Targets: ``/api/workers/{u}`` names a worker, ``/api/units/{u}`` the leader or a
worker; an unknown one → 400 (§1.1); ``$broadcast`` → every active worker (every
unit for ``/api/units``). Job runs go to active workers assigned to the
experiment (every active worker for ``$experiment``); none → 404.
"""

from __future__ import annotations

from typing import Any

import falcon

from reactorkit.api import fanout
from reactorkit.api.context import AppContext, RouteResource
from reactorkit.api.errors import ApiError
from reactorkit.api.unit.common import (
    check_job_options,
    check_job_settings,
    check_run_body,
    publish_messages,
    read_body,
    setting_payload,
)


def resolve(unit: str, family: str, *, db: Any, experiment: str | None = None,
            active_only: bool = True) -> list[str]:
    """:func:`fanout.resolve_units` on ``db`` (the app's leader database) with its errors as API errors
    (400 unknown unit, 404 no target/experiment)."""
    try:
        return fanout.resolve_units(unit, db=db, family=family, experiment=experiment, active_only=active_only)
    except fanout.UnknownUnit as exc:
        raise ApiError(falcon.HTTP_400, f"Unknown unit {unit!r}.", cause=str(exc),
                       remediation=f"Use a unit listed by GET /api/{family}, or $broadcast.") from None
    except fanout.UnknownExperiment as exc:
        raise ApiError(falcon.HTTP_404, f"Experiment {experiment!r} not found.", cause=str(exc),
                       remediation="Create it with POST /api/experiments, or check GET /api/experiments.") from None
    except fanout.NoTargets as exc:
        raise ApiError(falcon.HTTP_404, "No unit to run on.", cause=str(exc),
                       remediation=f"Assign an active worker with PUT /api/experiments/{experiment}/workers.") from None


class LeaderRoute(RouteResource):
    """A leader route over ``family`` (``"workers"`` or ``"units"``) built with the app's context: targets come
    from the app's leader database, queued fan-outs go to the app's task queue (``context.fanout``)."""

    def __init__(self, context: AppContext, family: str = "workers") -> None:
        super().__init__(context)
        self.family = family

    def targets(self, unit: str, **kwargs: Any) -> list[str]:
        """:meth:`~reactorkit.api.fanout.FanOut.targets` in this route's family."""
        return self.context.fanout.targets(unit, self.family, **kwargs)

    def check_target(self, unit: str) -> None:
        """400 unless ``unit`` is ``$broadcast`` or one of the family's units."""
        if unit != fanout.BROADCAST:
            self.targets(unit)

    def queue(self, resp: falcon.Response, method: str, units: list[str], path: str, json: Any = None, *,
              status_body: dict[str, Any] | None = None, **kwargs: Any) -> None:
        """Queue the fan-out on the app's task queue → 202 with the task envelope (plus ``status_body``)."""
        envelope = self.context.fanout.enqueue(method, units, path, json, **kwargs)
        resp.status = falcon.HTTP_202
        resp.media = {**envelope, **(status_body or {})}


class FanOutGet(LeaderRoute):
    """A GET that fans out to ``/unit_api{suffix}`` of the targets → 202 task envelope.

    Args:
        context: The app's context.
        family: ``"workers"`` or ``"units"``.
        unit_path: Path on the unit; ``{name}`` fields are filled from the route's fields.
        timeout: First-request timeout (GET 5 s; capabilities 15 s).
        by_experiment: ``$broadcast`` means the workers assigned to ``{experiment}``.
    """

    def __init__(self, context: AppContext, family: str, unit_path: str, *, timeout: float | None = None,
                 by_experiment: bool = False):
        super().__init__(context, family)
        self.unit_path, self.timeout, self.by_experiment = unit_path, timeout, by_experiment

    def on_get(self, req: falcon.Request, resp: falcon.Response, pioreactor_unit: str, **fields: str) -> None:
        experiment = fields.get("experiment") if self.by_experiment and pioreactor_unit == fanout.BROADCAST else None
        units = self.targets(pioreactor_unit, experiment=experiment)
        self.queue(resp, "GET", units, self.unit_path.format(**fields), timeout=self.timeout)


def _job_env(unit: str, experiment: str, env: dict[str, Any], workers: dict[str, dict[str, Any]]) -> dict[str, Any]:
    out = {k: v for k, v in env.items()}
    out.update(EXPERIMENT=experiment, HOSTNAME=unit, ACTIVE="1")
    out.setdefault("JOB_SOURCE", "user")
    if experiment.startswith("_testing"):
        out["TESTING"] = "1"
    row = workers.get(unit) or {}
    if row.get("model_name"):
        out["MODEL_NAME"] = row["model_name"]
    if row.get("model_version"):
        out["MODEL_VERSION"] = row["model_version"]
    return out


class RunJobInExperiment(LeaderRoute):
    """``POST|PATCH /api/{family}/{u}/jobs/run/job_name/{job_name}/experiments/{experiment}``.

    Body as ``/unit_api/jobs/run`` (§8); each target gets ``env`` plus
    ``EXPERIMENT, HOSTNAME, ACTIVE, TESTING?, MODEL_NAME, MODEL_VERSION``. The options are checked
    against the bounds the app's registry knows (the workers check again).
    """

    def on_post(self, req: falcon.Request, resp: falcon.Response, pioreactor_unit: str, job_name: str,
                experiment: str) -> None:
        body = check_run_body(read_body(req))
        check_job_options(self.context.registry.jobs.get(job_name), body["options"], on_unit=False)
        units = self.targets(pioreactor_unit, experiment=experiment)
        workers = {w["pioreactor_unit"]: w for w in self.context.leader_db.workers()}
        per_unit = {u: {**body, "env": _job_env(u, experiment, body["env"], workers)} for u in units}
        self.queue(resp, "POST", units, f"/unit_api/jobs/run/job_name/{job_name}", json_per_unit=per_unit)

    on_patch = on_post


class StopJobsInExperiment(LeaderRoute):
    """``POST|PATCH /api/{family}/{u}/jobs/stop/experiments/{experiment}`` → 202 ``{"status": "success", …task}``.

    ``$broadcast`` stops the experiment's jobs on every worker assigned to it
    (every worker for ``$experiment``), active or not.
    """

    def on_post(self, req: falcon.Request, resp: falcon.Response, pioreactor_unit: str, experiment: str) -> None:
        if pioreactor_unit == fanout.BROADCAST:
            try:
                units = fanout.resolve_units(pioreactor_unit, db=self.context.leader_db, family=self.family,
                                             experiment=experiment, active_only=False)
            except fanout.NoTargets:
                units = []
            except (fanout.UnknownExperiment, fanout.UnknownUnit):
                units = self.targets(pioreactor_unit, experiment=experiment, active_only=False)
        else:
            units = self.targets(pioreactor_unit)
        self.queue(resp, "POST", units, "/unit_api/jobs/stop", {"experiment": experiment},
                   status_body={"status": "success"})

    on_patch = on_post


class StopJobOnUnit(LeaderRoute):
    """``POST|PATCH /api/{family}/{u}/jobs/stop/job_name/{job_name}/experiments/{experiment}``:
    publishes ``…/{job}/$state/set`` = ``disconnected`` (``u`` may be ``$broadcast``) → 202 ``{"status": "accepted"}``."""

    def on_post(self, req: falcon.Request, resp: falcon.Response, pioreactor_unit: str, job_name: str,
                experiment: str) -> None:
        from reactorkit.core.mqtt import job_topic

        self.check_target(pioreactor_unit)
        publish_messages([(job_topic(pioreactor_unit, experiment, job_name, "$state", "set"), "disconnected")])
        resp.status = falcon.HTTP_202
        resp.media = {"status": "accepted"}

    on_patch = on_post


class UpdateJobOnUnit(LeaderRoute):
    """``PATCH /api/{family}/{u}/jobs/update/job_name/{job_name}/experiments/{experiment}`` ``{settings}``:
    publishes each ``…/{job}/{setting}/set`` (QoS 1) → 202 ``{"status": "accepted"}``."""

    def on_patch(self, req: falcon.Request, resp: falcon.Response, pioreactor_unit: str, job_name: str,
                 experiment: str) -> None:
        from reactorkit.core.mqtt import job_topic

        settings = read_body(req)["settings"]  # at least one, named by topic levels: checked by the schema middleware
        check_job_settings(self.context.registry.jobs.get(job_name), settings)
        self.check_target(pioreactor_unit)
        publish_messages(
            (job_topic(pioreactor_unit, experiment, job_name, str(k), "set"), setting_payload(v))
            for k, v in settings.items()
        )
        resp.status = falcon.HTTP_202
        resp.media = {"status": "accepted"}


class Blink(LeaderRoute):
    """``POST /api/workers/{u}/blink``: asks the unit's monitor to flicker its LED → 202 ``{"status": "success"}``."""

    def on_post(self, req: falcon.Request, resp: falcon.Response, pioreactor_unit: str) -> None:
        from reactorkit.core.mqtt import job_topic

        units = self.targets(pioreactor_unit)
        publish_messages([(job_topic(u, "$experiment", "monitor", "flicker_led_response_okay"), "1") for u in units],
                         qos=0)
        resp.status = falcon.HTTP_202
        resp.media = {"status": "success"}


class ClusterClock(LeaderRoute):
    """``POST /api/system/utc_clock`` ``{utc_clock_time}``: every unit sets / re-syncs its clock → 202 task."""

    def __init__(self, context: AppContext) -> None:
        super().__init__(context, "units")

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        from reactorkit.api.unit.system import check_utc_time

        value = read_body(req)["utc_clock_time"]  # a string: checked by the schema middleware
        check_utc_time(value)  # and an ISO-8601 time
        units = self.targets(fanout.BROADCAST)
        self.queue(resp, "POST", units, "/unit_api/system/utc_clock", {"utc_clock_time": value})


class WorkerProxy(LeaderRoute):
    """A synchronous single-worker proxy of ``/unit_api{unit_path}`` (worker descriptors, §1.2).

    ``$broadcast`` → 400; the worker's own error status and message are passed
    on; an unreachable worker → 502.
    """

    def __init__(self, context: AppContext, unit_path: str) -> None:
        super().__init__(context, "workers")
        self.unit_path = unit_path

    def on_get(self, req: falcon.Request, resp: falcon.Response, pioreactor_unit: str, **fields: str) -> None:
        import httpx

        from reactorkit.core.auth.client import cluster_headers

        if pioreactor_unit == fanout.BROADCAST:
            raise ApiError(falcon.HTTP_400, "$broadcast is not allowed here.",
                           cause="This route reads one worker's descriptors.",
                           remediation="Name one worker, e.g. /api/workers/pio01/jobs/descriptors.")
        self.targets(pioreactor_unit)
        with httpx.Client(headers=cluster_headers()) as client:
            envelope = fanout.call_unit(client, "GET", pioreactor_unit, self.unit_path.format(**fields))
        if envelope["ok"]:
            resp.media = envelope["value"]
            return
        error, code = envelope["error"], envelope["status_code"]
        status = falcon.code_to_http_status(code) if code and code >= 400 else falcon.HTTP_502
        raise ApiError(status, error["message"], cause=error.get("cause"),
                       remediation=error.get("remediation") or f"Check that {pioreactor_unit} is online.")
