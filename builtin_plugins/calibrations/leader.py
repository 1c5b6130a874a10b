"""Leader routes ``/api/workers/{pioreactor_unit}/…`` for calibrations and estimators (domain facts §1.2, §6.3, §6.5).

* Calibration, estimator and protocol routes fan out to the workers'
  ``/unit_api`` as async tasks (:mod:`reactorkit.api.fanout`): 202 with the
  task envelope; the task's ``result`` is ``{unit: envelope}``. GET fan-outs are
  cached for 10 s (the same task is answered again).
* Sessions are synchronous proxies to one worker (30 s; inputs 300 s);
  ``$broadcast`` → 400. The worker's status and body are passed through.
* ``zipped_calibrations`` merges the workers' ZIPs, each file under
  ``<unit>/``, into ``calibration_yamls.zip``.

An unknown unit → 400 (§1.1).
"""

from __future__ import annotations

import io
import logging
import threading
import time
import zipfile
from typing import Any

import falcon

from reactorkit.plugin import ApiError, RouteResource, fanout
from reactorkit.plugin import openapi as oa

logger = logging.getLogger("reactorkit.calibrations")

GET_CACHE_S = 10.0
SESSION_TIMEOUT_S = 30.0
SESSION_INPUTS_TIMEOUT_S = 300.0
ZIP_TIMEOUT_S = 10.0


class ReadCache:
    """An app's GET fan-out envelopes by ``(path, units)``, answered again for :data:`GET_CACHE_S` s; a write to
    any of the units drops their cached reads. Kept in the app's ``context.extensions``."""

    def __init__(self) -> None:
        self.entries: dict[tuple[str, tuple[str, ...]], tuple[float, dict[str, Any]]] = {}
        self.lock = threading.Lock()

    def get(self, key: tuple[str, tuple[str, ...]], now: float) -> dict[str, Any] | None:
        with self.lock:
            hit = self.entries.get(key)
        return hit[1] if hit and now - hit[0] < GET_CACHE_S else None

    def put(self, key: tuple[str, tuple[str, ...]], now: float, envelope: dict[str, Any]) -> None:
        with self.lock:
            self.entries[key] = (now, envelope)

    def drop(self, units: list[str]) -> None:
        with self.lock:
            for cached in [k for k in self.entries if k[1] == tuple(units) or set(k[1]) & set(units)]:
                self.entries.pop(cached, None)


def read_cache(context: Any) -> ReadCache:
    """The app's :class:`ReadCache` (one per app)."""
    found = context.extensions.get("calibrations.read_cache")
    if found is None:
        found = context.extensions.setdefault("calibrations.read_cache", ReadCache())
    return found


def targets(context: Any, unit: str, *, allow_broadcast: bool = True) -> list[str]:
    """Workers a route addresses, from the app's leader database (``context``: the app's
    :class:`~reactorkit.plugin.AppContext`); 400 for an unknown unit (or ``$broadcast`` when not allowed)."""
    if unit == fanout.BROADCAST and not allow_broadcast:
        raise ApiError(falcon.HTTP_400, "$broadcast is not supported here.",
                       cause="Calibration sessions run on one worker at a time.",
                       remediation="Name one worker in the path.")
    try:
        return fanout.resolve_units(unit, db=context.leader_db, family="workers")
    except fanout.UnknownUnit as exc:
        raise ApiError(falcon.HTTP_400, f"Unknown unit {unit!r}.", cause=str(exc),
                       remediation="Use a worker listed by GET /api/workers, or $broadcast.") from None


def _enqueue(context: Any, resp: falcon.Response, method: str, units: list[str], path: str, body: Any = None) -> None:
    cache, key, now = read_cache(context), (path, tuple(units)), time.monotonic()
    envelope = cache.get(key, now) if method == "GET" else None
    if envelope is None:
        envelope = context.fanout.enqueue(method, units, path, body)  # 503 when the task queue is unreachable
        if method == "GET":
            cache.put(key, now, envelope)
        else:  # a write makes cached reads of the same units stale
            cache.drop(units)
    resp.status = falcon.HTTP_202
    resp.media = envelope


class FanOut(RouteResource):
    """A leader route that fans ``/api/workers/{u}<suffix>`` out to ``/unit_api<suffix>`` of the targets.

    Args:
        context: The app's context (its leader database and fan-out client).
        suffix: Path after the unit, with ``{field}`` placeholders of the route, e.g. ``"/calibrations/{device}"``.
    """

    suffix = ""

    def __init__(self, context: Any = None, suffix: str | None = None) -> None:
        super().__init__(context)
        if suffix is not None:
            self.suffix = suffix

    def _path(self, fields: dict[str, str]) -> str:
        from urllib.parse import quote

        return "/unit_api" + self.suffix.format(**{k: quote(v, safe="") for k, v in fields.items()})

    def _send(self, resp: falcon.Response, method: str, unit: str, fields: dict[str, str], body: Any = None) -> None:
        _enqueue(self.context, resp, method, targets(self.context, unit), self._path(fields), body)

    def on_get(self, req: falcon.Request, resp: falcon.Response, pioreactor_unit: str, **fields: str) -> None:
        self._send(resp, "GET", pioreactor_unit, fields)

    def on_post(self, req: falcon.Request, resp: falcon.Response, pioreactor_unit: str, **fields: str) -> None:
        from reactorkit.builtin_plugins.calibrations.resources import _body

        self._send(resp, "POST", pioreactor_unit, fields, _body(req))

    def on_patch(self, req: falcon.Request, resp: falcon.Response, pioreactor_unit: str, **fields: str) -> None:
        self._send(resp, "PATCH", pioreactor_unit, fields)

    def on_delete(self, req: falcon.Request, resp: falcon.Response, pioreactor_unit: str, **fields: str) -> None:
        self._send(resp, "DELETE", pioreactor_unit, fields)


def fan_out_class(suffix: str, *methods: str) -> type:
    """A resource class (built with the app's context) for ``suffix`` answering only ``methods``
    (``"get"``, ``"post"`` …)."""
    body: dict[str, Any] = {"__doc__": f"``/api/workers/{{pioreactor_unit}}{suffix}`` → ``/unit_api{suffix}`` "
                                       f"({', '.join(m.upper() for m in methods)}).",
                            "suffix": suffix}
    for method in methods:
        body[f"on_{method}"] = getattr(FanOut, f"on_{method}")
    return type("FanOut", (RouteResource,), {**body, "__init__": RouteResource.__init__, "_path": FanOut._path,
                                             "_send": FanOut._send})


ProtocolsFanOut = fan_out_class("/calibration_protocols", "get")
CalibrationsFanOut = fan_out_class("/calibrations", "get")
DeviceCalibrationsFanOut = fan_out_class("/calibrations/{device}", "get", "post")
CalibrationFanOut = fan_out_class("/calibrations/{device}/{name}", "get", "delete")
ActiveCalibrationsFanOut = fan_out_class("/active_calibrations", "get")
ActiveCalibrationDeviceFanOut = fan_out_class("/active_calibrations/{device}", "delete")
SetActiveCalibrationFanOut = fan_out_class("/active_calibrations/{device}/{name}", "patch")
EstimatorsFanOut = fan_out_class("/estimators", "get")
DeviceEstimatorsFanOut = fan_out_class("/estimators/{device}", "get")
EstimatorFanOut = fan_out_class("/estimators/{device}/{name}", "get", "delete")
ActiveEstimatorsFanOut = fan_out_class("/active_estimators", "get")
ActiveEstimatorDeviceFanOut = fan_out_class("/active_estimators/{device}", "delete")
SetActiveEstimatorFanOut = fan_out_class("/active_estimators/{device}/{name}", "patch")


# ----------------------------------------------------------------------- sessions


def proxy(resp: falcon.Response, unit: str, method: str, path: str, body: Any = None,
          timeout: float = SESSION_TIMEOUT_S) -> None:
    """Call ``unit``'s ``path`` synchronously and pass its status and JSON body through.

    Raises:
        ApiError: 502 when the worker cannot be reached or answers something that is not JSON.
    """
    import httpx

    from reactorkit.plugin import unit_url
    from reactorkit.plugin import cluster_headers

    url = unit_url(unit) + path
    try:
        with httpx.Client(timeout=timeout, headers=cluster_headers()) as client:
            reply = client.request(method, url, json=body)
    except httpx.HTTPError as exc:
        raise ApiError(falcon.HTTP_502, f"Could not {method} to {unit}'s {path}.",
                       cause=f"{type(exc).__name__}: {exc}",
                       remediation=f"Check that {unit} is powered on and serving /unit_api.") from None
    try:
        payload = reply.json()
    except ValueError:
        raise ApiError(falcon.HTTP_502, f"{unit}'s reply to {method} {path} is not JSON.",
                       cause=f"HTTP {reply.status_code}") from None
    resp.status = falcon.code_to_http_status(reply.status_code)
    resp.media = payload


class SessionsProxy(RouteResource):
    """``POST /api/workers/{u}/calibrations/sessions`` → the worker's ``/unit_api/calibrations/sessions`` (30 s)."""

    def on_post(self, req: falcon.Request, resp: falcon.Response, pioreactor_unit: str) -> None:
        from reactorkit.builtin_plugins.calibrations.resources import _body

        body = _body(req)
        unit = targets(self.context, pioreactor_unit, allow_broadcast=False)[0]
        proxy(resp, unit, "POST", "/unit_api/calibrations/sessions", body)


class SessionProxy(RouteResource):
    """``GET /api/workers/{u}/calibrations/sessions/{session_id}`` (30 s)."""

    def on_get(self, req: falcon.Request, resp: falcon.Response, pioreactor_unit: str, session_id: str) -> None:
        from urllib.parse import quote

        unit = targets(self.context, pioreactor_unit, allow_broadcast=False)[0]
        proxy(resp, unit, "GET", f"/unit_api/calibrations/sessions/{quote(session_id, safe='')}")


class SessionInputsProxy(RouteResource):
    """``POST /api/workers/{u}/calibrations/sessions/{session_id}/inputs`` (300 s: steps may run hardware)."""

    def on_post(self, req: falcon.Request, resp: falcon.Response, pioreactor_unit: str, session_id: str) -> None:
        from urllib.parse import quote

        from reactorkit.builtin_plugins.calibrations.resources import _body

        body = _body(req)
        unit = targets(self.context, pioreactor_unit, allow_broadcast=False)[0]
        proxy(resp, unit, "POST", f"/unit_api/calibrations/sessions/{quote(session_id, safe='')}/inputs", body,
              timeout=SESSION_INPUTS_TIMEOUT_S)


class SessionAbortProxy(RouteResource):
    """``POST /api/workers/{u}/calibrations/sessions/{session_id}/abort`` (30 s)."""

    def on_post(self, req: falcon.Request, resp: falcon.Response, pioreactor_unit: str, session_id: str) -> None:
        from urllib.parse import quote

        unit = targets(self.context, pioreactor_unit, allow_broadcast=False)[0]
        proxy(resp, unit, "POST", f"/unit_api/calibrations/sessions/{quote(session_id, safe='')}/abort")


# -------------------------------------------------------------------------- zips


def merge_zips(archives: dict[str, bytes]) -> bytes:
    """One ZIP holding every member of ``archives[unit]`` under ``<unit>/``; unreadable archives are skipped."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as merged:
        for unit in sorted(archives):
            try:
                with zipfile.ZipFile(io.BytesIO(archives[unit])) as source:
                    for info in source.infolist():
                        if info.is_dir() or info.filename.startswith("/") or ".." in info.filename.split("/"):
                            continue
                        merged.writestr(f"{unit}/{info.filename}", source.read(info))
            except zipfile.BadZipFile:
                logger.warning("zipped calibrations of %s are not a ZIP; skipped", unit)
    return buffer.getvalue()


class ZippedCalibrationsProxy(RouteResource):
    """``GET /api/workers/{u}/zipped_calibrations`` → ``calibration_yamls.zip`` (``<unit>/<device>/<name>.yaml``)."""

    def on_get(self, req: falcon.Request, resp: falcon.Response, pioreactor_unit: str) -> None:
        import httpx

        from reactorkit.plugin import unit_url
        from reactorkit.plugin import cluster_headers

        archives: dict[str, bytes] = {}
        with httpx.Client(timeout=ZIP_TIMEOUT_S, headers=cluster_headers()) as client:
            for unit in targets(self.context, pioreactor_unit):
                try:
                    reply = client.get(unit_url(unit) + "/unit_api/zipped_calibrations")
                except httpx.HTTPError as exc:
                    logger.warning("could not fetch zipped calibrations of %s: %s", unit, exc)
                    continue
                if reply.status_code == 200:
                    archives[unit] = reply.content
        resp.content_type = "application/zip"
        resp.downloadable_as = "calibration_yamls.zip"
        resp.data = merge_zips(archives)


# ------------------------------------------------------------------------ OpenAPI
def _operations() -> dict[tuple[str, str], dict[str, Any]]:
    from reactorkit.builtin_plugins.calibrations.resources import (
        NEW_CALIBRATION,
        RECORD,
        SESSION_INPUTS,
        SESSION_REPLY,
        SESSION_START,
    )

    w = "/api/workers/{pioreactor_unit}"
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for kind in ("calibrations", "estimators"):
        one = kind[:-1]
        out.update({
            ("GET", f"{w}/{kind}"): oa.fan_out(f"Every {one} of the workers.", oa.mapping(oa.array(RECORD))),
            ("GET", f"{w}/{kind}/{{device}}"): oa.fan_out(f"The workers' {kind} of a device.", oa.array(RECORD)),
            ("GET", f"{w}/{kind}/{{device}}/{{name}}"): oa.fan_out(f"One {one} on the workers.", RECORD),
            ("DELETE", f"{w}/{kind}/{{device}}/{{name}}"): oa.fan_out(f"Delete one {one} on the workers."),
            ("GET", f"{w}/active_{kind}"): oa.fan_out(f"The workers' active {kind}.", oa.mapping(RECORD)),
            ("DELETE", f"{w}/active_{kind}/{{device}}"): oa.fan_out(f"No active {one} for the device on the workers."),
            ("PATCH", f"{w}/active_{kind}/{{device}}/{{name}}"): oa.fan_out(f"Activate a {one} on the workers."),
        })
    out.update({
        ("GET", f"{w}/calibration_protocols"): oa.fan_out("Calibration protocols of the workers.", oa.array(oa.OBJ)),
        ("POST", f"{w}/calibrations/{{device}}"): oa.fan_out("Store a calibration on the workers.",
                                                             body=NEW_CALIBRATION, body_required=True),
        ("GET", f"{w}/zipped_calibrations"): oa.op(
            "The workers' calibrations in one ZIP (<unit>/<device>/<name>.yaml).", ok=oa.ZIP),
        ("POST", f"{w}/calibrations/sessions"): oa.op("Start a session on one worker (synchronous proxy).",
                                                      ok=SESSION_REPLY, status=201, body=SESSION_START,
                                                      body_required=True, proxy=True),
        ("GET", f"{w}/calibrations/sessions/{{session_id}}"): oa.op("A worker's session.", ok=SESSION_REPLY,
                                                                    proxy=True),
        ("POST", f"{w}/calibrations/sessions/{{session_id}}/inputs"): oa.op(
            "Submit inputs to a worker's session.", ok=SESSION_REPLY, body=SESSION_INPUTS, proxy=True),
        ("POST", f"{w}/calibrations/sessions/{{session_id}}/abort"): oa.op("Abort a worker's session.",
                                                                           ok=SESSION_REPLY, proxy=True),
    })
    return out


OPENAPI = _operations()
"""The operation descriptions of this module's routes, keyed by (METHOD, path) (``RouteDescriptor(schemas=…)``)."""
