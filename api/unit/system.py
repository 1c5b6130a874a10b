"""``/unit_api`` capabilities, UTC clock and task results (§2.4, §8)."""

from __future__ import annotations

from typing import Any

import falcon

from reactorkit.api.errors import ApiError
from reactorkit.api.unit.common import enqueue_task, invalid, read_body

_OPTION_TYPES = {"string": "text", "float": "float", "integer": "integer", "boolean": "boolean", "flag": "boolean"}


def capability(job: Any) -> dict[str, Any]:
    """One ``/unit_api/capabilities`` entry: ``{job_name, help, arguments, options, published_settings, cli_example}``.

    ``published_settings`` maps each setting to ``{datatype, settable, unit?}``;
    ``state`` (string, settable) is always there (§2.4); ``arguments`` are the
    descriptor's positional ``cli_arguments``.
    """
    options = [
        {"name": o.name, "long_flag": o.name.replace("_", "-"), "help": o.help, "required": o.required,
         "multiple": False, "default": False if o.type == "flag" and o.default is None else o.default,
         "type": _OPTION_TYPES.get(o.type, o.type)}
        for o in job.cli_options
    ]
    settings: dict[str, Any] = {"state": {"datatype": "string", "settable": True}}
    for s in job.published_settings:
        entry: dict[str, Any] = {"datatype": s.datatype, "settable": s.editable}
        if s.unit:
            entry["unit"] = s.unit
        settings[s.key] = entry
    arguments = [{"name": name, "required": True, "multiple": False, "type": "text"}
                 for name in getattr(job, "cli_arguments", ())]
    return {"job_name": job.job_name, "help": job.description or job.display_name, "arguments": arguments,
            "options": options, "published_settings": settings, "cli_example": f"pio run {job.job_name} [OPTIONS]"}


class Capabilities:
    """``GET /unit_api/capabilities``: what ``pio run`` can start here, with options and settings."""

    def __init__(self, registry: Any) -> None:
        self.registry = registry

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = [capability(j) for j in sorted(self.registry.jobs.values(), key=lambda j: j.job_name)]


class UtcClock:
    """``GET /unit_api/system/utc_clock`` → ``{"status": "success", "clock_time"}``;
    ``POST|PATCH {utc_clock_time}`` queues a clock set (leader) / re-sync (worker) → 202."""

    def __init__(self, unit: str) -> None:
        self.unit = unit

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        from reactorkit.core.clock import get_clock, utc_iso_ms

        resp.media = {"status": "success", "clock_time": utc_iso_ms(get_clock().now())}

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        value = read_body(req).get("utc_clock_time")  # a string: checked by the schema middleware
        if value is not None:
            check_utc_time(value)
        enqueue_task(resp, self.unit, "reactorkit.core.task_functions.set_clock", value, timeout_s=60)

    on_patch = on_post


def check_utc_time(value: str) -> float:
    """Parse an ISO-8601 time with ``Z`` or an offset (seconds since the epoch).

    Raises:
        ApiError: 400 naming ``utc_clock_time``.
    """
    from datetime import datetime

    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise invalid(f"Field 'utc_clock_time' must be an ISO-8601 time, got {value!r}.",
                      'Example: {"utc_clock_time": "2026-01-31T12:45:00Z"}.') from None
    if parsed.tzinfo is None:
        raise invalid(f"Field 'utc_clock_time' needs a Z or an offset, got {value!r}.",
                      'Example: {"utc_clock_time": "2026-01-31T12:45:00Z"}.')
    return parsed.timestamp()


_PENDING = {"queued", "deferred", "scheduled"}
_FAILED = {"failed", "stopped", "canceled"}


def task_status(task_id: str) -> tuple[str, dict[str, Any]]:
    """``(http_status, body)`` of a task (§8).

    Bodies always carry ``task_id`` and ``result_url_path``; ``status`` is
    ``pending`` or ``running`` (202), ``succeeded`` with ``result`` (200) or
    ``failed`` with ``error, cause, remediation`` (200). A leader's fan-out task
    (one envelope per target unit in ``result``) is ``failed`` when every target
    failed and ``partial`` when some did, both with ``error, cause, remediation``
    naming the units (:func:`reactorkit.api.fanout.task_outcome`).

    Raises:
        ApiError: 404 for an unknown id, 503 when Redis is unreachable.
    """
    from redis.exceptions import RedisError
    from rq.exceptions import NoSuchJobError
    from rq.job import Job

    from reactorkit.api.fanout import FAN_OUT_TASK, task_outcome
    from reactorkit.api.unit.common import unavailable_queue
    from reactorkit.core.tasks import redis_client

    base = {"task_id": task_id, "result_url_path": f"/unit_api/task_results/{task_id}"}
    try:
        job = Job.fetch(task_id, connection=redis_client())
        status = str(getattr(job.get_status(), "value", job.get_status()))
        if status in _PENDING:
            return falcon.HTTP_202, {**base, "status": "pending"}
        if status == "started":
            progress = (job.meta or {}).get("progress")  # long tasks (exports) report how far they are
            return falcon.HTTP_202, {**base, "status": "running", **({"progress": progress} if progress else {})}
        if status == "finished":
            if job.func_name == FAN_OUT_TASK:  # one envelope per target: failed/partial when targets failed
                return falcon.HTTP_200, {**base, **task_outcome(job.return_value())}
            return falcon.HTTP_200, {**base, "status": "succeeded", "result": job.return_value()}
        if status in _FAILED:
            return falcon.HTTP_200, {**base, "status": "failed", **_failure(job, status)}
    except NoSuchJobError:
        raise ApiError(falcon.HTTP_404, f"Unknown task {task_id!r}.",
                       cause=f"No task with id {task_id!r} on this unit (results are kept 24 h).",
                       remediation="Use the result_url_path returned when the task was created.") from None
    except RedisError as exc:
        raise unavailable_queue(exc) from exc
    return falcon.HTTP_202, {**base, "status": "pending"}


def _failure(job: Any, status: str) -> dict[str, Any]:
    error = (job.meta or {}).get("error")
    if isinstance(error, dict) and error.get("error"):
        return {"error": error["error"], "cause": error.get("cause") or error["error"],
                **({"remediation": error["remediation"]} if error.get("remediation") else {})}
    text = ""
    try:
        result = job.latest_result()
        text = (getattr(result, "exc_string", "") or "") if result is not None else ""
    except Exception:
        text = ""
    last = next((ln.strip() for ln in reversed(text.splitlines()) if ln.strip()), "")
    if status != "failed":
        return {"error": f"The task was {status}.", "cause": last or f"The task was {status} before it finished.",
                "remediation": "Queue it again."}
    return {"error": "The task raised an error.", "cause": last or "The task failed without a message.",
            "remediation": "See the unit's task worker log (pio worker)."}


class TaskResults:
    """``GET /unit_api/task_results/{task_id}``: pending/running (202), succeeded/failed (200)."""

    def on_get(self, req: falcon.Request, resp: falcon.Response, task_id: str) -> None:
        resp.status, resp.media = task_status(task_id)
