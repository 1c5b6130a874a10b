"""Leader → ``/unit_api`` fan-out (domain facts §1.2, §8).

The leader answers most cluster-wide requests by calling each target unit's
``/unit_api`` concurrently and reporting one *envelope* per unit, so one
unreachable unit never fails the whole call:

* success ``{"ok": true, "unit": u, "value": <body>}`` — a top-level
  ``"status": "success"`` is removed from dict bodies; when the unit replies
  ``202`` with a ``result_url_path`` the task is polled and the value is the
  task's ``result``;
* failure ``{"ok": false, "unit": u, "error": {"kind", "message", "cause"?,
  "remediation"?}, "status_code": int | None, "retryable": bool}``.

Error kinds: ``connection_error`` (retryable), ``http_error`` (retryable iff the
status is ≥ 500), ``decode_error`` (body is not JSON), ``task_failed`` (the
unit's task reported ``failed``), ``task_incomplete`` (a poll answered with an
unknown task status), ``task_timeout`` (still pending after the polling
budget), ``task_exception`` (polling itself failed), ``missing_result``
(``succeeded`` without ``result``), ``invalid_response`` (a 202 without a usable
``result_url_path``, or a poll reply that is not a JSON object).

Timeouts (§1.2): GET 5 s per unit (capabilities 15 s, merged config 10 s — pass
``timeout=``); POST/PATCH/DELETE first request 2 s; task replies are polled
every 0.25 s at most ``ceil(30 / 0.25) = 120`` times.

Leader routes do not wait for the fan-out: they queue :func:`fan_out_task` on
the leader's own rq queue and answer ``202 {unit, task_id, result_url_path,
status: "accepted"}`` (:meth:`FanOut.respond`); the caller polls the
leader's ``/unit_api/task_results/{task_id}`` whose ``result`` is the dict of
envelopes keyed by unit (sorted by name).

Target resolution (:func:`resolve_units`) reads the leader database it is given
(``workers(active_only)``, ``assigned_workers(experiment)``, ``units()``): a route
passes its app's (``context.leader_db``, or ``context.fanout.targets``); there is
no process-wide database here.
"""

from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterable

import httpx

from reactorkit.core.auth.client import cluster_headers

BROADCAST = "$broadcast"
UNIVERSAL_EXPERIMENT = "$experiment"

GET_TIMEOUT_S = 5.0
WRITE_TIMEOUT_S = 2.0
CAPABILITIES_TIMEOUT_S = 15.0
MERGED_CONFIG_TIMEOUT_S = 10.0
POLL_INTERVAL_S = 0.25
POLL_MAX = math.ceil(30 / POLL_INTERVAL_S)  # 120 polls ≈ 30 s
AGGREGATE_SLACK_S = 1.0
MAX_THREADS = 32

Envelope = dict[str, Any]


# ------------------------------------------------------------------ envelopes
def ok_envelope(unit: str, value: Any) -> Envelope:
    """``{"ok": True, "unit", "value"}`` with a top-level ``"status": "success"`` removed."""
    if isinstance(value, dict) and value.get("status") == "success":
        value = {k: v for k, v in value.items() if k != "status"}
    return {"ok": True, "unit": unit, "value": value}


def error_envelope(unit: str, kind: str, message: str, *, status_code: int | None = None,
                   cause: str | None = None, remediation: str | None = None,
                   retryable: bool | None = None) -> Envelope:
    """``{"ok": False, "unit", "error": {kind, message, cause?, remediation?}, "status_code", "retryable"}``.

    ``retryable`` defaults per kind: ``connection_error`` → True, ``http_error`` →
    ``status_code >= 500``, everything else False.
    """
    error: dict[str, Any] = {"kind": kind, "message": message}
    if cause:
        error["cause"] = cause
    if remediation:
        error["remediation"] = remediation
    if retryable is None:
        retryable = kind == "connection_error" or (kind == "http_error" and (status_code or 0) >= 500)
    return {"ok": False, "unit": unit, "error": error, "status_code": status_code, "retryable": bool(retryable)}


# -------------------------------------------------------------------- calling
def default_timeout(method: str) -> float:
    """Seconds for the first request: GET 5 s, anything else 2 s (§1.2)."""
    return GET_TIMEOUT_S if method.upper() == "GET" else WRITE_TIMEOUT_S


def _base_url(unit: str, config: Any) -> str:
    from reactorkit.core.cluster import unit_url

    return unit_url(unit, config)


def _json_or_none(response: httpx.Response) -> tuple[bool, Any]:
    try:
        return True, response.json()
    except ValueError:
        return False, None


def call_unit(client: httpx.Client, method: str, unit: str, path: str, *, json: Any = None,
              params: dict[str, Any] | None = None, timeout: float | None = None, config: Any = None,
              poll_interval_s: float = POLL_INTERVAL_S, poll_max: int = POLL_MAX,
              base_url: str | None = None) -> Envelope:
    """One request to ``unit``'s ``path`` (e.g. ``/unit_api/jobs/running``) → an envelope.

    Never raises for network or unit errors; they become error envelopes.

    Args:
        client: A shared ``httpx.Client`` (thread-safe).
        method: HTTP method.
        unit: Target unit name (its address from ``[cluster.addresses]``).
        path: Absolute path on the unit, starting with ``/unit_api/``.
        json: Request body.
        params: Query string.
        timeout: Seconds for the first request (default :func:`default_timeout`).
        poll_interval_s, poll_max: Task polling pacing (0.25 s, 120 polls).
        base_url: Override the unit's ``{proto}://{host}:{port}``.
    """
    method = method.upper()
    timeout = default_timeout(method) if timeout is None else timeout
    try:
        url = (base_url or _base_url(unit, config)) + path
    except Exception as exc:  # a broken address entry is this unit's problem only
        return error_envelope(unit, "connection_error", f"No address for {unit}.", cause=str(exc))
    try:
        response = client.request(method, url, json=json, params=params, timeout=timeout, headers=cluster_headers())
    except httpx.HTTPError as exc:
        return error_envelope(
            unit, "connection_error", f"Could not {method} to {unit}'s {path}.",
            cause=f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__,
            remediation=f"Check that {unit} is powered on, on the network, and serving /unit_api.",
        )
    decoded, body = _json_or_none(response)
    if response.status_code >= 400:
        message, cause, remediation = f"{unit} answered {response.status_code} to {method} {path}.", None, None
        if decoded and isinstance(body, dict) and body.get("status") == response.status_code:
            message = str(body.get("error") or message)
            cause = body.get("cause")
            remediation = body.get("remediation")
        return error_envelope(unit, "http_error", message, status_code=response.status_code, cause=cause,
                              remediation=remediation)
    if not decoded:
        if not response.content:
            return ok_envelope(unit, None)
        return error_envelope(unit, "decode_error", f"{unit}'s reply to {method} {path} is not JSON.",
                              status_code=response.status_code)
    if response.status_code == 202:
        if isinstance(body, dict) and "result_url_path" in body:
            return poll_task(client, unit, body, base_url=base_url or _base_url(unit, config),
                             poll_interval_s=poll_interval_s, poll_max=poll_max)
        if not (isinstance(body, dict) and body.get("status") in ("accepted", "success")):
            return error_envelope(unit, "invalid_response", f"{unit} answered 202 without a result_url_path.",
                                  status_code=202)
    return ok_envelope(unit, body)


def poll_task(client: httpx.Client, unit: str, accepted: dict[str, Any], *, base_url: str,
              poll_interval_s: float = POLL_INTERVAL_S, poll_max: int = POLL_MAX) -> Envelope:
    """Poll ``accepted["result_url_path"]`` until ``succeeded``/``failed`` (≤ ``poll_max`` polls)."""
    path = accepted["result_url_path"]
    if not isinstance(path, str) or not path.startswith("/"):
        return error_envelope(unit, "invalid_response", f"{unit} gave an unusable result_url_path {path!r}.",
                              status_code=202)
    last_status: Any = None
    for attempt in range(poll_max):
        if attempt:
            time.sleep(poll_interval_s)
        try:
            response = client.get(base_url + path, timeout=GET_TIMEOUT_S, headers=cluster_headers())
        except httpx.HTTPError as exc:
            return error_envelope(unit, "task_exception", f"Polling {unit}'s {path} failed.",
                                  cause=f"{type(exc).__name__}: {exc}", retryable=True)
        decoded, body = _json_or_none(response)
        if not decoded:
            return error_envelope(unit, "decode_error", f"{unit}'s task result at {path} is not JSON.",
                                  status_code=response.status_code)
        if not isinstance(body, dict):
            return error_envelope(unit, "invalid_response", f"{unit}'s task result at {path} is not an object.",
                                  status_code=response.status_code)
        if response.status_code >= 400 and body.get("status") not in ("failed",):
            return error_envelope(unit, "http_error",
                                  str(body.get("error") or f"{unit} answered {response.status_code} to GET {path}."),
                                  status_code=response.status_code, cause=body.get("cause"),
                                  remediation=body.get("remediation"))
        last_status = body.get("status")
        if last_status in ("pending", "running", "queued", "started", "accepted"):
            continue
        if last_status in ("succeeded", "complete", "partial"):
            if "result" not in body:
                return error_envelope(unit, "missing_result", f"{unit}'s task {body.get('task_id')} has no result.",
                                      status_code=response.status_code)
            return ok_envelope(unit, body["result"])
        if last_status == "failed":
            return error_envelope(unit, "task_failed", str(body.get("error") or f"{unit}'s task failed."),
                                  status_code=response.status_code, cause=body.get("cause"),
                                  remediation=body.get("remediation"))
        return error_envelope(unit, "task_incomplete", f"{unit}'s task reported status {last_status!r}.",
                              status_code=response.status_code)
    return error_envelope(unit, "task_timeout",
                          f"{unit}'s task at {path} did not finish within {poll_max * poll_interval_s:g} s.",
                          cause=f"last status {last_status!r}", retryable=True)


def fan_out(method: str, units: Iterable[str], path: str | Callable[[str], str], json: Any = None, *,
            timeout: float | None = None, params: dict[str, Any] | None = None, config: Any = None,
            poll_interval_s: float = POLL_INTERVAL_S, poll_max: int = POLL_MAX,
            json_per_unit: dict[str, Any] | None = None,
            client: httpx.Client | None = None) -> dict[str, Envelope]:
    """Call ``path`` on every unit concurrently; returns ``{unit: envelope}`` sorted by unit name.

    Args:
        method: ``GET``, ``POST``, ``PATCH``, ``PUT`` or ``DELETE``.
        units: Target unit names (resolve ``$broadcast`` first with :func:`resolve_units`).
        path: ``/unit_api/...`` path, or a function ``unit -> path``.
        json: Body sent to every unit (``json_per_unit[unit]`` wins when given).
        timeout: Seconds for each unit's first request (GET 5 s, else 2 s by default).
        params: Query string sent to every unit.
        poll_interval_s, poll_max: Task polling pacing for 202 replies.
        client: Reuse an ``httpx.Client`` (tests pass one with a mock transport).

    Returns:
        ``{unit: {"ok": True, "unit", "value"} | {"ok": False, "unit", "error", "status_code", "retryable"}}``.
    """
    if config is None:
        from reactorkit.core.config import get_config

        config = get_config()
    targets = sorted(dict.fromkeys(units))
    if not targets:
        return {}
    own_client = client is None
    http = client or httpx.Client(follow_redirects=False)

    def one(unit: str) -> Envelope:
        body = json_per_unit.get(unit, json) if json_per_unit else json
        unit_path = path(unit) if callable(path) else path
        try:
            return call_unit(http, method, unit, unit_path, json=body, params=params, timeout=timeout,
                             config=config, poll_interval_s=poll_interval_s, poll_max=poll_max)
        except Exception as exc:  # nothing about one unit may fail the whole call
            return error_envelope(unit, "invalid_response", f"Calling {unit} failed unexpectedly.",
                                  cause=f"{type(exc).__name__}: {exc}")

    try:
        with ThreadPoolExecutor(max_workers=min(MAX_THREADS, len(targets))) as pool:
            results = dict(zip(targets, pool.map(one, targets)))
    finally:
        if own_client:
            http.close()
    return {unit: results[unit] for unit in targets}


def fan_out_task(method: str, units: list[str], path: str, json: Any = None, *, timeout: float | None = None,
                 params: dict[str, Any] | None = None, json_per_unit: dict[str, Any] | None = None) -> dict[str, Envelope]:
    """What the leader's rq worker runs for an async leader route: :func:`fan_out` with this unit's config."""
    return fan_out(method, units, path, json, timeout=timeout, params=params, json_per_unit=json_per_unit)


# --------------------------------------------------------------- async tasks
FAN_OUT_TASK = "reactorkit.api.fanout.fan_out_task"
TERMINAL_STATUSES = ("succeeded", "partial", "failed")
"""Statuses of a task that has ended (``partial``: a fan-out task where some targets failed)."""


def task_outcome(result: Any) -> dict[str, Any]:
    """Status (and, when a target failed, ``error``, ``cause``, ``remediation``) of a finished fan-out task.

    ``result`` is the task's ``{unit: envelope}``. Every envelope ``ok``: ``succeeded``; none ``ok``:
    ``failed``; some: ``partial``. The body keeps ``result`` in every case, so each unit's
    envelope stays readable. Anything else than a dict of envelopes is ``succeeded``.
    """
    body: dict[str, Any] = {"result": result}
    if not isinstance(result, dict) or not result:
        return {"status": "succeeded", **body}
    failed = {u: e for u, e in result.items() if isinstance(e, dict) and e.get("ok") is False}
    if not failed:
        return {"status": "succeeded", **body}
    names = ", ".join(sorted(failed))
    causes = []
    remediations: list[str] = []
    for unit in sorted(failed):
        error = failed[unit].get("error") or {}
        message = str(error.get("message") or "failed")
        detail = error.get("cause")
        causes.append(f"{unit}: {message}" + (f" ({detail})" if detail and detail != message else ""))
        hint = error.get("remediation")
        if hint and hint not in remediations:
            remediations.append(str(hint))
    if any(failed[u].get("retryable") for u in failed):
        remediations.append(f"Check that {names} {'is' if len(failed) == 1 else 'are'} on the network and "
                            f"serving its API, then send the request again.")
    if len(failed) == len(result):
        status, error = "failed", (f"The call failed on its only target, {names}." if len(result) == 1
                                   else f"The call failed on every target ({names}).")
    else:
        status, error = "partial", f"The call failed on {len(failed)} of {len(result)} targets ({names}); the others succeeded."
        remediations.append(f"Send it again to {names} only (/api/workers/<unit>/…).")
    return {"status": status, "error": error, "cause": "; ".join(causes),
            "remediation": " ".join(remediations) or "See each unit's envelope in result.", **body}


def task_envelope(task_id: str, unit: str | None = None) -> dict[str, Any]:
    """``{"unit", "task_id", "result_url_path", "status": "accepted"}`` of a queued task (§8)."""
    if unit is None:
        from reactorkit.core.config import get_unit_name

        unit = get_unit_name()
    return {"unit": unit, "task_id": task_id, "result_url_path": f"/unit_api/task_results/{task_id}",
            "status": "accepted"}


def enqueue_fan_out(method: str, units: Iterable[str], path: str, json: Any = None, *,
                    timeout: float | None = None, params: dict[str, Any] | None = None,
                    json_per_unit: dict[str, Any] | None = None, unit: str | None = None) -> dict[str, Any]:
    """Queue :func:`fan_out_task` on the (leader) unit's rq queue; returns the task envelope.

    Args:
        unit: The leader's name, whose queue runs the task (default ``$HOSTNAME``).

    Raises:
        redis.exceptions.ConnectionError: the leader's Redis is unreachable.
    """
    from reactorkit.core.tasks import enqueue

    units = sorted(dict.fromkeys(units))
    # polling budget (30 s) + first request + slack
    job_timeout = int((timeout or default_timeout(method)) + POLL_MAX * POLL_INTERVAL_S + 30)
    task_id = enqueue("reactorkit.api.fanout.fan_out_task", method.upper(), units, path, json, unit=unit,
                      timeout_s=job_timeout, timeout=timeout, params=params, json_per_unit=json_per_unit)
    return task_envelope(task_id, unit)


# ---------------------------------------------------------- target resolution
def _names(rows: Iterable[Any]) -> list[str]:
    out = []
    for row in rows or ():
        if isinstance(row, str):
            out.append(row)
        elif isinstance(row, dict):
            out.append(row.get("pioreactor_unit") or row.get("unit"))
        else:
            out.append(getattr(row, "pioreactor_unit", None) or getattr(row, "unit"))
    return [n for n in out if n]


def _is_active(row: Any) -> bool:
    if isinstance(row, dict):
        return bool(row.get("is_active", True))
    return bool(getattr(row, "is_active", True))


class FanOut:
    """An app's fan-out client: :func:`fan_out` with the app's config, targets from the app's leader database,
    async fan-outs on the app's unit's task queue.

    Args:
        config: The app's config, or ``() -> Config`` returning it as it is now (the app's context gives
            :meth:`~reactorkit.api.context.AppContext.config_source`: addresses saved through the API are used by
            the next call).
        db: A function returning the app's ``LeaderDB`` (called only when targets are resolved).
        unit: The app's unit (the leader), whose rq queue runs queued fan-outs (default ``$HOSTNAME``).
    """

    def __init__(self, config: Any, db: Callable[[], Any], unit: str | None = None) -> None:
        from reactorkit.api.context import as_config_source

        self._config = as_config_source(config)
        self._db = db
        self.unit = unit

    @property
    def config(self) -> Any:
        """The app's config (as it is now, when built with a function)."""
        return self._config()

    @property
    def db(self) -> Any:
        """The app's ``LeaderDB``."""
        return self._db()

    def call(self, method: str, units: Iterable[str], path: str | Callable[[str], str], json: Any = None,
             **kwargs: Any) -> dict[str, Envelope]:
        """:func:`fan_out` (same arguments) with this app's config."""
        kwargs.setdefault("config", self.config)
        return fan_out(method, units, path, json, **kwargs)

    def targets(self, unit: str, family: str = "workers", *, experiment: str | None = None,
                active_only: bool = True) -> list[str]:
        """:func:`resolve_units` against this app's database, its errors as API errors.

        Raises:
            ApiError: 400 unknown unit, 404 unknown experiment or no (active) worker assigned.
        """
        from reactorkit.api.unit.leader import resolve

        return resolve(unit, family, experiment=experiment, active_only=active_only, db=self._db())

    def enqueue(self, method: str, units: Iterable[str], path: str, json: Any = None,
                **kwargs: Any) -> dict[str, Any]:
        """:func:`enqueue_fan_out` on this app's unit's queue → the task envelope.

        Raises:
            ApiError: 503 when the task queue (Redis) cannot be reached.
        """
        try:
            return enqueue_fan_out(method, units, path, json, unit=self.unit, **kwargs)
        except Exception as exc:
            from redis.exceptions import RedisError

            from reactorkit.api.unit.common import unavailable_queue

            if isinstance(exc, RedisError):
                raise unavailable_queue(exc) from exc
            raise

    def respond(self, resp: Any, method: str, units: Iterable[str], path: str, json: Any = None,
                **kwargs: Any) -> None:
        """Queue the fan-out (:meth:`enqueue`) and answer 202 with the task envelope."""
        import falcon

        resp.media = self.enqueue(method, units, path, json, **kwargs)
        resp.status = falcon.HTTP_202


class UnknownUnit(LookupError):
    """The named unit is not a worker (or unit) of this cluster (routes answer 400, §1.1)."""


class UnknownExperiment(LookupError):
    """The experiment does not exist (routes answer 404)."""


class NoTargets(LookupError):
    """No active unit matches (e.g. nobody is assigned to the experiment; routes answer 404)."""


def resolve_units(unit: str, *, db: Any, family: str = "workers", experiment: str | None = None,
                  active_only: bool = True) -> list[str]:
    """Target units of a leader route.

    Args:
        unit: A unit name or ``$broadcast``.
        family: ``"workers"`` (``/api/workers/…``: the ``workers`` table) or
            ``"units"`` (``/api/units/…``: the leader plus the workers).
        experiment: Only workers assigned to it (every worker for
            ``$experiment``); with ``active_only`` only active ones (job runs, §8).
        active_only: Skip inactive workers (``$broadcast`` and experiment filters).
        db: The leader's ``LeaderDB`` (a route's ``context.leader_db``).

    Returns:
        Sorted unit names (never empty when ``experiment`` is given).

    Raises:
        UnknownUnit: ``unit`` is not in the family.
        UnknownExperiment: ``experiment`` does not exist.
        NoTargets: ``experiment`` given and no (active) worker matches.
    """
    known = _names(db.units()) if family == "units" else _names(db.workers(active_only=False))
    if unit != BROADCAST and unit not in known:
        raise UnknownUnit(f"{unit!r} is not one of this cluster's {family}: {', '.join(sorted(known)) or 'none'}")
    if experiment is None:
        if unit != BROADCAST:
            return [unit]
        if family == "units":
            return sorted(known)
        return sorted(_names(db.workers(active_only=True)) if active_only else known)
    if experiment != UNIVERSAL_EXPERIMENT and hasattr(db, "experiment_exists") and not db.experiment_exists(experiment):
        raise UnknownExperiment(f"experiment {experiment!r} does not exist")
    pool = set(_names(db.workers(active_only=active_only)))
    if experiment != UNIVERSAL_EXPERIMENT:
        try:
            assigned = db.assigned_workers(experiment, active_only=active_only)
        except TypeError:  # an implementation without the keyword
            assigned = db.assigned_workers(experiment)
        pool &= set(_names(assigned))
    targets = sorted(pool if unit == BROADCAST else pool & {unit})
    if not targets:
        state = "active and " if active_only else ""
        if unit == BROADCAST:
            raise NoTargets(f"no worker is {state}assigned to experiment {experiment!r}")
        raise NoTargets(f"{unit} is not {state}assigned to experiment {experiment!r}")
    return targets
