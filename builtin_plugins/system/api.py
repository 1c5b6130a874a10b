"""System routes: plugins, system commands, the state folder, archives and uploads (§8, §9).

Unit (``/unit_api``): ``plugins/installed[/{file}.py]``, ``plugins/install``,
``plugins/uninstall``; ``system/reboot|shutdown|repair|update[/{target}]``,
``system/web_server/status|restart``, ``system/path[/{req_path}]``,
``system/remove_file``, ``system/uploads/{filename}``; ``zipped_dot_pioreactor``,
``import_zipped_dot_pioreactor``. Leader (``/api``): ``system/upload``,
``system/update_next_version``, ``system/update_from_archive`` and the
``/api/units/{u}/…`` fan-outs of plugins, system commands and archives.

Side effects are tasks (202 ``{unit, task_id, result_url_path, status}``). Every
path given by a caller stays inside ``$DOT_PIOREACTOR``: ``..``, absolute paths
and links that lead outside answer 400.
"""

from __future__ import annotations

import mimetypes
import os
import tempfile
import uuid
from pathlib import Path
from typing import Any

import falcon

from reactorkit.plugin import ApiError, RouteResource
from reactorkit.plugin import enqueue_task, invalid, read_body
from reactorkit.plugin import UnsafePath, dot_pioreactor, safe_join
from reactorkit.plugin import openapi as oa

from . import files

_PKG = "reactorkit.builtin_plugins.system"
UPLOAD_URL = "/unit_api/system/uploads/"


def _unit() -> str:
    from reactorkit.plugin import get_unit_name

    return get_unit_name()


# ------------------------------------------------------------------ plugins
class InstalledPlugins:
    """``GET /unit_api/plugins/installed`` → ``[{name, version, description, homepage, source, author, errors}]``
    (``?include_builtin=1`` adds the built-ins)."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        from .plugin_tasks import installed_plugins

        resp.media = installed_plugins(include_builtin=req.get_param_as_bool("include_builtin", default=False))


class InstalledPluginFile:
    """``GET /unit_api/plugins/installed/{filename}``: the source of ``$DOT_PIOREACTOR/plugins/<filename>`` (.py)."""

    def on_get(self, req: falcon.Request, resp: falcon.Response, filename: str) -> None:
        name = files.safe_name(filename)
        if not name.endswith(".py"):
            raise ApiError(falcon.HTTP_400, "Not a plugin file.", cause=f"{filename!r} does not end with .py.",
                           remediation="Ask for a .py file listed with source plugins/<file>.py.")
        path = safe_join(dot_pioreactor() / "plugins", name)
        if not path.is_file():
            raise ApiError(falcon.HTTP_404, f"Plugin file {filename!r} not found.", cause="No such file in plugins/.",
                           remediation="See GET /unit_api/plugins/installed.")
        resp.content_type = "text/plain; charset=utf-8"
        resp.text = path.read_text(encoding="utf-8", errors="replace")


def _installs_disallowed() -> None:
    if (dot_pioreactor() / "DISALLOW_UI_INSTALLS").exists():
        raise ApiError(falcon.HTTP_403, "Plugin installs from the API are disabled on this unit.",
                       cause="$DOT_PIOREACTOR/DISALLOW_UI_INSTALLS exists.",
                       remediation="Install with `pip` on the unit, or remove that file.")


def plugin_request(body: dict[str, Any], *, with_source: bool) -> tuple[str, str | None]:
    """``(name, source)`` of an install/uninstall body ``{args: [name], options: {source?}}``.

    Raises:
        ApiError: 400 naming the field; UnsafePath for a local source outside ``$DOT_PIOREACTOR``.
    """
    from reactorkit.plugin import PACKAGE_NAME as NAME

    args = files.json_list_of_names(body, "args")
    name = args[0]
    if not NAME.fullmatch(name):
        raise invalid(f"Field 'args[0]' must be a package name, got {name!r}.", 'Example: {"args": ["my-plugin"]}.')
    options = body.get("options") or {}  # an object with a string source: checked by the schema middleware
    source = options.get("source") if with_source else None
    if source is not None:
        if not source:
            raise invalid("Field 'options.source' must be a path or URL.")
        if not source.startswith(("http://", "https://")):
            path = files.inside_dot_pioreactor(source)
            if not path.exists():
                raise invalid(f"Field 'options.source': {source} does not exist on this unit.",
                              "Upload it first with POST /api/system/upload.")
            source = str(path)
    return name, source


class InstallPlugin:
    """``POST|PATCH /unit_api/plugins/install {args: [name], options: {source?}}`` → 202 task (pip)."""

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        _installs_disallowed()
        name, source = plugin_request(read_body(req), with_source=True)
        enqueue_task(resp, _unit(), f"{_PKG}.plugin_tasks.install_plugin", name, source, timeout_s=1200)

    on_patch = on_post


class UninstallPlugin:
    """``POST|PATCH /unit_api/plugins/uninstall {args: [name]}`` → 202 task."""

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        _installs_disallowed()
        name, _ = plugin_request(read_body(req), with_source=False)
        enqueue_task(resp, _unit(), f"{_PKG}.plugin_tasks.uninstall_plugin", name, timeout_s=1200)

    on_patch = on_post


# ------------------------------------------------------------------ system
class SystemCommand:
    """``POST|PATCH /unit_api/system/{reboot|shutdown|repair}`` → 202 task running the configured command."""

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        enqueue_task(resp, _unit(), f"{_PKG}.commands.{self.kind}", timeout_s=1800)

    on_patch = on_post


class Reboot(SystemCommand):
    def __init__(self) -> None:
        super().__init__("reboot")


class Shutdown(SystemCommand):
    def __init__(self) -> None:
        super().__init__("shutdown")


class Repair(SystemCommand):
    def __init__(self) -> None:
        super().__init__("repair")


def _update_body(body: dict[str, Any]) -> dict[str, Any]:
    options = body.get("options") or {}  # strings source and version: checked by the schema middleware
    source, version = options.get("source"), options.get("version")
    if source is not None:
        if not source:
            raise invalid("Field 'options.source' must be an archive path or URL.")
        if not source.startswith(("http://", "https://")):
            source = str(files.inside_dot_pioreactor(source))
    if version is not None and not version.replace(".", "").replace("rc", "").isalnum():
        raise invalid(f"Field 'options.version' must be a version such as 1.2.3, got {version!r}.")
    return {"source": source, "version": version}


class Update:
    """``POST|PATCH /unit_api/system/update[/{target}] {options: {source?, version?}}`` → 202 task (target ``app``)."""

    def on_post(self, req: falcon.Request, resp: falcon.Response, target: str = "app") -> None:
        if target != "app":
            raise ApiError(falcon.HTTP_400, f"Unknown update target {target!r}.", cause="Only the app can be updated.",
                           remediation="Use /unit_api/system/update/app.")
        enqueue_task(resp, _unit(), f"{_PKG}.commands.update_app", timeout_s=1800, **_update_body(read_body(req)))

    on_patch = on_post


class WebServerStatus:
    """``GET /unit_api/system/web_server/status`` → ``{service, state, raw_status}``."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        from .commands import gunicorn_pid

        web = "active" if gunicorn_pid() is not None else "unknown"
        try:
            from redis import Redis
            from rq import Queue, Worker

            from reactorkit.plugin import queue_name, redis_url

            connection = Redis.from_url(redis_url())
            workers = Worker.all(queue=Queue(queue_name(), connection=connection))
            tasks = "active" if workers else "inactive"
        except Exception:
            tasks = "unreachable"
        state = "ready" if tasks == "active" and web in ("active", "unknown") else "degraded"
        resp.media = {"service": "gunicorn,rq-worker", "state": state,
                      "raw_status": f"gunicorn={web}, rq-worker={tasks}"}


class WebServerRestart:
    """``POST|PATCH /unit_api/system/web_server/restart`` → 202 task (SIGHUP to ``pio serve``, or the configured command)."""

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        enqueue_task(resp, _unit(), f"{_PKG}.commands.restart_web_server", timeout_s=120)

    on_patch = on_post


class SystemPath:
    """``GET /unit_api/system/path/[{req_path}]``: a folder → ``{current, dirs, files}``; a file → its bytes."""

    def on_get(self, req: falcon.Request, resp: falcon.Response, req_path: str = "") -> None:
        root = dot_pioreactor()
        path = safe_join(root, req_path) if req_path.strip("/") else root
        if req_path.startswith("/"):
            raise UnsafePath(f"{req_path!r} is absolute")
        if path.is_dir():
            dirs, names = [], []
            for entry in sorted(os.scandir(path), key=lambda e: e.name):
                (dirs if entry.is_dir(follow_symlinks=False) else names).append(entry.name)
            resp.media = {"current": str(path), "dirs": dirs, "files": names}
            return
        if not path.is_file():
            raise ApiError(falcon.HTTP_404, f"{req_path} not found.", cause=f"No file or folder {req_path!r}.",
                           remediation="List the folder above it.")
        resp.content_type = mimetypes.guess_type(path.name)[0] or "text/plain; charset=utf-8"
        resp.content_length = path.stat().st_size
        resp.stream = open(path, "rb")


class RemoveFile:
    """``POST|PATCH /unit_api/system/remove_file {filepath}`` → 202 task (checked here first: 400 unsafe, 404 missing)."""

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        filepath = read_body(req)["filepath"]  # a string: checked by the schema middleware
        path = files.inside_dot_pioreactor(filepath)
        if not path.is_file():
            raise ApiError(falcon.HTTP_404, f"{filepath} is not a file.", cause=f"No file {filepath!r}.",
                           remediation="List the folder with GET /unit_api/system/path/.")
        enqueue_task(resp, _unit(), f"{_PKG}.commands.remove_file", filepath, timeout_s=60)

    on_patch = on_post


class UploadedFile:
    """``GET /unit_api/system/uploads/{filename}``: a file uploaded here (other units install plugins from it)."""

    def on_get(self, req: falcon.Request, resp: falcon.Response, filename: str) -> None:
        path = safe_join(files.uploads_dir(), files.safe_name(filename))
        if not path.is_file():
            raise ApiError(falcon.HTTP_404, f"Upload {filename!r} not found.", cause="No such file in uploads/.",
                           remediation="Upload it with POST /api/system/upload.")
        resp.content_type = "application/octet-stream"
        resp.downloadable_as = path.name
        resp.content_length = path.stat().st_size
        resp.stream = open(path, "rb")


# ----------------------------------------------------------------- archives
def _zip_response(resp: falcon.Response, name: str) -> None:
    from .archive import write_zip

    spool = tempfile.NamedTemporaryFile(prefix="dot_pioreactor", suffix=".zip")
    write_zip(dot_pioreactor(), Path(spool.name))
    spool.seek(0, os.SEEK_END)
    resp.content_length = spool.tell()
    spool.seek(0)
    resp.content_type = "application/zip"
    resp.downloadable_as = name
    resp.stream = spool  # closed (and deleted) by the server after sending


class ZippedDotPioreactor:
    """``GET /unit_api/zipped_dot_pioreactor``: this unit's state folder as a zip."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        _zip_response(resp, f"{_unit()}_dot_pioreactor.zip")


def _save_import(req: falcon.Request) -> Path:
    from .archive import UnsafeArchive, check_archive

    limit = files.limit_bytes("max_import_mb", files.DEFAULT_MAX_IMPORT_MB)
    path = files.read_upload(req, files.uploads_dir(), limit, fields=("archive", "file"), what="archive",
                             name=f".import-{uuid.uuid4().hex[:12]}.zip")
    try:
        check_archive(path, max_bytes=limit)
    except UnsafeArchive as exc:
        path.unlink(missing_ok=True)
        raise ApiError(falcon.HTTP_400, "The archive was refused.", cause=str(exc),
                       remediation="Send a zip made by GET /unit_api/zipped_dot_pioreactor.") from None
    return path


class ImportZippedDotPioreactor:
    """``POST /unit_api/import_zipped_dot_pioreactor`` (multipart field ``archive``) → 202 task; unsafe archives → 400."""

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        from .ingestion_swap import jobs_in_the_way, refusal

        running = jobs_in_the_way()
        if running:
            fields = refusal(running)
            raise ApiError(falcon.HTTP_409, fields["error"], cause=fields["cause"], remediation=fields["remediation"])
        path = _save_import(req)
        enqueue_task(resp, _unit(), f"{_PKG}.tasks.import_dot_pioreactor", str(path), timeout_s=1800)


# ------------------------------------------------------------------- leader
class Upload:
    """``POST /api/system/upload`` (multipart field ``file``) → ``{"message", "save_path"}`` in ``uploads/``."""

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        limit = files.limit_bytes("max_upload_mb", files.DEFAULT_MAX_UPLOAD_MB)
        path = files.read_upload(req, files.uploads_dir(), limit, fields=("file", "archive"), what="upload")
        resp.media = {"message": "File successfully uploaded", "save_path": str(path)}



def _queue(resp: falcon.Response, func: str, *args: Any, timeout_s: int = 1800, **kwargs: Any) -> None:
    enqueue_task(resp, _unit(), func, *args, timeout_s=timeout_s, **kwargs)


def _remote_source(source: str | None, units: list[str]) -> dict[str, Any] | None:
    """Per-unit sources: a file in the leader's uploads becomes the leader's download URL for other units."""
    if source is None or source.startswith(("http://", "https://")):
        return None
    path = Path(source)
    if path.parent.resolve() != files.uploads_dir().resolve():
        return None
    from reactorkit.plugin import unit_url

    leader = _unit()
    url = unit_url(leader) + UPLOAD_URL + path.name
    return {u: (source if u == leader else url) for u in units}


class ClusterPlugins(RouteResource):
    """``POST|PATCH /api/units/{u}/plugins/install|uninstall``: the unit route on each target → 202 task."""

    def __init__(self, action: str) -> None:
        self.action = action

    def on_post(self, req: falcon.Request, resp: falcon.Response, pioreactor_unit: str) -> None:
        _installs_disallowed()
        body = read_body(req)
        name, source = plugin_request(body, with_source=self.action == "install")
        units = self.context.fanout.targets(pioreactor_unit, "units")
        per_unit = None
        sources = _remote_source(source, units)
        if sources:
            per_unit = {u: {"args": [name], "options": {"source": sources[u]}} for u in units}
        payload = {"args": [name], "options": {"source": source} if source else {}}
        _queue(resp, f"{_PKG}.plugin_tasks.fan_out_long", "POST", units, f"/unit_api/plugins/{self.action}", payload,
               json_per_unit=per_unit)

    on_patch = on_post


class ClusterInstall(ClusterPlugins):
    def __init__(self) -> None:
        super().__init__("install")


class ClusterUninstall(ClusterPlugins):
    def __init__(self) -> None:
        super().__init__("uninstall")


class ClusterInstalledPlugins(RouteResource):
    """``GET /api/units/{u}/plugins/installed`` → 202 task (``{unit: envelope}``)."""

    def on_get(self, req: falcon.Request, resp: falcon.Response, pioreactor_unit: str) -> None:
        units = self.context.fanout.targets(pioreactor_unit, "units")
        _queue(resp, "reactorkit.api.fanout.fan_out_task", "GET", units, "/unit_api/plugins/installed", timeout_s=120)


class ClusterSystemCommand(RouteResource):
    """``POST /api/units/{u}/system/{reboot|shutdown|repair}`` → 202 task fanning out to the targets."""

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def on_post(self, req: falcon.Request, resp: falcon.Response, pioreactor_unit: str) -> None:
        units = self.context.fanout.targets(pioreactor_unit, "units")
        _queue(resp, f"{_PKG}.plugin_tasks.fan_out_long", "POST", units, f"/unit_api/system/{self.kind}", None,
               poll_minutes=2.0)


class ClusterReboot(ClusterSystemCommand):
    def __init__(self) -> None:
        super().__init__("reboot")


class ClusterShutdown(ClusterSystemCommand):
    def __init__(self) -> None:
        super().__init__("shutdown")


class ClusterRepair(ClusterSystemCommand):
    def __init__(self) -> None:
        super().__init__("repair")


class UpdateNextVersion(RouteResource):
    """``POST /api/system/update_next_version``: every unit updates the app → 202 task."""

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        units = self.context.fanout.targets("$broadcast", "units")
        _queue(resp, f"{_PKG}.plugin_tasks.fan_out_long", "POST", units, "/unit_api/system/update/app", {})


class UpdateFromArchive(RouteResource):
    """``POST /api/system/update_from_archive {release_archive_location, units?}`` → 202 task.

    The archive must be inside ``$DOT_PIOREACTOR`` (upload it first); other units fetch it from the leader.
    """

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = read_body(req)
        location = body["release_archive_location"]  # a string: checked by the schema middleware
        path = files.inside_dot_pioreactor(location)
        if not path.is_file():
            raise invalid(f"Field 'release_archive_location': {location} does not exist.",
                          "Upload the archive with POST /api/system/upload first.")
        requested = body.get("units")
        units = sorted({u for name in (requested or ["$broadcast"])
                        for u in self.context.fanout.targets(str(name), "units")})
        sources = _remote_source(str(path), units) or {u: str(path) for u in units}
        per_unit = {u: {"options": {"source": sources[u]}} for u in units}
        _queue(resp, f"{_PKG}.plugin_tasks.fan_out_long", "POST", units, "/unit_api/system/update/app", None,
               json_per_unit=per_unit)


class ClusterZippedDotPioreactor(RouteResource):
    """``GET /api/units/{u}/zipped_dot_pioreactor``: one unit's zip, or for ``$broadcast`` a zip of ``<unit>.zip``."""

    def on_get(self, req: falcon.Request, resp: falcon.Response, pioreactor_unit: str) -> None:
        import zipfile

        import httpx

        from reactorkit.plugin import unit_url
        from reactorkit.plugin import cluster_headers

        units = self.context.fanout.targets(pioreactor_unit, "units")
        me = _unit()
        if len(units) == 1 and pioreactor_unit != "$broadcast" and units[0] == me:
            _zip_response(resp, f"{me}_dot_pioreactor.zip")
            return
        if pioreactor_unit != "$broadcast":  # one other unit: pass its archive through
            unit = units[0]
            try:
                with httpx.Client(timeout=120, headers=cluster_headers()) as client:
                    response = client.get(unit_url(unit) + "/unit_api/zipped_dot_pioreactor")
                    response.raise_for_status()
            except httpx.HTTPError as exc:
                raise ApiError(falcon.HTTP_502, f"Could not get {unit}'s archive.", cause=str(exc),
                               remediation=f"Check that {unit} is online.") from None
            resp.content_type = "application/zip"
            resp.downloadable_as = f"{unit}_dot_pioreactor.zip"
            resp.data = response.content
            return
        spool = tempfile.NamedTemporaryFile(prefix="cluster_dot_pioreactor", suffix=".zip")
        with zipfile.ZipFile(spool, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as outer, \
                httpx.Client(timeout=120, headers=cluster_headers()) as client:
            for unit in units:
                try:
                    response = client.get(unit_url(unit) + "/unit_api/zipped_dot_pioreactor")
                    response.raise_for_status()
                except httpx.HTTPError:
                    continue  # $broadcast: a unit that is off is left out
                outer.writestr(f"{unit}.zip", response.content)
        spool.seek(0, os.SEEK_END)
        resp.content_length = spool.tell()
        spool.seek(0)
        resp.content_type = "application/zip"
        resp.downloadable_as = "cluster_dot_pioreactor.zip"
        resp.stream = spool


class ClusterImportZippedDotPioreactor(RouteResource):
    """``POST /api/units/{u}/import_zipped_dot_pioreactor`` (one unit; field ``archive``) → 202 leader task."""

    def on_post(self, req: falcon.Request, resp: falcon.Response, pioreactor_unit: str) -> None:
        if pioreactor_unit == "$broadcast":
            raise ApiError(falcon.HTTP_400, "$broadcast is not allowed here.",
                           cause="An archive belongs to one unit.", remediation="Name the unit to restore.")
        unit = self.context.fanout.targets(pioreactor_unit, "units")[0]
        path = _save_import(req)
        _queue(resp, f"{_PKG}.tasks.forward_import", unit, str(path))


# ------------------------------------------------------------------------ OpenAPI
# The operation descriptions of this module's routes, keyed by (METHOD, path): the routes' descriptors name this
# table (``RouteDescriptor(schemas=…)``) and the API's OpenAPI document takes each route's entries from it.
PLUGIN_BODY = oa.obj(
    ("args",), args=oa.array(oa.STR, minItems=1, description="[package name]"),
    options=oa.obj(source={"type": "string", "description": "A path in $DOT_PIOREACTOR or a URL."}),
    env=oa.OBJ,
)
UPDATE_BODY = oa.obj(options=oa.obj(source=oa.STR, version=oa.STR), args=oa.array(oa.STR), env=oa.OBJ)
UPLOAD = oa.obj(file=oa.BINARY)
ARCHIVE = oa.obj(archive={"type": "string", "format": "binary"})
PLUGIN = oa.obj(("name",), name=oa.STR, version=oa.nullable(oa.STR), description=oa.nullable(oa.STR),
                homepage=oa.nullable(oa.STR), source=oa.nullable(oa.STR), author=oa.nullable(oa.STR))


def _system() -> dict[tuple[str, str], dict[str, Any]]:
    out: dict[tuple[str, str], dict[str, Any]] = {
        ("GET", "/unit_api/plugins/installed"): oa.op("Installed plugins.", ok=oa.array(PLUGIN),
                                                   query={"include_builtin": oa.BOOL}),
        ("GET", "/unit_api/plugins/installed/{filename}"): oa.op("A plugin file's source.", ok=oa.TEXT),
        ("GET", "/unit_api/system/web_server/status"): oa.op("State of the web server and task worker.",
                                                             ok=oa.obj(("state",), service=oa.STR, state=oa.STR,
                                                                       raw_status=oa.STR)),
        ("GET", "/unit_api/system/path"): oa.op("The state folder: {current, dirs, files}.",
                                             ok=oa.obj(("dirs", "files"), current=oa.STR, dirs=oa.array(oa.STR),
                                                    files=oa.array(oa.STR))),
        ("GET", "/unit_api/system/path/{req_path}"): oa.op(
            "A folder ({current, dirs, files}) or a file (its bytes) of the state folder.",
            ok=(oa.obj(("dirs", "files"), current=oa.STR, dirs=oa.array(oa.STR), files=oa.array(oa.STR)),
                oa.Content("*/*", oa.BINARY))),
        ("GET", "/unit_api/system/uploads/{filename}"): oa.op("A file uploaded to this unit.", ok=oa.OCTETS),
        ("GET", "/unit_api/zipped_dot_pioreactor"): oa.op("This unit's state folder as a zip.", ok=oa.ZIP),
        ("POST", "/unit_api/import_zipped_dot_pioreactor"): oa.task(
            "Restore the state folder from a zip (multipart field archive).", body=ARCHIVE,
            body_content="multipart/form-data", body_required=True),
        ("POST", "/api/system/upload"): oa.op("Upload a file (multipart field file) to the leader's uploads.",
                                           ok=oa.obj(("save_path",), message=oa.STR, save_path=oa.STR), body=UPLOAD,
                                           body_content="multipart/form-data", body_required=True),
        ("POST", "/api/system/update_next_version"): oa.task("Every unit updates the app."),
        ("POST", "/api/system/update_from_archive"): oa.task(
            "Every unit (or units) updates the app from an uploaded archive.", body_required=True,
            body=oa.obj(("release_archive_location",), release_archive_location=oa.STR, units=oa.array(oa.STR))),
        ("GET", "/api/units/{pioreactor_unit}/plugins/installed"): oa.fan_out("Installed plugins of the units.",
                                                                           oa.array(PLUGIN)),
        ("GET", "/api/units/{pioreactor_unit}/zipped_dot_pioreactor"): oa.op(
            "A unit's state folder as a zip ($broadcast: a zip of <unit>.zip).", ok=oa.ZIP, proxy=True),
        ("POST", "/api/units/{pioreactor_unit}/import_zipped_dot_pioreactor"): oa.task(
            "Restore a unit's state folder from a zip (multipart field archive).", body=ARCHIVE,
            body_content="multipart/form-data", body_required=True),
    }
    for method in ("POST", "PATCH"):
        out.update({
            (method, "/unit_api/plugins/install"): oa.task("Install a plugin (pip).", body=PLUGIN_BODY,
                                                        body_required=True),
            (method, "/unit_api/plugins/uninstall"): oa.task("Uninstall a plugin.", body=PLUGIN_BODY,
                                                          body_required=True),
            (method, "/unit_api/system/reboot"): oa.task("Reboot the unit (only where system commands are enabled)."),
            (method, "/unit_api/system/shutdown"): oa.task("Shut the unit down (where enabled)."),
            (method, "/unit_api/system/repair"): oa.task("Repair the state folder's ownership (where enabled)."),
            (method, "/unit_api/system/update"): oa.task("Update the app.", body=UPDATE_BODY),
            (method, "/unit_api/system/update/{target}"): oa.task("Update a target (app).", body=UPDATE_BODY),
            (method, "/unit_api/system/web_server/restart"): oa.task("Restart the web server (gunicorn reload)."),
            (method, "/unit_api/system/remove_file"): oa.task(
                "Delete a file of the state folder.", body=oa.obj(("filepath",), filepath=oa.STR), body_required=True),
            (method, "/api/units/{pioreactor_unit}/plugins/install"): oa.task("Install a plugin on the units.",
                                                                           body=PLUGIN_BODY, body_required=True),
            (method, "/api/units/{pioreactor_unit}/plugins/uninstall"): oa.task("Uninstall a plugin on the units.",
                                                                             body=PLUGIN_BODY, body_required=True),
        })
    for kind in ("reboot", "shutdown", "repair"):
        out[("POST", f"/api/units/{{pioreactor_unit}}/system/{kind}")] = oa.task(f"{kind.capitalize()} the units.")
    return out


OPENAPI = _system()
