"""Building blocks of the operation descriptions: JSON Schema pieces and :func:`op`.

An *operation description* is a plain dict (what :func:`op` returns, and what a
plugin may put in ``RouteDescriptor.schemas[METHOD]``):

``summary``
    One line for the docs page.
``body``
    JSON Schema (2020-12) of the JSON request body, or ``None`` for no body.
    The validation middleware checks requests against it (400 naming the field).
``body_content``
    Media type of the body (default ``application/json``; ``multipart/form-data``
    bodies are documented, not validated).
``query``
    ``{name: schema}`` of query parameters (validated: 400 naming the parameter).
``responses``
    ``{status: schema}`` where a schema is a JSON Schema (``application/json``)
    or a :class:`Content` for other media types.
``async``
    True when the operation queues a task and answers 202 with the task
    envelope (it then accepts ``?wait=``, see :mod:`reactorkit.api.openapi.wait`).
``tags``
    Docs-page sections (default: derived from the path).

Schemas allow extra properties unless they say otherwise: responses may grow
fields without breaking clients, and request bodies are checked only for the
fields the contract names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Schema = dict[str, Any]

STR: Schema = {"type": "string"}
INT: Schema = {"type": "integer"}
NUM: Schema = {"type": "number"}
BOOL: Schema = {"type": "boolean"}
ANY: Schema = {}
OBJ: Schema = {"type": "object"}
NAME: Schema = {"type": "string", "minLength": 1}
TIMESTAMP: Schema = {"type": "string", "description": "ISO-8601 UTC time, e.g. 2026-01-31T12:45:00.000Z"}
SCALAR: Schema = {"type": ["string", "number", "integer", "boolean", "null"]}


def nullable(schema: Schema) -> Schema:
    """``schema`` or ``null``."""
    return {"anyOf": [schema, {"type": "null"}]}


def obj(required: tuple[str, ...] | list[str] = (), /, *, _extra: bool = True, _doc: str | None = None,
        **properties: Schema) -> Schema:
    """An object schema with ``properties`` (``required`` among them); ``_extra=False`` forbids other keys,
    ``_doc`` describes it."""
    out: Schema = {"type": "object", "properties": dict(properties)}
    if required:
        out["required"] = list(required)
    if not _extra:
        out["additionalProperties"] = False
    if _doc:
        out["description"] = _doc
    return out


def array(items: Schema, **kw: Any) -> Schema:
    """An array of ``items``."""
    return {"type": "array", "items": items, **kw}


def mapping(values: Schema, **kw: Any) -> Schema:
    """An object whose every value matches ``values`` (``{unit: …}``, ``{device: …}``)."""
    return {"type": "object", "additionalProperties": values, **kw}


def ref(name: str) -> Schema:
    """``{"$ref": "#/components/schemas/<name>"}`` (see :data:`COMPONENTS`)."""
    return {"$ref": f"#/components/schemas/{name}"}


@dataclass(frozen=True)
class Content:
    """A response (or body) of another media type than JSON, e.g. ``Content("application/zip", BINARY)``."""

    media_type: str
    schema: Schema

    def to_openapi(self) -> dict[str, Any]:
        return {self.media_type: {"schema": self.schema}}


BINARY: Schema = {"type": "string", "format": "binary"}
TEXT = Content("text/plain", STR)
ZIP = Content("application/zip", BINARY)
OCTETS = Content("application/octet-stream", BINARY)


# ------------------------------------------------------------ shared shapes
ERROR = obj(
    ("error", "cause", "status"),
    error=STR, cause=STR, remediation=STR, status=INT,
    diagnostics=array(OBJ, description="Problems found in a submitted document (experiment profiles)."),
    _doc="Every 4xx/5xx body (domain facts §1.3).",
)

TASK_ENVELOPE = obj(
    ("task_id", "result_url_path"),
    unit=STR, task_id=STR, result_url_path=STR, status=STR,
    _doc="A queued task (§8): poll result_url_path, or repeat the request with ?wait=<seconds>.",
)

TASK_RESULT = obj(
    ("task_id", "result_url_path", "status"),
    task_id=STR, result_url_path=STR,
    status={"type": "string", "enum": ["pending", "running", "succeeded", "partial", "failed"]},
    result=ANY, error=STR, cause=STR, remediation=STR,
    _doc="A task's state: pending/running (202), succeeded with result or failed with error (200); a leader's "
         "fan-out task is failed when every target unit failed and partial when some did (result keeps each "
         "unit's envelope).",
)

STATUS = obj(("status",), status=STR, _doc='{"status": "success"} or {"status": "accepted"}.')

UNIT_ENVELOPE = obj(
    ("ok", "unit"),
    ok=BOOL, unit=STR, value=ANY, error=OBJ, status_code=nullable(INT), retryable=BOOL,
    _doc="One unit's answer inside a fan-out result (§1.2).",
)

JOB_ROW = obj(
    ("job_id", "job_name"),
    job_id=INT, unit=STR, experiment=STR, job_name=STR, job_source=nullable(STR), pid=nullable(INT),
    leader=nullable(STR), is_running=INT, is_long_running_job=INT, started_at=nullable(STR),
    ended_at=nullable(STR),
)

RUN_BODY = obj(
    options=mapping(SCALAR, description="CLI options of the job: _ becomes -, null is a bare flag."),
    env=mapping(SCALAR, description="Environment variables (whitelisted)."),
    args=array({"type": ["string", "number", "integer"]}, description="Positional arguments."),
    config_overrides=array(array({"type": ["string", "number", "integer"]}, minItems=3, maxItems=3),
                           description="[[section, key, value], …]"),
    _doc="How to start a job (§8).",
)

TOPIC_LEVEL: Schema = {
    "type": "string", "minLength": 1, "pattern": "^[^#+/\\u0000-\\u001f\\u007f-\\u009f\\ufdd0-\\ufdef\\ufffe\\uffff]+$",
    "description": "One MQTT topic level: no /, + or #, no control characters (brokers refuse or misroute them).",
}
SETTINGS_BODY = obj(("settings",), settings=mapping(ANY, minProperties=1, propertyNames=TOPIC_LEVEL))

EXPERIMENT = obj(
    ("experiment", "created_at"),
    experiment=STR, created_at=STR, description=nullable(STR), delta_hours=NUM, worker_count=INT,
    tags=array(STR), media_used=nullable(STR), organism_used=nullable(STR),
)

LOG_ROW = obj(
    ("timestamp", "level", "message"),
    timestamp=STR, level=STR, pioreactor_unit=nullable(STR), message=STR, task=nullable(STR),
    source=nullable(STR), experiment=nullable(STR),
)

SERIES = obj(("series", "data"), series=array(STR), data=array(array(obj(("x", "y"), x=STR, y=nullable(NUM)))))

CONFIG_HISTORY = array(obj(("filename", "timestamp", "data"), filename=STR, timestamp=STR, data=nullable(STR)))

CODE_BODY = obj(("code",), code=STR, _doc="The INI text.")

COMPONENTS: dict[str, Schema] = {
    "Error": ERROR,
    "TaskEnvelope": TASK_ENVELOPE,
    "TaskResult": TASK_RESULT,
    "UnitEnvelope": UNIT_ENVELOPE,
}
"""Named schemas of ``components/schemas``; refer to them with :func:`ref`."""

AUTOMATION_TYPE: Schema = {"type": "string", "enum": ["dosing", "led", "temperature"]}

# ------------------------------------------------------------------ queries
LEVEL = {"type": "string", "description": "Lowest level: DEBUG, INFO, NOTICE, WARNING, ERROR or CRITICAL (any case)."}
SKIP = {"type": "integer", "minimum": 0, "description": "Rows to skip (pages of 100)."}
LOOKBACK = {"type": "number", "minimum": 0, "description": "Hours back from now (default 4)."}
TARGET_POINTS = {"type": "integer", "minimum": 1, "description": "At most about this many points per series (default 720)."}
WINDOW_QUERY = {"lookback": LOOKBACK, "target_points": TARGET_POINTS}
LOG_QUERY = {"min_level": LEVEL, "skip": SKIP}


# -------------------------------------------------------------- operations
def op(summary: str, *, ok: Schema | Content | tuple[Schema | Content, ...] | None = None, status: int = 200,
       body: Schema | None = None, body_content: str = "application/json", body_required: bool = False,
       query: dict[str, Schema] | None = None, path: dict[str, Schema] | None = None,
       responses: dict[int | str, Schema | Content] | None = None, tags: list[str] | None = None,
       description: str | None = None, proxy: bool = False, waitable: bool = False) -> dict[str, Any]:
    """A synchronous operation answering ``status`` with ``ok`` (plus the error responses).

    ``path`` narrows path fields (default: any string); ``proxy`` marks an operation that calls another unit
    synchronously (documented 502 when that unit cannot be reached); ``waitable`` one that may answer with a
    task envelope (it then accepts ``?wait=``).
    """
    out: dict[str, Any] = {"summary": summary, "responses": {str(status): ANY if ok is None else ok}}
    if responses:
        out["responses"].update({str(k): v for k, v in responses.items()})
    if proxy:
        out["responses"]["502"] = ref("Error")
    if path:
        out["path"] = dict(path)
    if waitable:
        out["async"] = True
        out["responses"].setdefault("200", ref("TaskResult"))
    if body is not None:
        out["body"] = body
        out["body_content"] = body_content
        out["body_required"] = body_required
    if query:
        out["query"] = dict(query)
    if tags:
        out["tags"] = tags
    if description:
        out["description"] = description
    return out


def task(summary: str, *, result: Schema | None = None, body: Schema | None = None,
         query: dict[str, Schema] | None = None, extra: dict[str, Schema] | None = None,
         description: str | None = None, **kw: Any) -> dict[str, Any]:
    """An async operation (§8): 202 with the task envelope (``extra`` adds envelope fields); with ``?wait=``
    a 200 with the finished task (its ``result`` matching ``result`` when given)."""
    envelope = ref("TaskEnvelope") if not extra else {"allOf": [ref("TaskEnvelope"), obj(**extra)]}
    finished = ref("TaskResult") if result is None else {"allOf": [ref("TaskResult"), obj(result=result)]}
    out = op(summary, ok=envelope, status=202, body=body, query=query, description=description, **kw)
    out["responses"]["200"] = finished
    out["async"] = True
    return out


def fan_out(summary: str, value: Schema | None = None, **kw: Any) -> dict[str, Any]:
    """A leader fan-out task whose result is ``{unit: envelope}`` (the envelope's ``value`` matching ``value``)."""
    envelope = ref("UnitEnvelope") if value is None else {"allOf": [ref("UnitEnvelope"), obj(value=value)]}
    return task(summary, result=mapping(envelope), **kw)
