"""Leader routes for exportable datasets (domain facts §5, §11).

* ``GET /api/datasets/exportable/{name}/preview?n_rows=5`` (≤ 100, unfiltered) → rows as objects;
* ``POST /api/datasets/exportable/export {datasets, experiments|experiment, partition_by_unit,
  partition_by_experiment, start_time?, end_time?}`` → 202 task; its result names the zip;
* ``POST /api/datasets/exportable/export-to-usb`` (same body) → 202 task writing
  the zip onto the leader's mounted USB drive (409 when there is none);
* ``GET /api/exports/{filename}`` → the zip (``application/zip``);
* classic ``/api/contrib/exportable_datasets/{name}/preview`` and
  ``POST /api/contrib/exportable_datasets/export_datasets`` (waits for the task and
  answers 200 with its result, as the classic route did).

The dataset listing (``/api/datasets/exportable``) is served by the core routes.
"""

from __future__ import annotations

import time
from typing import Any

import falcon

from reactorkit.plugin import ApiError, AppContext, RouteResource, enqueue_task, invalid, read_body
from reactorkit.plugin import openapi as oa

ALL_EXPERIMENTS = "<All experiments>"
MAX_PREVIEW_ROWS = 100
CLASSIC_WAIT_S = 600.0
TASK = "reactorkit.builtin_plugins.exports.tasks.export_datasets"
USB_TASK = "reactorkit.builtin_plugins.exports.tasks.export_datasets_to_usb"
#: Datasets only an ``admin`` token may read or export (the audit trail names tokens and every change made).
ADMIN_DATASETS = frozenset({"audit_log"})


def require_dataset_scope(req: falcon.Request, names: list[str] | tuple[str, ...]) -> None:
    """Refuse a preview or export of an admin-only dataset (:data:`ADMIN_DATASETS`) to a smaller scope.

    The caller's scope is the one the API's auth middleware recorded on the request
    (``req.context.token``); with authentication off every caller counts as ``admin``.

    Raises:
        ApiError: 403 naming the dataset and the scope it needs.
    """
    guarded = sorted(set(names) & ADMIN_DATASETS)
    if not guarded:
        return
    record = getattr(req.context, "token", None)
    scope = getattr(record, "scope", None) or ("admin" if getattr(req.context, "auth", "") == "off" else None)
    if scope != "admin":
        raise ApiError(falcon.HTTP_403, f"Dataset {guarded[0]!r} needs an admin token.",
                       cause=f"The token's scope is {scope or 'none'}; {', '.join(guarded)} can be read by admin only.",
                       remediation="Leave it out of the request, or use a token created with --scope admin.")


def _dataset(context: AppContext, name: str) -> Any:
    dataset = context.registry.datasets.get(name)
    if dataset is None:
        raise ApiError(falcon.HTTP_404, f"Unknown dataset {name!r}.",
                       cause=f"No installed plugin registers a dataset named {name!r}.",
                       remediation="See GET /api/datasets/exportable for the dataset names.")
    return dataset


class Preview(RouteResource):
    """``GET …/exportable/{target_dataset}/preview?n_rows=5``: the first rows, unfiltered."""

    def on_get(self, req: falcon.Request, resp: falcon.Response, target_dataset: str) -> None:
        from .writer import source_exists, source_sql

        dataset = _dataset(self.context, target_dataset)
        require_dataset_scope(req, [target_dataset])
        raw = req.get_param("n_rows", default="5")
        try:
            n_rows = int(raw)
        except ValueError:
            raise ApiError(falcon.HTTP_400, "Invalid n_rows.", cause=f"n_rows must be an integer, got {raw!r}.",
                           remediation=f"Use 1 to {MAX_PREVIEW_ROWS}.") from None
        if not 1 <= n_rows <= MAX_PREVIEW_ROWS:
            raise ApiError(falcon.HTTP_400, "Invalid n_rows.", cause=f"n_rows must be 1 to {MAX_PREVIEW_ROWS}, got {n_rows}.",
                           remediation=f"Use 1 to {MAX_PREVIEW_ROWS}.")
        db = self.context.leader_db
        if not source_exists(db.conn, dataset):
            resp.media = []
            return
        import sqlite3

        try:
            rows = db.query(f"SELECT * FROM {source_sql(dataset)} AS T LIMIT ?", (n_rows,))
        except sqlite3.Error as exc:
            raise ApiError(falcon.HTTP_500, f"Dataset {target_dataset!r} cannot be read.", cause=str(exc),
                           remediation="Report it to the plugin's author.") from None
        resp.media = [{k: (v.decode("utf-8", errors="replace") if isinstance(v, bytes) else v) for k, v in r.items()}
                      for r in rows]


def _utc(body: dict[str, Any], name: str) -> str | None:
    from reactorkit.plugin import parse_iso, utc_iso_ms

    value = body.get(name)  # a string or null: checked by the schema middleware
    if value is None or value == "":
        return None
    text = value.strip()
    if not (text.endswith(("Z", "z")) or (len(text) > 6 and text[-6] in "+-" and text[-3] == ":")):
        raise invalid(f"Field '{name}' needs a time zone (Z or ±HH:MM), got {value!r}.",
                      'Example: "2026-01-01T00:00:00Z".')
    try:
        return utc_iso_ms(parse_iso(text))
    except ValueError:
        raise invalid(f"Field '{name}' must be an ISO-8601 time, got {value!r}.", 'Example: "2026-01-01T00:00:00Z".') \
            from None


def export_request(body: dict[str, Any], known: Any) -> dict[str, Any]:
    """An export body (its fields' types, ``datasets`` and the two partition flags checked by the schema
    middleware, ``EXPORT_BODY``) as the task's keyword arguments.

    Args:
        body: The request body.
        known: The installed datasets by name (the app's ``registry.datasets``).

    Raises:
        ApiError: 400 naming the field: an empty dataset name, no experiments, a time without its zone,
            a window that ends before it starts; none of the datasets installed.
    """
    datasets = body["datasets"]
    if not all(datasets):
        raise invalid("Field 'datasets' must be a non-empty list of dataset names.",
                      'Example: {"datasets": ["od_readings"], …}; see GET /api/datasets/exportable.')
    if "experiments" in body:
        experiments = body["experiments"]
    elif "experiment" in body:
        experiments = [body["experiment"]] if body["experiment"] else []
    else:
        raise invalid("Field 'experiments' is required.", f'Give a list of experiments, or ["{ALL_EXPERIMENTS}"].')
    if ALL_EXPERIMENTS in experiments:
        experiments = []
    flags = {name: body[name] for name in ("partition_by_unit", "partition_by_experiment")}
    start, end = _utc(body, "start_time"), _utc(body, "end_time")
    if start and end and start > end:
        raise invalid("Field 'start_time' is after 'end_time'.", "Swap them or widen the window.")
    if not any(d in known for d in datasets):
        raise ApiError(falcon.HTTP_400, "None of the requested datasets exist.",
                       cause=f"Unknown: {', '.join(datasets)}.", remediation="See GET /api/datasets/exportable.")
    return {"datasets": list(datasets), "experiments": list(experiments), **flags, "start_time": start,
            "end_time": end}


class Export(RouteResource):
    """``POST /api/datasets/exportable/export`` → 202 task (result ``{result, filename, msg, …}``)."""

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        from reactorkit.plugin import get_unit_name

        kwargs = export_request(read_body(req), self.context.registry.datasets)
        require_dataset_scope(req, kwargs["datasets"])
        enqueue_task(resp, get_unit_name(), TASK, timeout_s=3600, **kwargs)


class ExportToUsb(RouteResource):
    """``POST /api/datasets/exportable/export-to-usb`` (body as ``…/export``) → 202 task writing the zip onto the
    leader's mounted USB drive (result ``{result, filename, msg, drive, path, …}``).

    409 at once when the leader has no writable USB drive mounted (the task checks again when it runs).
    """

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        from reactorkit.builtin_plugins.system.usb import writable_drive
        from reactorkit.plugin import get_unit_name

        kwargs = export_request(read_body(req), self.context.registry.datasets)
        require_dataset_scope(req, kwargs["datasets"])
        if writable_drive() is None:
            raise ApiError(falcon.HTTP_409, "No USB drive to export to.",
                           cause="No writable USB drive is mounted on the leader.",
                           remediation="Plug a USB drive into the leader and mount it (POST "
                                       "/api/units/<leader>/usb/mount), or download the zip with POST "
                                       "/api/datasets/exportable/export instead.")
        enqueue_task(resp, get_unit_name(), USB_TASK, timeout_s=3600, **kwargs)


class ClassicExport(Export):
    """``POST /api/contrib/exportable_datasets/export_datasets``: waits for the export → 200 ``{result, filename, msg}``."""

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        from reactorkit.plugin import task_status

        super().on_post(req, resp)
        task_id = resp.media["task_id"]
        deadline = time.monotonic() + CLASSIC_WAIT_S
        while True:
            status, body = task_status(task_id)
            if body["status"] == "succeeded":
                resp.status, resp.media = falcon.HTTP_200, body["result"]
                return
            if body["status"] == "failed":
                raise ApiError(falcon.HTTP_500, body["error"], cause=body.get("cause"),
                               remediation=body.get("remediation"))
            if time.monotonic() > deadline:
                raise ApiError(falcon.HTTP_504, "The export is taking too long.",
                               cause=f"Task {task_id} is still {body['status']}.",
                               remediation=f"Poll {body['result_url_path']} for its result.")
            time.sleep(0.25)


class Download:
    """``GET /api/exports/{filename}``: a finished export zip."""

    def on_get(self, req: falcon.Request, resp: falcon.Response, filename: str) -> None:
        from reactorkit.plugin import UnsafePath, safe_join

        from .tasks import exports_dir

        if "/" in filename or "\\" in filename or filename.startswith(".") or not filename.endswith(".zip"):
            raise UnsafePath(f"{filename!r} is not an export file name")
        path = safe_join(exports_dir(), filename)
        if not path.is_file():
            raise ApiError(falcon.HTTP_404, f"Export {filename!r} not found.", cause="No such file in exports/.",
                           remediation="Use the filename from the export task's result.")
        resp.content_type = "application/zip"
        resp.downloadable_as = filename
        resp.content_length = path.stat().st_size
        resp.stream = open(path, "rb")


# ------------------------------------------------------------------------ OpenAPI
# The operation descriptions of this module's routes, keyed by (METHOD, path): the routes' descriptors name this
# table (``RouteDescriptor(schemas=…)``) and the API's OpenAPI document takes each route's entries from it.
EXPORT_BODY = oa.obj(
    ("datasets", "partition_by_unit", "partition_by_experiment"),
    datasets=oa.array(oa.STR, minItems=1), experiments=oa.array(oa.STR), experiment=oa.STR,
    partition_by_unit=oa.BOOL, partition_by_experiment=oa.BOOL,
    start_time={"type": ["string", "null"], "description": "ISO-8601 with Z or ±HH:MM."},
    end_time={"type": ["string", "null"], "description": "ISO-8601 with Z or ±HH:MM."},
)
EXPORT_RESULT = oa.obj(result=oa.ANY, filename=oa.STR, msg=oa.STR)
USB_EXPORT_RESULT = oa.obj(("filename", "drive", "path"), result=oa.ANY, filename=oa.STR, msg=oa.STR, drive=oa.STR,
                           device=oa.STR, path=oa.STR)
PREVIEW_QUERY = {"n_rows": {"type": "integer", "minimum": 1, "maximum": 100, "description": "Rows (default 5)."}}


def _exports() -> dict[tuple[str, str], dict[str, Any]]:
    preview = oa.op("The first rows of a dataset, unfiltered.", ok=oa.array(oa.OBJ), query=PREVIEW_QUERY)
    return {
        ("GET", "/api/datasets/exportable/{target_dataset}/preview"): preview,
        ("GET", "/api/contrib/exportable_datasets/{target_dataset}/preview"): preview,
        ("POST", "/api/datasets/exportable/export"): oa.task("Export datasets to a zip (GET /api/exports/{filename}).",
                                                          body=EXPORT_BODY, body_required=True,
                                                          result=EXPORT_RESULT),
        ("POST", "/api/datasets/exportable/export-to-usb"): oa.task(
            "Export datasets to a zip on the leader's mounted USB drive (409 when none is mounted).", body=EXPORT_BODY,
            body_required=True, result=USB_EXPORT_RESULT),
        ("POST", "/api/contrib/exportable_datasets/export_datasets"): oa.op(
            "Export datasets and wait for the zip (classic).", ok=EXPORT_RESULT, body=EXPORT_BODY,
            body_required=True),
        ("GET", "/api/exports/{filename}"): oa.op("A finished export.", ok=oa.ZIP),
    }


OPENAPI = _exports()
