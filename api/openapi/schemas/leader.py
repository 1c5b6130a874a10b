"""Operation descriptions of the leader's core ``/api`` routes: descriptors, fan-outs, experiments, workers,
logs, time series, config (``shared/spec/leader-api.md``, domain facts §1, §4, §8, §10)."""

from __future__ import annotations

from typing import Any

from reactorkit.api.openapi.schemas.common import (
    ANY,
    AUTOMATION_TYPE,
    BOOL,
    CODE_BODY,
    CONFIG_HISTORY,
    EXPERIMENT,
    INT,
    LOG_QUERY,
    LOG_ROW,
    NUM,
    OBJ,
    RUN_BODY,
    SERIES,
    SETTINGS_BODY,
    STATUS,
    STR,
    TEXT,
    TOPIC_LEVEL,
    WINDOW_QUERY,
    Content,
    array,
    fan_out,
    mapping,
    nullable,
    obj,
    op,
    ref,
    task,
)
from reactorkit.api.openapi.schemas.unit import (
    AUTOMATION_DESCRIPTOR,
    CAPABILITY,
    JOB_DESCRIPTOR,
    SETTINGS_COLLECTION,
)

CHART_DESCRIPTOR = obj(("chart_key", "data_source", "title"), chart_key=STR, data_source=STR, title=STR, source=STR)
DATASET_DESCRIPTOR = obj(("dataset_name", "display_name"), dataset_name=STR, display_name=STR, source=STR)
MODEL = obj(("model_name", "model_version", "display_name"), model_name=STR, model_version=STR, display_name=STR,
            reactor_capacity_ml=NUM, reactor_max_fill_volume_ml=NUM, reactor_diameter_mm=NUM, is_legacy=BOOL,
            is_contrib=BOOL)
WORKER = obj(("pioreactor_unit", "is_active"), pioreactor_unit=STR, added_at=STR, is_active=INT,
             model_name=nullable(STR), model_version=nullable(STR), ipv4_address=nullable(STR),
             reachable=nullable(BOOL), last_seen_at=nullable(STR))
ASSIGNMENT = obj(("pioreactor_unit",), pioreactor_unit=STR, experiment=nullable(STR), is_active=INT)
UNIT_ROW = obj(("pioreactor_unit",), pioreactor_unit=STR, reachable=nullable(BOOL), last_seen_at=nullable(STR))
CONFIGS = obj(("configs",), configs=mapping(mapping(mapping(STR))), errors=mapping(ANY))

NEW_EXPERIMENT = obj(
    ("experiment",), experiment=STR, description=STR, mediaUsed=nullable(STR), organismUsed=nullable(STR),
    media_used=nullable(STR), organism_used=nullable(STR), tags=array(STR),
)
LOG_BODY = obj(
    ("message",), message=STR, level={"type": "string", "description": "DEBUG, INFO, NOTICE, WARNING or ERROR."},
    source=STR, source_={"type": "string", "description": "Topic segment (default ui)."}, task=STR,
    timestamp={"type": "string", "description": "ISO-8601 time (default: now)."},
)

TOPIC_FIELDS = {"job_name": TOPIC_LEVEL, "experiment": TOPIC_LEVEL}  # published in MQTT topics
EXP = "/api/experiments/{experiment}"
WORKER_P = "/api/workers/{pioreactor_unit}"
UNIT_P = "/api/units/{pioreactor_unit}"


def _fan_out_routes() -> dict[tuple[str, str], dict[str, Any]]:
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for family in ("workers", "units"):
        base = f"/api/{family}/{{pioreactor_unit}}"
        who = "workers" if family == "workers" else "units (leader included)"
        out.update({
            ("GET", f"{base}/capabilities"): fan_out(f"Capabilities of the {who} ($broadcast: all).",
                                                     array(CAPABILITY)),
            ("GET", f"{base}/jobs/running"): fan_out(f"Running jobs of the {who}."),
            ("POST", f"{base}/jobs/run/job_name/{{job_name}}/experiments/{{experiment}}"): fan_out(
                "Start a job on the active workers assigned to the experiment ($broadcast) or on one unit.",
                body=RUN_BODY),
            ("PATCH", f"{base}/jobs/run/job_name/{{job_name}}/experiments/{{experiment}}"): fan_out(
                "Start a job (as POST).", body=RUN_BODY),
            ("POST", f"{base}/jobs/stop/experiments/{{experiment}}"): fan_out(
                "Stop the experiment's jobs on the targets.", extra={"status": STR}),
            ("PATCH", f"{base}/jobs/stop/experiments/{{experiment}}"): fan_out(
                "Stop the experiment's jobs (as POST).", extra={"status": STR}),
            ("POST", f"{base}/jobs/stop/job_name/{{job_name}}/experiments/{{experiment}}"): op(
                "Stop one job: publishes $state/set = disconnected.", ok=STATUS, status=202, path=TOPIC_FIELDS),
            ("PATCH", f"{base}/jobs/stop/job_name/{{job_name}}/experiments/{{experiment}}"): op(
                "Stop one job (as POST).", ok=STATUS, status=202, path=TOPIC_FIELDS),
            ("PATCH", f"{base}/jobs/update/job_name/{{job_name}}/experiments/{{experiment}}"): op(
                "Change settings of a running job (published on …/{setting}/set).", body=SETTINGS_BODY,
                body_required=True, ok=STATUS, status=202, path=TOPIC_FIELDS),
        })
    out.update({
        ("GET", f"{UNIT_P}/versions/app"): fan_out("App versions of the units.", obj(version=STR)),
        ("GET", f"{UNIT_P}/system/utc_clock"): fan_out("Clocks of the units."),
        ("GET", f"{WORKER_P}/jobs/settings/job_name/{{job_name}}/experiments/{{experiment}}"): fan_out(
            "Settings of a running job on the workers ($broadcast: those assigned to the experiment)."),
        ("GET", f"{WORKER_P}/jobs/settings/job_name/{{job_name}}/setting/{{setting}}/experiments/{{experiment}}"):
            fan_out("One setting of a running job on the workers."),
        ("GET", f"{WORKER_P}/jobs/descriptors"): op("One worker's job descriptors (synchronous proxy).",
                                                    ok=array(JOB_DESCRIPTOR), proxy=True),
        ("GET", f"{WORKER_P}/settings/descriptors"): op("One worker's settings descriptors (synchronous proxy).",
                                                        ok=array(SETTINGS_COLLECTION), proxy=True),
        ("GET", f"{WORKER_P}/automations/descriptors/{{automation_type}}"): op(
            "One worker's automation descriptors (synchronous proxy).", ok=array(AUTOMATION_DESCRIPTOR), proxy=True,
            path={"automation_type": AUTOMATION_TYPE}),
        ("POST", f"{WORKER_P}/blink"): op("Flicker the workers' LED.", ok=STATUS, status=202),
        ("POST", "/api/system/utc_clock"): fan_out(
            "Every unit sets (leader) or re-syncs (workers) its clock.",
            body=obj(("utc_clock_time",), utc_clock_time={"type": "string", "description": "ISO-8601, Z or offset."}),
            body_required=True),
    })
    return out


def _descriptor_routes() -> dict[tuple[str, str], dict[str, Any]]:
    jobs = op("UI descriptors of the jobs of the installed plugins.", ok=array(JOB_DESCRIPTOR))
    automations = op("UI descriptors of one automation family (dosing, led, temperature).",
                     ok=array(AUTOMATION_DESCRIPTOR), path={"automation_type": AUTOMATION_TYPE})
    charts = op("UI descriptors of the charts.", ok=array(CHART_DESCRIPTOR))
    datasets = op("The exportable datasets.", ok=array(DATASET_DESCRIPTOR))
    return {
        ("GET", "/api/jobs/descriptors"): jobs,
        ("GET", "/api/contrib/jobs"): jobs,
        ("GET", "/api/automations/descriptors/{automation_type}"): automations,
        ("GET", "/api/contrib/automations/{automation_type}"): automations,
        ("GET", "/api/charts/descriptors"): charts,
        ("GET", "/api/contrib/charts"): charts,
        ("GET", "/api/settings/descriptors"): op("UI descriptors of the bioreactor, LED and PWM settings.",
                                                 ok=array(SETTINGS_COLLECTION)),
        ("GET", "/api/datasets/exportable"): datasets,
        ("GET", "/api/contrib/exportable_datasets"): datasets,
    }


def _experiment_routes() -> dict[tuple[str, str], dict[str, Any]]:
    experiments = array(EXPERIMENT)
    return {
        ("GET", "/api/models"): op("The supported bioreactor models.", ok=obj(("models",), models=array(MODEL))),
        ("GET", "/api/experiments"): op("Every experiment, newest first.", ok=experiments),
        ("POST", "/api/experiments"): op("Create an experiment (409 when the name exists).", body=NEW_EXPERIMENT,
                                         body_required=True, ok=EXPERIMENT, status=201),
        ("GET", EXP): op("One experiment.", ok=EXPERIMENT),
        ("PATCH", EXP): op("Change an experiment's description or tags.",
                           body=obj(description=STR, tags=array(STR)), ok=EXPERIMENT),
        ("DELETE", EXP): task("Stop the experiment's jobs and delete it with its rows."),
        ("GET", "/api/experiments/latest"): op("The newest experiment (null when there is none).", ok=nullable(EXPERIMENT)),
        ("GET", "/api/experiments/active"): op("Experiments with an active assigned worker.", ok=experiments),
        ("GET", "/api/experiments/assignment_count"): op(
            "Workers assigned to each experiment.",
            ok=array(obj(("experiment", "worker_count"), experiment=STR, worker_count=INT))),
        ("GET", "/api/historical_media"): op("Media used by past experiments.", ok=array(obj(("key",), key=STR))),
        ("GET", "/api/historical_organisms"): op("Organisms of past experiments.", ok=array(obj(("key",), key=STR))),
        ("GET", f"{EXP}/unit_labels"): op("Labels of the experiment's units, {unit: label}.", ok=mapping(STR)),
        ("PUT", f"{EXP}/unit_labels"): op("Label a unit in the experiment (an empty label removes it).",
                                          body=obj(("unit",), unit=STR, label=STR), body_required=True, ok=STATUS,
                                          status=201),
        ("PATCH", f"{EXP}/unit_labels"): op("Label a unit (as PUT).", body=obj(("unit",), unit=STR, label=STR),
                                            body_required=True, ok=STATUS, status=201),
    }


def _inventory_routes() -> dict[tuple[str, str], dict[str, Any]]:
    accepted = {"anyOf": [STATUS, ref("TaskEnvelope")]}
    return {
        ("GET", "/api/workers"): op("The workers inventory.", ok=array(WORKER)),
        ("PUT", "/api/workers"): op(
            "Add a worker to the inventory.", status=201, ok=STATUS, body_required=True,
            body=obj(("pioreactor_unit",), pioreactor_unit={"type": "string", "pattern": "^[A-Za-z0-9_-]+$"},
                     model_name=STR, model_version={"type": ["string", "number"]})),
        ("GET", WORKER_P): op("One worker.", ok=WORKER),
        ("DELETE", WORKER_P): op("Remove a worker (its jobs stop).", ok=STATUS, status=202),
        ("PUT", f"{WORKER_P}/is_active"): op(
            "Activate (1) or deactivate (0; its jobs stop) a worker.", ok=STATUS, body_required=True,
            body=obj(("is_active",), is_active={"type": ["integer", "boolean"], "enum": [0, 1, True, False]})),
        ("GET", f"{WORKER_P}/model"): op(
            "A worker's model and its definition (as in GET /api/models).",
            ok=obj(("pioreactor_unit",), pioreactor_unit=STR, model_name=nullable(STR), model_version=nullable(STR),
                   display_name=nullable(STR), reactor_capacity_ml=NUM, reactor_max_fill_volume_ml=NUM,
                   reactor_diameter_mm=NUM, max_temp_to_reduce_heating=NUM, max_temp_to_disable_heating=NUM,
                   max_temp_to_shutdown=NUM, is_legacy=BOOL, is_contrib=BOOL)),
        ("PUT", f"{WORKER_P}/model"): op(
            "Set a worker's model (one of GET /api/models).", ok=STATUS, body_required=True,
            body=obj(("model_name", "model_version"), model_name=STR, model_version={"type": ["string", "number"]})),
        ("GET", f"{WORKER_P}/experiment"): op(
            "The experiment a worker is assigned to (404 when unassigned).",
            ok=obj(("pioreactor_unit", "experiment"), pioreactor_unit=STR, experiment=STR, is_active=INT,
                   model_name=nullable(STR), model_version=nullable(STR))),
        ("GET", "/api/workers/assignments"): op("Every worker's assignment.", ok=array(ASSIGNMENT)),
        ("DELETE", "/api/workers/assignments"): op("Unassign every worker (their jobs there stop).", ok=accepted,
                                                   status=202, waitable=True),
        ("GET", "/api/workers/discover"): op("Addressable units not in the inventory yet.", ok=array(UNIT_ROW)),
        ("POST", "/api/workers/setup"): op(
            "Add a new worker after checking it answers /unit_api/health (502 when it does not).",
            ok=obj(("msg",), msg=STR), body_required=True, proxy=True,
            body=obj(("name",), name={"type": "string", "pattern": "^[A-Za-z0-9_-]+$"}, model=STR,
                     version={"type": ["string", "number"]})),
        ("GET", "/api/units"): op("The leader and every worker.", ok=array(UNIT_ROW)),
        ("GET", f"{EXP}/workers"): op(
            "Workers assigned to the experiment.",
            ok=array(obj(("pioreactor_unit",), pioreactor_unit=STR, is_active=INT, model_name=nullable(STR),
                         model_version=nullable(STR), assigned_at=STR))),
        ("PUT", f"{EXP}/workers"): op("Assign a worker to the experiment (replacing its other assignment).",
                                      body=obj(("pioreactor_unit",), pioreactor_unit=STR), body_required=True,
                                      ok=STATUS),
        ("DELETE", f"{EXP}/workers"): op("Unassign every worker of the experiment (their jobs stop).", ok=accepted,
                                         status=202, waitable=True),
        ("DELETE", f"{EXP}/workers/{{pioreactor_unit}}"): op("Unassign one worker (its jobs there stop).",
                                                               ok=STATUS),
        ("GET", f"{EXP}/historical_worker_assignments"): op(
            "Workers ever assigned to the experiment.",
            ok=array(obj(("pioreactor_unit",), pioreactor_unit=STR, experiment=STR,
                         is_currently_assigned_to_experiment={"type": ["integer", "boolean"]},
                         first_assigned_at=nullable(STR), last_unassigned_at=nullable(STR)))),
    }


def _log_routes() -> dict[tuple[str, str], dict[str, Any]]:
    logs = array(LOG_ROW)
    recent = {"min_level": LOG_QUERY["min_level"]}
    return {
        ("GET", "/api/logs"): op("Logs of every experiment and unit, newest first.", ok=logs, query=LOG_QUERY),
        ("GET", f"{EXP}/logs"): op("Logs of an experiment.", ok=logs, query=LOG_QUERY),
        ("GET", f"{EXP}/recent_logs"): op("The 50 newest logs of the experiment's last 24 h.", ok=logs, query=recent),
        ("GET", f"{UNIT_P}/logs"): op("Logs of one unit ($broadcast: all).", ok=logs, query=LOG_QUERY),
        ("GET", f"{UNIT_P}/system_logs"): op("A unit's logs outside experiments.", ok=logs, query=LOG_QUERY),
        ("GET", f"{WORKER_P}/experiments/{{experiment}}/logs"): op(
            "A worker's logs while it was assigned to the experiment.", ok=logs, query=LOG_QUERY),
        ("GET", f"{WORKER_P}/experiments/{{experiment}}/recent_logs"): op(
            "A worker's 50 newest logs in the experiment's last 24 h.", ok=logs, query=recent),
        ("POST", f"{WORKER_P}/experiments/{{experiment}}/logs"): op(
            "Publish a log line for workers (stored by mqtt_to_db).", body=LOG_BODY, body_required=True, ok=STATUS,
            status=202),
        ("POST", f"{UNIT_P}/experiments/{{experiment}}/logs"): op(
            "Publish a log line for units.", body=LOG_BODY, body_required=True, ok=STATUS, status=202),
    }


def named_series_operations(name: str, *, per_worker: bool) -> dict[str, dict[str, Any]]:
    """The OpenAPI operation of a named series route (every table that declares ``time_series`` has one)."""
    summary = (f"One worker's {name} series." if per_worker
               else f"The {name} series of the experiment, one per unit.")
    return {"GET": op(summary, ok=SERIES, query=WINDOW_QUERY)}


def _series_routes() -> dict[tuple[str, str], dict[str, Any]]:
    out: dict[tuple[str, str], dict[str, Any]] = {}
    out[("GET", f"{EXP}/time_series/{{data_source}}/{{column}}")] = op(
        "Any table's column as per-unit series (400 for a table or column that cannot be read).", ok=SERIES,
        query=WINDOW_QUERY)
    out[("GET", f"{WORKER_P}/experiments/{{experiment}}/time_series/{{data_source}}/{{column}}")] = op(
        "One worker's series of any table's column.", ok=SERIES, query=WINDOW_QUERY)
    return out


def _config_routes() -> dict[tuple[str, str], dict[str, Any]]:
    return {
        ("GET", "/api/config/shared"): op("The shared config.ini (text).", ok=TEXT),
        ("PATCH", "/api/config/shared"): op("Replace the shared config.ini (checked first).", body=CODE_BODY,
                                            body_required=True, ok=STATUS),
        ("PUT", "/api/config/shared"): op("Replace the shared config.ini (as PATCH; the web UI saves with PUT).",
                                          body=CODE_BODY, body_required=True, ok=STATUS),
        ("GET", "/api/config/shared/history"): op("Saved versions of config.ini, newest first.", ok=CONFIG_HISTORY),
        ("GET", "/api/config/units/{pioreactor_unit}"): op("Merged config of a unit ($broadcast: every unit).",
                                                          ok=CONFIGS),
        ("GET", "/api/config/units/{pioreactor_unit}/specific"): op("A unit's unit_config.ini (text).", ok=TEXT,
                                                                   proxy=True),
        ("PATCH", "/api/config/units/{pioreactor_unit}/specific"): op(
            "Replace a unit's unit_config.ini (checked with the shared file).", body=CODE_BODY, body_required=True,
            ok=STATUS, proxy=True),
        ("PUT", "/api/config/units/{pioreactor_unit}/specific"): op(
            "Replace a unit's unit_config.ini (as PATCH; the web UI saves with PUT).", body=CODE_BODY,
            body_required=True, ok=STATUS, proxy=True),
        ("GET", "/api/config/units/{pioreactor_unit}/specific/history"): op(
            "Saved versions of a unit's unit_config.ini.", ok=CONFIG_HISTORY),
        ("GET", f"{UNIT_P}/configuration"): op("Merged config of a unit, {unit: {section: {key: value}}}.",
                                               ok=mapping(mapping(mapping(STR)))),
        ("GET", "/api/configs"): op("Config file names: config.ini and config_<unit>.ini.", ok=array(STR)),
        ("GET", "/api/configs/{filename}"): op("A config file (text).", ok=TEXT, proxy=True),
        ("PATCH", "/api/configs/{filename}"): op("Replace a config file.", body=CODE_BODY, body_required=True,
                                                 ok=STATUS, proxy=True),
        ("GET", "/api/configs/{filename}/history"): op("Saved versions of a config file.", ok=CONFIG_HISTORY),
    }


OPERATIONS: dict[tuple[str, str], dict[str, Any]] = {
    **_fan_out_routes(),
    **_descriptor_routes(),
    **_experiment_routes(),
    **_inventory_routes(),
    **_log_routes(),
    **_series_routes(),
    **_config_routes(),
    ("GET", "/api/openapi.json"): op("This OpenAPI document (/api routes).", ok=OBJ, tags=["docs"]),
    ("GET", "/api/docs"): op("The API docs page (Swagger UI, served from the leader).", tags=["docs"],
                             ok=Content("text/html", STR)),
}
