"""Operation descriptions of the core ``/unit_api`` routes (jobs, tasks, descriptors, clock, health, docs).

Shapes follow ``shared/spec/unit-api.md`` and domain facts §2.2, §2.4, §5, §8.
"""

from __future__ import annotations

from typing import Any

from reactorkit.api.openapi.schemas.common import (
    ANY,
    AUTOMATION_TYPE,
    BOOL,
    CODE_BODY,
    INT,
    JOB_ROW,
    NUM,
    OBJ,
    RUN_BODY,
    SETTINGS_BODY,
    STATUS,
    STR,
    TEXT,
    TIMESTAMP,
    Content,
    array,
    mapping,
    nullable,
    obj,
    op,
    ref,
    task,
)

SETTING_DESCRIPTOR = obj(
    ("key",), key=STR, type=STR, display=BOOL, description=nullable(STR), default=ANY, unit=nullable(STR),
    label=nullable(STR), editable=BOOL, min=nullable(NUM), max=nullable(NUM),
)
JOB_DESCRIPTOR = obj(
    ("job_name", "display_name"), job_name=STR, display_name=STR, display=BOOL, source=STR,
    description=nullable(STR), subtext=nullable(STR), is_testing=BOOL, published_settings=array(SETTING_DESCRIPTOR),
)
AUTOMATION_DESCRIPTOR = obj(
    ("automation_name", "display_name", "fields"), automation_name=STR, display_name=STR,
    description=nullable(STR), source=nullable(STR),
    fields=array(obj(("key",), key=STR, label=STR, type=STR, unit=nullable(STR), default=ANY, required=BOOL,
                     disabled=BOOL, options=nullable(array(STR)))),
)
SETTINGS_COLLECTION = obj(
    ("key", "published_settings"), key=STR, display_name=STR, display=BOOL, source=STR,
    description=nullable(STR), subtext=nullable(STR), published_settings=array(SETTING_DESCRIPTOR),
)
CAPABILITY = obj(
    ("job_name", "published_settings"), job_name=STR, help=nullable(STR), cli_example=STR,
    arguments=array(obj(("name",), name=STR, required=BOOL, multiple=BOOL, type=STR)),
    options=array(obj(("name",), name=STR, long_flag=STR, help=nullable(STR), required=BOOL, multiple=BOOL,
                      default=ANY, type=STR)),
    published_settings=mapping(obj(("datatype", "settable"), datatype=STR, settable=BOOL, unit=STR)),
)
LOOSE_JOB_ROW = {**JOB_ROW, "properties": {**JOB_ROW["properties"], "is_running": {"type": ["boolean", "integer"]},
                                           "is_long_running_job": {"type": ["boolean", "integer"]}}}

AUTOMATION_TYPE_NOTE = "automation_type is dosing, led or temperature (others: 400)."
STOP_BODY = obj(
    job_name=STR, experiment=STR, job_source=STR,
    job_id={"type": ["integer", "string"], "description": "An integer job id (a numeric string is accepted)."},
    _doc="At least one filter; jobs matching all of them stop.",
)


REACHABILITY = obj(("reachable",), reachable=BOOL, latency_ms=NUM, error=STR)

OPERATIONS: dict[tuple[str, str], dict[str, Any]] = {
    ("GET", "/unit_api/health"): op(
        "Liveness of this unit's API, and whether it reaches its broker, Redis and database "
        "(status 'degraded' when one is unreachable); on the leader, ingestion and what it lost.",
        ok=obj(("status", "pioreactor_unit"), status={"type": "string", "enum": ["ok", "degraded"]}, pioreactor_unit=STR,
               utc_time=TIMESTAMP, broker=REACHABILITY, redis=REACHABILITY, database=REACHABILITY,
               ingestion=obj(("running",), running=BOOL, lost=INT, gaps=INT, missing=INT,
                             _doc="Leader only: lost = readings units reported they could not keep; missing ="
                                  " numbered readings not arrived yet."))),
    ("GET", "/unit_api/versions/app"): op("The reactorkit version of this unit.", ok=obj(("version",), version=STR)),
    ("GET", "/unit_api/jobs"): op("Every job of the unit's job registry, running and ended.", ok=array(LOOSE_JOB_ROW)),
    ("GET", "/unit_api/jobs/running"): op("The running jobs.", ok=array(LOOSE_JOB_ROW)),
    ("GET", "/unit_api/jobs/running/{job_name}"): op("The running jobs with this name (maybe none).",
                                                     ok=array(LOOSE_JOB_ROW)),
    ("GET", "/unit_api/jobs/running/experiments/{experiment}"): op("The running jobs of an experiment.",
                                                                   ok=array(LOOSE_JOB_ROW)),
    ("GET", "/unit_api/long_running_jobs/running"): op("Running jobs that survive 'stop all'.",
                                                       ok=array(LOOSE_JOB_ROW)),
    ("GET", "/unit_api/jobs/settings/job_name/{job_name}"): op(
        "The published settings of a running job (404 when it is not running).",
        ok=obj(("settings",), settings=mapping(ANY))),
    ("PATCH", "/unit_api/jobs/settings/job_name/{job_name}"): op(
        "Change settings of a running job (published on …/{setting}/set).", body=SETTINGS_BODY, body_required=True,
        ok=STATUS),
    ("GET", "/unit_api/jobs/settings/job_name/{job_name}/setting/{setting}"): op(
        "One published setting of a running job, as {setting: value}.", ok=mapping(ANY)),
    ("POST", "/unit_api/jobs/run/job_name/{job_name}"): task(
        "Start a job on this unit (unknown job: 404; again within 1 s: 429).", body=RUN_BODY,
        result=obj(ok=BOOL)),
    ("PATCH", "/unit_api/jobs/run/job_name/{job_name}"): task(
        "Start a job on this unit (as POST).", body=RUN_BODY, result=obj(ok=BOOL)),
    ("POST", "/unit_api/jobs/stop"): task("Stop the jobs matching the filters.", body=STOP_BODY, body_required=True),
    ("PATCH", "/unit_api/jobs/stop"): task("Stop the jobs matching the filters (as POST).", body=STOP_BODY,
                                           body_required=True),
    ("POST", "/unit_api/jobs/stop/all"): task("Stop every job except long-running ones."),
    ("PATCH", "/unit_api/jobs/stop/all"): task("Stop every job except long-running ones (as POST)."),
    ("GET", "/unit_api/task_results/{task_id}"): op(
        "A task's state: 202 while pending or running, 200 once succeeded or failed.",
        ok=ref("TaskResult"), responses={202: ref("TaskResult")}),
    ("GET", "/unit_api/capabilities"): op("What `pio run` can start here: options, arguments, settings.",
                                          ok=array(CAPABILITY)),
    ("GET", "/unit_api/system/utc_clock"): op("This unit's clock.",
                                              ok=obj(("clock_time",), status=STR, clock_time=TIMESTAMP)),
    ("POST", "/unit_api/system/utc_clock"): task(
        "Set (leader) or re-sync (worker) the system clock; only on a Raspberry Pi.",
        body=obj(utc_clock_time={"type": "string", "description": "ISO-8601 with Z or an offset."})),
    ("PATCH", "/unit_api/system/utc_clock"): task(
        "Set (leader) or re-sync (worker) the system clock (as POST).",
        body=obj(utc_clock_time={"type": "string", "description": "ISO-8601 with Z or an offset."})),
    ("GET", "/unit_api/jobs/descriptors"): op("UI descriptors of the jobs of the installed plugins.",
                                              ok=array(JOB_DESCRIPTOR)),
    ("GET", "/unit_api/automations/descriptors/{automation_type}"): op(
        "UI descriptors of one automation family.", ok=array(AUTOMATION_DESCRIPTOR), description=AUTOMATION_TYPE_NOTE,
        path={"automation_type": AUTOMATION_TYPE}),
    ("GET", "/unit_api/settings/descriptors"): op("UI descriptors of the bioreactor, LED and PWM settings.",
                                                  ok=array(SETTINGS_COLLECTION)),
    # config files of this unit
    ("GET", "/unit_api/config/merged"): op("This unit's merged config, {section: {key: value}}.",
                                           ok=mapping(mapping(STR))),
    ("GET", "/unit_api/config/specific"): op("This unit's unit_config.ini (text).", ok=TEXT),
    ("PATCH", "/unit_api/config/specific"): op("Replace unit_config.ini (checked alone and after the shared file).",
                                               body=CODE_BODY, body_required=True, ok=STATUS),
    ("POST", "/unit_api/config/specific"): op("Replace unit_config.ini (as PATCH).", body=CODE_BODY,
                                              body_required=True, ok=STATUS),
    ("PUT", "/unit_api/config/shared"): op("Replace this unit's copy of the shared config.ini (the leader pushes it).",
                                           body=CODE_BODY, body_required=True, ok=STATUS),
    # documents of this package
    ("GET", "/unit_api/openapi.json"): op("This OpenAPI document (/unit_api routes).", ok=OBJ, tags=["docs"]),
    ("GET", "/unit_api/docs"): op("The API docs page (Swagger UI, served from the unit).",
                                  ok=Content("text/html", STR), tags=["docs"]),
}
