"""Routes for jobs, async task results, descriptors, capabilities and clocks.

:func:`mount` adds the ``/unit_api`` routes on every unit and, on the leader,
their ``/api`` variants (fan-out to the workers) and the classic
``/api/contrib/…`` aliases. :data:`UNIT_ROUTES` and :func:`leader_routes` list
them (the contract test reads these against ``endpoints.tsv``).
"""

from __future__ import annotations

from typing import Any, Callable

from reactorkit.api import fanout
from reactorkit.api.context import AppContext
from reactorkit.api.unit import config as c
from reactorkit.api.unit import descriptors as d
from reactorkit.api.unit import jobs as j
from reactorkit.api.unit import leader as ld
from reactorkit.api.unit import system as s

Factory = Callable[[AppContext], Any]  # the app's context -> resource

UNIT_ROUTES: dict[str, Factory] = {
    "/unit_api/jobs": lambda ctx: j.AllJobs(),
    "/unit_api/jobs/running": lambda ctx: j.RunningJobs(ctx),
    "/unit_api/jobs/running/{job_name}": lambda ctx: j.RunningJob(ctx),
    "/unit_api/jobs/running/experiments/{experiment}": lambda ctx: j.RunningJobsForExperiment(ctx),
    "/unit_api/long_running_jobs/running": lambda ctx: j.LongRunningJobs(ctx),
    "/unit_api/jobs/run/job_name/{job_name}": lambda ctx: j.RunJob(ctx.registry, ctx.unit),
    "/unit_api/jobs/stop": lambda ctx: j.StopJobs(ctx.unit),
    "/unit_api/jobs/stop/all": lambda ctx: j.StopAllJobs(ctx.unit),
    "/unit_api/jobs/settings/job_name/{job_name}": lambda ctx: j.JobSettings(ctx.unit, ctx.registry),
    "/unit_api/jobs/settings/job_name/{job_name}/setting/{setting}": lambda ctx: j.JobSetting(),
    "/unit_api/task_results/{task_id}": lambda ctx: s.TaskResults(),
    "/unit_api/capabilities": lambda ctx: s.Capabilities(ctx.registry),
    "/unit_api/system/utc_clock": lambda ctx: s.UtcClock(ctx.unit),
    "/unit_api/jobs/descriptors": lambda ctx: d.JobDescriptors(ctx.registry),
    "/unit_api/automations/descriptors/{automation_type}": lambda ctx: d.AutomationDescriptors(ctx.registry),
    "/unit_api/settings/descriptors": lambda ctx: d.SettingsDescriptors(ctx.registry),
    "/unit_api/config/merged": lambda ctx: c.MergedConfig(),
    "/unit_api/config/specific": lambda ctx: c.SpecificConfig(ctx.unit),
    "/unit_api/config/shared": lambda ctx: c.SharedConfigCopy(),
}


def leader_routes() -> dict[str, Factory]:
    """``/api`` routes of this module (mounted on the leader only)."""
    routes: dict[str, Factory] = {
        "/api/jobs/descriptors": lambda ctx: d.JobDescriptors(ctx.registry),
        "/api/automations/descriptors/{automation_type}": lambda ctx: d.AutomationDescriptors(ctx.registry),
        "/api/charts/descriptors": lambda ctx: d.ChartDescriptors(ctx.registry),
        "/api/settings/descriptors": lambda ctx: d.SettingsDescriptors(ctx.registry),
        "/api/datasets/exportable": lambda ctx: d.DatasetDescriptors(ctx.registry),
        # classic aliases
        "/api/contrib/jobs": lambda ctx: d.JobDescriptors(ctx.registry),
        "/api/contrib/automations/{automation_type}": lambda ctx: d.AutomationDescriptors(ctx.registry),
        "/api/contrib/charts": lambda ctx: d.ChartDescriptors(ctx.registry),
        "/api/contrib/exportable_datasets": lambda ctx: d.DatasetDescriptors(ctx.registry),
        # worker descriptors: synchronous proxies
        "/api/workers/{pioreactor_unit}/jobs/descriptors":
            lambda ctx: ld.WorkerProxy(ctx, "/unit_api/jobs/descriptors"),
        "/api/workers/{pioreactor_unit}/settings/descriptors":
            lambda ctx: ld.WorkerProxy(ctx, "/unit_api/settings/descriptors"),
        "/api/workers/{pioreactor_unit}/automations/descriptors/{automation_type}":
            lambda ctx: ld.WorkerProxy(ctx, "/unit_api/automations/descriptors/{automation_type}"),
        # cluster-wide
        "/api/system/utc_clock": lambda ctx: ld.ClusterClock(ctx),
        "/api/workers/{pioreactor_unit}/blink": lambda ctx: ld.Blink(ctx),
        "/api/units/{pioreactor_unit}/versions/app": lambda ctx: ld.FanOutGet(ctx, "units", "/unit_api/versions/app"),
        "/api/units/{pioreactor_unit}/system/utc_clock":
            lambda ctx: ld.FanOutGet(ctx, "units", "/unit_api/system/utc_clock"),
        "/api/workers/{pioreactor_unit}/jobs/settings/job_name/{job_name}/experiments/{experiment}":
            lambda ctx: ld.FanOutGet(ctx, "workers", "/unit_api/jobs/settings/job_name/{job_name}",
                                     by_experiment=True),
        "/api/workers/{pioreactor_unit}/jobs/settings/job_name/{job_name}/setting/{setting}/experiments/{experiment}":
            lambda ctx: ld.FanOutGet(ctx, "workers", "/unit_api/jobs/settings/job_name/{job_name}/setting/{setting}",
                                     by_experiment=True),
    }
    for family in ("workers", "units"):
        base = f"/api/{family}/{{pioreactor_unit}}"
        routes.update({
            f"{base}/capabilities": lambda ctx, f=family: ld.FanOutGet(
                ctx, f, "/unit_api/capabilities", timeout=fanout.CAPABILITIES_TIMEOUT_S),
            f"{base}/jobs/running": lambda ctx, f=family: ld.FanOutGet(ctx, f, "/unit_api/jobs/running"),
            f"{base}/jobs/run/job_name/{{job_name}}/experiments/{{experiment}}":
                lambda ctx, f=family: ld.RunJobInExperiment(ctx, f),
            f"{base}/jobs/stop/experiments/{{experiment}}": lambda ctx, f=family: ld.StopJobsInExperiment(ctx, f),
            f"{base}/jobs/stop/job_name/{{job_name}}/experiments/{{experiment}}":
                lambda ctx, f=family: ld.StopJobOnUnit(ctx, f),
            f"{base}/jobs/update/job_name/{{job_name}}/experiments/{{experiment}}":
                lambda ctx, f=family: ld.UpdateJobOnUnit(ctx, f),
        })
    return routes


def mount(app: Any, context: AppContext) -> None:
    """Add this module's routes to ``app``, each built with the app's ``context`` (its registry, unit, leader
    database and fan-out client); the ``/api`` ones only when ``context.leader``."""
    for path, factory in UNIT_ROUTES.items():
        app.add_route(path, factory(context))
    if context.leader:
        for path, factory in leader_routes().items():
            app.add_route(path, factory(context))
