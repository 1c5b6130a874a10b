"""``?wait=<seconds>``: get an async operation's finished task in the same call.

Any request may add ``wait``; it matters for the async operations, the ones
answering ``202 {…, task_id, result_url_path}`` (§8). When such a response
leaves the responder, the task's state is polled in this unit's Redis (the
same reading as ``GET /unit_api/task_results/{task_id}``, see
:func:`reactorkit.api.unit.system.task_status`) until it has succeeded or
failed, or ``wait`` seconds have passed:

* finished in time → ``200`` with the task-results body (``status``
  ``succeeded`` with ``result``, or ``failed`` with ``error, cause, remediation``)
  plus the envelope's ``unit``;
* not finished → the usual ``202`` envelope, unchanged.

``wait`` is a number of seconds ≥ 0, cut to ``[ui] max_wait_seconds``
(default :data:`DEFAULT_MAX_WAIT_S`); anything else is a 400 naming ``wait``,
raised before the responder runs. Tasks queued on another unit (an envelope
whose ``unit`` is not this one) are not waited for.
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable

import falcon

from reactorkit.api.errors import ApiError

PARAM = "wait"
DEFAULT_MAX_WAIT_S = 60.0
POLL_INTERVAL_S = 0.05
MAX_POLL_INTERVAL_S = 0.25


def max_wait_s(config: Any) -> float:
    """``[ui] max_wait_seconds`` (default 60 s; non-numbers fall back to it)."""
    try:
        value = float(config.get("ui", "max_wait_seconds", fallback=str(DEFAULT_MAX_WAIT_S)))
    except (TypeError, ValueError):
        return DEFAULT_MAX_WAIT_S
    return value if math.isfinite(value) and value >= 0 else DEFAULT_MAX_WAIT_S


def parse_wait(req: falcon.Request, cap: float) -> float | None:
    """The request's ``wait`` in seconds, cut to ``cap``; None when absent.

    Raises:
        ApiError: 400 naming ``wait`` when it is not a number ≥ 0.
    """
    raw = req.params.get(PARAM)
    if isinstance(raw, list):
        raw = raw[-1]
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not math.isfinite(value) or value < 0:
        raise ApiError(falcon.HTTP_400, f"Invalid query parameter '{PARAM}'.",
                       cause=f"Query parameter '{PARAM}' must be a number of seconds ≥ 0, got {raw!r}.",
                       remediation=f"Send e.g. ?{PARAM}=10 (at most {cap:g} s are waited).")
    return min(value, cap)


def task_of(resp: falcon.Response, unit: str) -> str | None:
    """The task id of a 202 task envelope queued on ``unit``, else None."""
    if not str(resp.status).startswith("202"):
        return None
    media = resp.media
    if not isinstance(media, dict) or not isinstance(media.get("task_id"), str) or "result_url_path" not in media:
        return None
    if media.get("unit") not in (None, unit):
        return None
    return media["task_id"]


def wait_for(task_id: str, seconds: float) -> tuple[str, dict[str, Any]] | None:
    """``(status, body)`` of the task once it succeeded or failed within ``seconds``, else None."""
    from reactorkit.api.unit.system import task_status

    deadline = time.monotonic() + seconds
    interval = POLL_INTERVAL_S
    while True:
        status, body = task_status(task_id)
        if body.get("status") in ("succeeded", "partial", "failed"):
            return status, body
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        time.sleep(min(interval, left))
        interval = min(interval * 1.5, MAX_POLL_INTERVAL_S)


class WaitMiddleware:
    """Implements ``?wait=`` for every async operation (see the module docstring).

    Args:
        unit: This unit's name (tasks of other units are not waited for).
        cap: Longest wait, seconds, or ``() -> seconds`` asked at each request (the app's ``[ui] max_wait_seconds``
            as it is now).
    """

    def __init__(self, unit: str, cap: float | Callable[[], float]) -> None:
        self.unit = unit
        self._cap = cap if callable(cap) else (lambda: cap)

    @property
    def cap(self) -> float:
        return self._cap()

    def process_resource(self, req: falcon.Request, resp: falcon.Response, resource: Any,
                         params: dict[str, Any]) -> None:
        if PARAM in req.params:  # the cap (read from the config now) only for the requests that ask to wait
            req.context.wait_s = parse_wait(req, self.cap)

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource: Any,
                         req_succeeded: bool) -> None:
        seconds = getattr(req.context, "wait_s", None)
        if seconds is None or not req_succeeded:
            return
        task_id = task_of(resp, self.unit)
        if task_id is None:
            return
        try:
            finished = wait_for(task_id, seconds)
        except ApiError:
            return  # the queue became unreachable: the 202 still tells where to look
        if finished is None:
            return
        status, body = finished
        envelope = resp.media
        resp.status = status
        resp.media = {**({"unit": envelope["unit"]} if "unit" in envelope else {}), **body}
