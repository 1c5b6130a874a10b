"""Routes for jobs, async task results, descriptors, capabilities and clocks.

:func:`mount` adds the ``/unit_api`` routes on every unit and, on the leader,
their ``/api`` variants (fan-out to the workers) and the classic
``/api/contrib/…`` aliases. :data:`UNIT_ROUTES` and :func:`leader_routes` list
them (the contract test reads these against ``endpoints.tsv``).
"""

from __future__ import annotations

from typing import Any, Callable

from reactorkit.api import fanout
from reactorkit.api.unit import config as c
from reactorkit.api.unit import descriptors as d
from reactorkit.api.unit import jobs as j
from reactorkit.api.unit import leader as ld
from reactorkit.api.unit import system as s

Factory = Callable[[Any, str], Any]  # (registry, unit) -> resource

UNIT_ROUTES: dict[str, Factory] = {
    "/unit_api/jobs": lambda reg, unit: j.AllJobs(),
    "/unit_api/jobs/running": lambda reg, unit: j.RunningJobs(),
    "/unit_api/jobs/running/{job_name}": lambda reg, unit: j.RunningJob(),
    "/unit_api/jobs/running/experiments/{experiment}": lambda reg, unit: j.RunningJobsForExperiment(),
    "/unit_api/long_running_jobs/running": lambda reg, unit: j.LongRunningJobs(),
    "/unit_api/jobs/run/job_name/{job_name}": lambda reg, unit: j.RunJob(reg, unit),
    "/unit_api/jobs/stop": lambda reg, unit: j.StopJobs(unit),
    "/unit_api/jobs/stop/all": lambda reg, unit: j.StopAllJobs(unit),
    "/unit_api/jobs/settings/job_name/{job_name}": lambda reg, unit: j.JobSettings(unit, reg),
    "/unit_api/jobs/settings/job_name/{job_name}/setting/{setting}": lambda reg, unit: j.JobSetting(),
    "/unit_api/task_results/{task_id}": lambda reg, unit: s.TaskResults(),
    "/unit_api/capabilities": lambda reg, unit: s.Capabilities(reg),
    "/unit_api/system/utc_clock": lambda reg, unit: s.UtcClock(unit),
    "/unit_api/jobs/descriptors": lambda reg, unit: d.JobDescriptors(reg),
    "/unit_api/automations/descriptors/{automation_type}": lambda reg, unit: d.AutomationDescriptors(reg),
    "/unit_api/settings/descriptors": lambda reg, unit: d.SettingsDescriptors(reg),
    "/unit_api/config/merged": lambda reg, unit: c.MergedConfig(),
    "/unit_api/config/specific": lambda reg, unit: c.SpecificConfig(unit),
    "/unit_api/config/shared": lambda reg, unit: c.SharedConfigCopy(),
}


def leader_routes() -> dict[str, Factory]:
    """``/api`` routes of this module (mounted on the leader only)."""
    routes: dict[str, Factory] = {
        "/api/jobs/descriptors": lambda reg, unit: d.JobDescriptors(reg),
        "/api/automations/descriptors/{automation_type}": lambda reg, unit: d.AutomationDescriptors(reg),
        "/api/charts/descriptors": lambda reg, unit: d.ChartDescriptors(reg),
        "/api/settings/descriptors": lambda reg, unit: d.SettingsDescriptors(reg),
        "/api/datasets/exportable": lambda reg, unit: d.DatasetDescriptors(reg),
        # classic aliases
        "/api/contrib/jobs": lambda reg, unit: d.JobDescriptors(reg),
        "/api/contrib/automations/{automation_type}": lambda reg, unit: d.AutomationDescriptors(reg),
        "/api/contrib/charts": lambda reg, unit: d.ChartDescriptors(reg),
        "/api/contrib/exportable_datasets": lambda reg, unit: d.DatasetDescriptors(reg),
        # worker descriptors: synchronous proxies
        "/api/workers/{pioreactor_unit}/jobs/descriptors": lambda reg, unit: ld.WorkerProxy("/unit_api/jobs/descriptors"),
        "/api/workers/{pioreactor_unit}/settings/descriptors":
            lambda reg, unit: ld.WorkerProxy("/unit_api/settings/descriptors"),
        "/api/workers/{pioreactor_unit}/automations/descriptors/{automation_type}":
            lambda reg, unit: ld.WorkerProxy("/unit_api/automations/descriptors/{automation_type}"),
        # cluster-wide
        "/api/system/utc_clock": lambda reg, unit: ld.ClusterClock(),
        "/api/workers/{pioreactor_unit}/blink": lambda reg, unit: ld.Blink(),
        "/api/units/{pioreactor_unit}/versions/app": lambda reg, unit: ld.FanOutGet("units", "/unit_api/versions/app"),
        "/api/units/{pioreactor_unit}/system/utc_clock":
            lambda reg, unit: ld.FanOutGet("units", "/unit_api/system/utc_clock"),
        "/api/workers/{pioreactor_unit}/jobs/settings/job_name/{job_name}/experiments/{experiment}":
            lambda reg, unit: ld.FanOutGet("workers", "/unit_api/jobs/settings/job_name/{job_name}",
                                           by_experiment=True),
        "/api/workers/{pioreactor_unit}/jobs/settings/job_name/{job_name}/setting/{setting}/experiments/{experiment}":
            lambda reg, unit: ld.FanOutGet("workers", "/unit_api/jobs/settings/job_name/{job_name}/setting/{setting}",
                                           by_experiment=True),
    }
    for family in ("workers", "units"):
        base = f"/api/{family}/{{pioreactor_unit}}"
        routes.update({
            f"{base}/capabilities": lambda reg, unit, f=family: ld.FanOutGet(
                f, "/unit_api/capabilities", timeout=fanout.CAPABILITIES_TIMEOUT_S),
            f"{base}/jobs/running": lambda reg, unit, f=family: ld.FanOutGet(f, "/unit_api/jobs/running"),
            f"{base}/jobs/run/job_name/{{job_name}}/experiments/{{experiment}}":
                lambda reg, unit, f=family: ld.RunJobInExperiment(f, reg),
            f"{base}/jobs/stop/experiments/{{experiment}}": lambda reg, unit, f=family: ld.StopJobsInExperiment(f),
            f"{base}/jobs/stop/job_name/{{job_name}}/experiments/{{experiment}}":
                lambda reg, unit, f=family: ld.StopJobOnUnit(f),
            f"{base}/jobs/update/job_name/{{job_name}}/experiments/{{experiment}}":
                lambda reg, unit, f=family: ld.UpdateJobOnUnit(f, reg),
        })
    return routes


def mount(app: Any, registry: Any, *, unit: str, leader: bool) -> None:
    """Add this module's routes to ``app`` (``/api`` ones only when ``leader``)."""
    for path, factory in UNIT_ROUTES.items():
        app.add_route(path, factory(registry, unit))
    if leader:
        for path, factory in leader_routes().items():
            app.add_route(path, factory(registry, unit))
