"""``/unit_api`` resources for calibrations, estimators, protocols and sessions (domain facts §6.3–6.5).

Calibrations (``kind = calibrations``) and estimators (``kind = estimators``)
share one implementation: listing adds ``is_active`` and ``pioreactor_unit``
to each stored record (estimators also ``device``). Errors use the contract's
shape through :class:`reactorkit.api.errors.ApiError`: invalid names, YAML or
records → 400 naming the field; unknown files/sessions → 404.
"""

from __future__ import annotations

import io
import zipfile
from typing import Any, Callable

import falcon

from reactorkit.builtin_plugins.calibrations import protocols
from reactorkit.plugin import ApiError, CalibrationError, RouteResource
from reactorkit.plugin import openapi as oa
from reactorkit.plugin import calibration_store as store
from reactorkit.plugin import get_unit_name


def _invalid(exc: store.InvalidCalibration) -> ApiError:
    field = f" (field {exc.field!r})" if exc.field else ""
    return ApiError(falcon.HTTP_400, f"Invalid calibration data{field}.", cause=str(exc),
                    remediation="Fix the named field and send the request again.")


def _not_found(exc: Exception) -> ApiError:
    return ApiError(falcon.HTTP_404, str(exc).rstrip(".") + ".", cause=str(exc),
                    remediation="List what exists with GET /unit_api/calibrations or /unit_api/estimators.")


def _engine_error(exc: CalibrationError) -> ApiError:
    status = falcon.HTTP_404 if exc.status == 404 else falcon.HTTP_400
    return ApiError(status, exc.error, cause=exc.cause, remediation=exc.remediation)


def _body(req: falcon.Request) -> dict[str, Any]:
    try:
        body = req.get_media(default_when_empty={})
    except falcon.HTTPError:
        raise ApiError(falcon.HTTP_400, "Invalid request body.", cause="The body is not valid JSON.",
                       remediation="Send a JSON object.") from None
    if not isinstance(body, dict):
        raise ApiError(falcon.HTTP_400, "Invalid request body.", cause="The body must be a JSON object.",
                       remediation="Send a JSON object.")
    return body


class _Kind:
    """The store functions of calibrations or estimators."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        est = kind == "estimators"
        self.name_field = "estimator_name" if est else "calibration_name"
        self.list: Callable[..., Any] = store.list_estimators if est else store.list_calibrations
        self.load = store.load_estimator if est else store.load_calibration
        self.delete = store.delete_estimator if est else store.delete_calibration
        self.set_active = store.set_active_estimator if est else store.set_active
        self.clear_active = store.clear_active_estimator if est else store.clear_active
        self.active_names = store.active_estimators if est else store.active_calibrations
        self.save_yaml = store.save_estimator_yaml if est else store.save_calibration_yaml
        self.singular = "Estimator" if est else "Calibration"

    def decorate(self, device: str, record: dict[str, Any], active: dict[str, str]) -> dict[str, Any]:
        out = dict(record)
        out["is_active"] = active.get(device) == record.get(self.name_field)
        out["pioreactor_unit"] = get_unit_name()
        if self.kind == "estimators":
            out["device"] = device
        return out

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except store.InvalidCalibration as exc:
            raise _invalid(exc) from None
        except store.CalibrationNotFound as exc:
            raise _not_found(exc) from None


CAL, EST = _Kind("calibrations"), _Kind("estimators")


class AllRecords:
    """``GET /unit_api/{calibrations|estimators}`` → ``{device: [record + is_active + pioreactor_unit]}``."""

    kind = CAL

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        active = self.kind.active_names()
        everything = self.kind.call(self.kind.list)
        resp.media = {device: [self.kind.decorate(device, r, active) for r in records]
                      for device, records in everything.items()}


class AllEstimators(AllRecords):
    kind = EST


class DeviceEstimators:
    """``GET /unit_api/{kind}/{device}`` → list of records (empty for an unknown device)."""

    kind = EST

    def on_get(self, req: falcon.Request, resp: falcon.Response, device: str) -> None:
        active = self.kind.active_names()
        records = self.kind.call(self.kind.list, device)
        resp.media = [self.kind.decorate(device, r, active) for r in records]


class DeviceRecords(DeviceEstimators):
    """``GET /unit_api/calibrations/{device}`` → list; ``POST`` creates one."""

    kind = CAL

    def on_post(self, req: falcon.Request, resp: falcon.Response, device: str) -> None:
        """201 ``{msg, path}``; the YAML text is stored verbatim. 400: invalid YAML, record, or set_as_active."""
        body = _body(req)
        data = body.get("calibration_data", body.get("estimator_data"))
        if isinstance(data, dict):
            import yaml

            data = yaml.safe_dump(data, sort_keys=False)
        if not isinstance(data, str) or not data.strip():
            raise ApiError(falcon.HTTP_400, "Missing calibration_data.",
                           cause="calibration_data must be the calibration as YAML text.",
                           remediation="Send {\"calibration_data\": \"<yaml>\", \"set_as_active\": false}.")
        set_as_active = body.get("set_as_active", False)
        if not isinstance(set_as_active, bool):
            raise ApiError(falcon.HTTP_400, "Invalid set_as_active.", cause="set_as_active must be true or false.")
        path = self.kind.call(self.kind.save_yaml, device, data, set_as_active)
        resp.status = falcon.HTTP_201
        resp.media = {"msg": f"{self.kind.singular} created successfully.", "path": str(path)}


class OneRecord:
    """``GET|DELETE /unit_api/{kind}/{device}/{name}``."""

    kind = CAL

    def on_get(self, req: falcon.Request, resp: falcon.Response, device: str, name: str) -> None:
        record = self.kind.call(self.kind.load, device, name)
        resp.media = self.kind.decorate(device, record, self.kind.active_names())

    def on_delete(self, req: falcon.Request, resp: falcon.Response, device: str, name: str) -> None:
        self.kind.call(self.kind.delete, device, name)
        resp.media = {"msg": f"{self.kind.singular} '{name}' for device '{device}' deleted successfully."}


class OneEstimator(OneRecord):
    kind = EST


class ActiveRecords:
    """``GET /unit_api/active_{kind}`` → ``{device: record + is_active + pioreactor_unit}``."""

    kind = CAL

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        active = self.kind.active_names()
        out = {}
        for device, name in active.items():
            try:
                out[device] = self.kind.decorate(device, self.kind.load(device, name), active)
            except (store.CalibrationNotFound, store.InvalidCalibration):
                continue  # a pointer to a missing or broken file is not served
        resp.media = out


class ActiveEstimators(ActiveRecords):
    kind = EST


class ActiveDevice:
    """``DELETE /unit_api/active_{kind}/{device}`` → ``{"status": "success"}``."""

    kind = CAL

    def on_delete(self, req: falcon.Request, resp: falcon.Response, device: str) -> None:
        self.kind.call(self.kind.clear_active, device)
        resp.media = {"status": "success"}


class ActiveEstimatorDevice(ActiveDevice):
    kind = EST


class SetActive:
    """``PATCH /unit_api/active_{kind}/{device}/{name}`` → ``{"status": "success"}``; 404 without the file."""

    kind = CAL

    def on_patch(self, req: falcon.Request, resp: falcon.Response, device: str, name: str) -> None:
        self.kind.call(self.kind.set_active, device, name)
        resp.media = {"status": "success"}


class SetActiveEstimator(SetActive):
    kind = EST


class ZippedCalibrations:
    """``GET /unit_api/zipped_calibrations``: every calibration YAML as ``<device>/<name>.yaml`` in a ZIP."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        from reactorkit.plugin import dot_pioreactor

        root = dot_pioreactor() / "storage" / "calibrations"
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            if root.is_dir():
                for path in sorted(root.glob("*/*.yaml")):
                    if path.is_file() and not path.is_symlink():
                        archive.write(path, f"{path.parent.name}/{path.name}")
        resp.content_type = "application/zip"
        resp.downloadable_as = "calibrations.zip"
        resp.data = buffer.getvalue()


class CalibrationProtocols(RouteResource):
    """``GET /unit_api/calibration_protocols`` → the app's registry's protocols sorted by (device, priority,
    title)."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = protocols.protocol_dicts(self.context.registry)


# ----------------------------------------------------------------------- sessions


def _session_reply(resp: falcon.Response, session: dict[str, Any], step: dict[str, Any] | None) -> None:
    resp.media = {"session": session, "step": step}


class _SessionRoute(RouteResource):
    """A session route: its engine runs the protocols of the app's registry, for the app's unit and config."""

    def engine(self) -> Any:
        return protocols.make_engine(self.context.registry, unit=self.context.unit, config=self.context.config)


class Sessions(_SessionRoute):
    """``POST /unit_api/calibrations/sessions {target_device, protocol_name}`` → 201 ``{session, step}``."""

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = _body(req)
        try:
            session, step = self.engine().start(body.get("target_device"), body.get("protocol_name"))
        except CalibrationError as exc:
            raise _engine_error(exc) from None
        resp.status = falcon.HTTP_201
        _session_reply(resp, session, step)


class Session(_SessionRoute):
    """``GET /unit_api/calibrations/sessions/{session_id}`` → ``{session, step}``; 404 unknown."""

    def on_get(self, req: falcon.Request, resp: falcon.Response, session_id: str) -> None:
        try:
            session, step = self.engine().get(session_id)
        except CalibrationError as exc:
            raise _engine_error(exc) from None
        _session_reply(resp, session, step)


class SessionInputs(_SessionRoute):
    """``POST …/sessions/{session_id}/inputs {inputs}`` → ``{session, step}``; 400 keeps the session unchanged."""

    def on_post(self, req: falcon.Request, resp: falcon.Response, session_id: str) -> None:
        body = _body(req)
        try:
            session, step = self.engine().advance(session_id, body.get("inputs") or {})
        except CalibrationError as exc:
            raise _engine_error(exc) from None
        _session_reply(resp, session, step)


class SessionAbort(_SessionRoute):
    """``POST …/sessions/{session_id}/abort`` → ``{session (status aborted), step}``."""

    def on_post(self, req: falcon.Request, resp: falcon.Response, session_id: str) -> None:
        try:
            session, step = self.engine().abort(session_id)
        except CalibrationError as exc:
            raise _engine_error(exc) from None
        _session_reply(resp, session, step)


# ------------------------------------------------------------------------ OpenAPI
# The operation descriptions of the routes above, keyed by (METHOD, path); every route's descriptor names this
# table (``RouteDescriptor(schemas=…)``) and the API's OpenAPI document takes each route's entries from it.
RECORD = oa.obj(("is_active", "pioreactor_unit"), is_active=oa.BOOL, pioreactor_unit=oa.STR,
                _doc="A stored calibration or estimator, with is_active and pioreactor_unit.")
SESSION_REPLY = oa.obj(
    ("session", "step"),
    session=oa.obj(("session_id", "status"), session_id=oa.STR, protocol_name=oa.STR, target_device=oa.STR,
                   status=oa.STR, step_id=oa.STR, data=oa.ANY, created_at=oa.STR, updated_at=oa.STR, result=oa.ANY,
                   error=oa.ANY),
    step=oa.nullable(oa.obj(("step_id",), step_id=oa.STR, step_type=oa.STR, title=oa.nullable(oa.STR),
                            body=oa.nullable(oa.STR), fields=oa.array(oa.OBJ), metadata=oa.ANY)),
)
MSG = oa.obj(("msg",), msg=oa.STR)
NEW_CALIBRATION = oa.obj(
    calibration_data={"type": ["string", "object"], "description": "The calibration as YAML text (or an object)."},
    estimator_data={"type": ["string", "object"]},
    set_as_active=oa.BOOL,
)
SESSION_START = oa.obj(target_device=oa.STR, protocol_name=oa.STR)  # missing names: the engine says which (400)
SESSION_INPUTS = oa.obj(inputs=oa.nullable(oa.OBJ))


def _operations() -> dict[tuple[str, str], dict[str, Any]]:
    out: dict[tuple[str, str], dict[str, Any]] = {
        ("GET", "/unit_api/calibration_protocols"): oa.op("Calibration protocols of this unit.", ok=oa.array(oa.OBJ)),
        ("GET", "/unit_api/zipped_calibrations"): oa.op("Every calibration YAML in a ZIP.", ok=oa.ZIP),
        ("POST", "/unit_api/calibrations/sessions"): oa.op("Start a calibration session.", ok=SESSION_REPLY,
                                                           status=201, body=SESSION_START, body_required=True),
        ("GET", "/unit_api/calibrations/sessions/{session_id}"): oa.op("A session and its current step.",
                                                                       ok=SESSION_REPLY),
        ("POST", "/unit_api/calibrations/sessions/{session_id}/inputs"): oa.op(
            "Submit the current step's inputs (400 leaves the session unchanged).", ok=SESSION_REPLY,
            body=SESSION_INPUTS),
        ("POST", "/unit_api/calibrations/sessions/{session_id}/abort"): oa.op("Abort a session.", ok=SESSION_REPLY),
        ("POST", "/unit_api/calibrations/{device}"): oa.op("Store a calibration (YAML) for a device.", status=201,
                                                           ok=oa.obj(("msg",), msg=oa.STR, path=oa.STR),
                                                           body=NEW_CALIBRATION, body_required=True),
    }
    for kind in ("calibrations", "estimators"):
        one = kind[:-1]
        out.update({
            ("GET", f"/unit_api/{kind}"): oa.op(f"Every {one} by device.", ok=oa.mapping(oa.array(RECORD))),
            ("GET", f"/unit_api/{kind}/{{device}}"): oa.op(f"The {kind} of a device.", ok=oa.array(RECORD)),
            ("GET", f"/unit_api/{kind}/{{device}}/{{name}}"): oa.op(f"One {one}.", ok=RECORD),
            ("DELETE", f"/unit_api/{kind}/{{device}}/{{name}}"): oa.op(f"Delete one {one}.", ok=MSG),
            ("GET", f"/unit_api/active_{kind}"): oa.op(f"The active {one} of each device.", ok=oa.mapping(RECORD)),
            ("DELETE", f"/unit_api/active_{kind}/{{device}}"): oa.op(f"No active {one} for the device.",
                                                                     ok=oa.STATUS),
            ("PATCH", f"/unit_api/active_{kind}/{{device}}/{{name}}"): oa.op(
                f"Make a {one} the device's active one.", ok=oa.STATUS),
        })
    return out


OPENAPI = _operations()
