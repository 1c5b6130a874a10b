"""Leader routes for experiment profiles (domain facts §7.3).

* ``GET /api/experiment_profiles`` → ``[{experimentProfile, file, fullpath}]`` newest first;
  ``POST {filename, body}`` creates (409 if it exists).
* ``GET|PATCH {body}|DELETE /api/experiment_profiles/{filename}``: raw text, replace, delete.
* ``GET /api/experiments/{exp}/experiment_profiles/running`` → ``[{job_name, experiment, job_id, settings}]``.
* ``GET /api/experiments/{exp}/experiment_profiles/recent`` → ``[{started_at, experiment_profile_name, experiment}]``.
* Classic: ``/api/contrib/experiment_profiles`` (``PATCH {filename, body}``) and
  ``/api/experiment_profiles/running/experiments/{exp}``.

Bodies are validated before anything is written: errors answer 400 with the
contract's error shape plus ``diagnostics`` ``[{severity, code, message, path,
line, hint}]``; warnings are returned with the 200.
"""

from __future__ import annotations

from typing import Any

import falcon

from reactorkit.plugin import ApiError, AppContext, RouteResource, atomic_write, read_body
from reactorkit.plugin import openapi as oa

from . import files
from .schema import Validation, validate

MAX_BODY_CHARS = files.MAX_PROFILE_BYTES


def _path(filename: str) -> Any:
    try:
        return files.profile_path(filename)
    except files.BadProfileName as exc:
        raise ApiError(falcon.HTTP_400, "Invalid profile filename.", cause=str(exc),
                       remediation="Use a name like my_profile.yaml (letters, digits, _ - . and a .yaml/.yml ending).") \
            from None


def _body_text(body: dict[str, Any]) -> str:
    """The profile's YAML text (a string: checked by the schema middleware), refused above MAX_BODY_CHARS."""
    text = body["body"]
    if len(text) > MAX_BODY_CHARS:
        raise ApiError(falcon.HTTP_413, "Profile too large.", cause=f"The body has {len(text)} characters.",
                       remediation=f"Keep profiles under {MAX_BODY_CHARS} characters.")
    return text


def _validated(text: str, resp: falcon.Response, context: AppContext) -> Validation | None:
    """The validation (jobs checked against the app's registry), or None after answering 400 with the diagnostics."""
    result = validate(text, known_jobs=frozenset(context.registry.jobs))
    if result.ok:
        return result
    errors = result.errors
    first = errors[0]
    where = f" (line {first.line})" if first.line else ""
    resp.status = falcon.HTTP_400
    resp.media = {
        "error": "Invalid experiment profile.",
        "cause": f"{len(errors)} problem(s); first: {first.message}{where}",
        "remediation": first.hint or "Fix the problems listed in diagnostics and send it again.",
        "status": 400,
        "diagnostics": [d.to_dict() for d in result.diagnostics],
    }
    return None


def _success(result: Validation) -> dict[str, Any]:
    out: dict[str, Any] = {"status": "success"}
    if result.diagnostics:
        out["diagnostics"] = [d.to_dict() for d in result.diagnostics]
    return out


def _create(body: dict[str, Any], resp: falcon.Response, context: AppContext) -> None:
    filename = body["filename"]
    path = _path(filename)
    text = _body_text(body)
    if path.exists() or path.is_symlink():
        raise ApiError(falcon.HTTP_409, f"Profile {filename!r} already exists.",
                       cause=f"{path} exists.", remediation=f"Choose another name, or PATCH /api/experiment_profiles/{filename}.")
    result = _validated(text, resp, context)
    if result is None:
        return
    atomic_write(path, text)
    resp.media = _success(result)


def _update(filename: str, body: dict[str, Any], resp: falcon.Response, context: AppContext) -> None:
    path = _path(filename)
    text = _body_text(body)
    if not path.is_file():
        raise _missing(filename)
    result = _validated(text, resp, context)
    if result is None:
        return
    atomic_write(path, text)
    resp.media = _success(result)


def _missing(filename: str) -> ApiError:
    return ApiError(falcon.HTTP_404, f"Profile {filename!r} not found.",
                    cause=f"No file {filename!r} in experiment_profiles/.",
                    remediation="List the profiles with GET /api/experiment_profiles.")


class Profiles(RouteResource):
    """``GET /api/experiment_profiles`` (list) and ``POST {filename, body}`` (create)."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = files.list_profiles()

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        _create(read_body(req), resp, self.context)


class ClassicProfiles(Profiles):
    """``/api/contrib/experiment_profiles``: as :class:`Profiles`, plus ``PATCH {filename, body}``."""

    def on_patch(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = read_body(req)
        _update(body["filename"], body, resp, self.context)


class ProfileFile(RouteResource):
    """``GET`` (text), ``PATCH {body}``, ``DELETE`` of ``/api/experiment_profiles/{filename}``."""

    def on_get(self, req: falcon.Request, resp: falcon.Response, filename: str) -> None:
        path = _path(filename)
        if not path.is_file():
            raise _missing(filename)
        resp.content_type = "text/plain; charset=utf-8"
        resp.text = path.read_text(encoding="utf-8", errors="replace")

    def on_patch(self, req: falcon.Request, resp: falcon.Response, filename: str) -> None:
        _update(filename, read_body(req), resp, self.context)

    def on_delete(self, req: falcon.Request, resp: falcon.Response, filename: str) -> None:
        path = _path(filename)
        if not path.is_file():
            raise _missing(filename)
        path.unlink()
        resp.media = {"status": "success"}


class RunningProfiles:
    """``GET …/experiment_profiles/running``: profiles running on this leader for the experiment."""

    def on_get(self, req: falcon.Request, resp: falcon.Response, experiment: str) -> None:
        from reactorkit.plugin import JobRegistry

        registry = JobRegistry()
        try:
            rows = registry.running(job_name="experiment_profile", experiment=experiment)
            resp.media = [{"job_name": r.job_name, "experiment": r.experiment, "job_id": r.job_id,
                           "settings": registry.settings(r.job_id)} for r in rows]
        finally:
            registry.close()


class RecentRuns(RouteResource):
    """``GET …/experiment_profiles/recent``: runs of the experiment, newest first (at most 50)."""

    def on_get(self, req: falcon.Request, resp: falcon.Response, experiment: str) -> None:
        db = self.context.leader_db
        if not db.table_exists("experiment_profile_runs"):
            resp.media = []
            return
        resp.media = db.query(
            "SELECT started_at, experiment_profile_name, experiment FROM experiment_profile_runs"
            " WHERE experiment = ? ORDER BY started_at DESC, rowid DESC LIMIT 50", (experiment,))


# ------------------------------------------------------------------------ OpenAPI
# The operation descriptions of this module's routes, keyed by (METHOD, path): the routes' descriptors name this
# table (``RouteDescriptor(schemas=…)``) and the API's OpenAPI document takes each route's entries from it.
PROFILE_REPLY = oa.obj(("status",), status=oa.STR, diagnostics=oa.array(oa.OBJ))
PROFILE_ROW = oa.obj(("file",), experimentProfile=oa.ANY, file=oa.STR, fullpath=oa.STR)
RUNNING = oa.array(oa.obj(("job_name", "job_id"), job_name=oa.STR, experiment=oa.STR, job_id=oa.INT, settings=oa.OBJ))


def _profiles() -> dict[tuple[str, str], dict[str, Any]]:
    text = oa.Content("text/plain", oa.STR)
    new = oa.obj(("filename", "body"), filename=oa.STR, body=oa.STR)
    out: dict[tuple[str, str], dict[str, Any]] = {
        ("GET", "/api/experiment_profiles"): oa.op("Experiment profiles, newest first.", ok=oa.array(PROFILE_ROW)),
        ("POST", "/api/experiment_profiles"): oa.op("Create a profile (checked first; 409 when it exists).",
                                                 ok=PROFILE_REPLY, body=new, body_required=True),
        ("GET", "/api/contrib/experiment_profiles"): oa.op("Experiment profiles (classic).", ok=oa.array(PROFILE_ROW)),
        ("POST", "/api/contrib/experiment_profiles"): oa.op("Create a profile (classic).", ok=PROFILE_REPLY, body=new,
                                                         body_required=True),
        ("PATCH", "/api/contrib/experiment_profiles"): oa.op("Replace a profile named in the body (classic).",
                                                          ok=PROFILE_REPLY, body=new, body_required=True),
        ("GET", "/api/experiments/{experiment}/experiment_profiles/running"): oa.op(
            "Profiles running for the experiment.",
            ok=RUNNING),
        ("GET", "/api/experiment_profiles/running/experiments/{experiment}"): oa.op(
            "Profiles running for the experiment (classic).",
            ok=RUNNING),
        ("GET", "/api/experiments/{experiment}/experiment_profiles/recent"): oa.op(
            "Recent profile runs of the experiment.",
            ok=oa.array(oa.obj(("started_at",), started_at=oa.STR, experiment_profile_name=oa.nullable(oa.STR),
                               experiment=oa.STR))),
    }
    for base in ("/api/experiment_profiles/{filename}", "/api/contrib/experiment_profiles/{filename}"):
        out.update({
            ("GET", base): oa.op("A profile's YAML text.", ok=text),
            ("PATCH", base): oa.op("Replace a profile (checked first).", ok=PROFILE_REPLY,
                                body=oa.obj(("body",), body=oa.STR), body_required=True),
            ("DELETE", base): oa.op("Delete a profile.", ok=oa.STATUS),
        })
    return out


OPENAPI = _profiles()
