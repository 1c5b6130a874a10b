"""The OpenAPI 3.1 document of one root (``/unit_api`` or ``/api``) of an app, built from its :class:`Catalog`.

Every operation gets: its path parameters (strings), its declared query
parameters, the optional ``Reactorkit-Version`` request header, ``wait`` when it
is async, its request body, its declared responses (each with the
``Reactorkit-Version`` response header) and ``default``: the error shape.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from reactorkit.api.openapi import version
from reactorkit.api.openapi.catalog import Operation, catalog_of, path_fields
from reactorkit.api.openapi.schemas.common import COMPONENTS, Content

TITLES = {
    "/unit_api": "reactorkit unit API (/unit_api)",
    "/api": "reactorkit leader API (/api)",
}
DESCRIPTIONS = {
    "/unit_api": "Served by every unit: its jobs, tasks, calibrations, descriptors and system.",
    "/api": "Served by the leader only: the cluster's experiments, workers, logs, time series, config and fan-outs "
            "to the workers' /unit_api.",
}
STATUS_TEXT = {"200": "OK", "201": "Created", "202": "Accepted (a task was queued, or an action was sent)",
               "204": "No content", "2XX": "Success",
               "502": "Another unit this call depends on could not be reached, or answered something unusable."}
HTTP_SERVER_RESPONSES = {
    "414": "The request line is too long for the HTTP server, which answers before the app (gunicorn's gthread "
           "worker, pio serve's default: more than 4,094 bytes; gevent's WSGI server: 8,192 or more).",
    "431": "The request headers are too large for the HTTP server, which answers before the app (gunicorn's "
           "gthread worker; gevent's WSGI server answers 400 to more than 100 header fields).",
}


def build(app: Any, root: str, *, max_wait_s: float) -> dict[str, Any]:
    """The OpenAPI document of ``root`` (``"/unit_api"`` or ``"/api"``) of ``app``.

    Args:
        max_wait_s: The cap of ``?wait=`` (seconds), stated in its description.
    """
    from reactorkit import __version__

    paths: dict[str, dict[str, Any]] = {}
    tags: set[str] = set()
    for operation in catalog_of(app).under(root):
        entry = operation_object(operation, root, max_wait_s=max_wait_s)
        tags.update(entry.get("tags", ()))
        paths.setdefault(operation.path, {})[operation.method.lower()] = entry
    return {
        "openapi": "3.1.0",
        "info": {
            "title": TITLES.get(root, f"reactorkit {root}"),
            "version": __version__,
            "description": DESCRIPTIONS.get(root, "") + (
                f" Errors are {{error, cause, remediation, status}}. Async operations answer 202 with a task "
                f"envelope; add ?wait=<seconds> (at most {max_wait_s:g}) to get the finished task in the same call. "
                f"Send {version.HEADER}: {' or '.join(version.SUPPORTED)} to pin the API version. Every operation but "
                f"health and the docs needs a bearer token whose scope (read < control < admin) is the operation's "
                f"x-scope: no or a bad token is 401, too small a scope 403."),
        },
        "tags": [{"name": t} for t in sorted(tags)],
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": copy.deepcopy(COMPONENTS),
            "securitySchemes": SECURITY_SCHEMES,
            "parameters": {"ReactorkitVersion": version.parameter()},
            "headers": {"ReactorkitVersion": version.response_header()},
            "responses": {
                "Error": {
                    "description": "An error, in the contract's error shape.",
                    "headers": {version.HEADER: {"$ref": "#/components/headers/ReactorkitVersion"}},
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                },
                "Unauthorized": {
                    "description": "No token, or a token that is unknown, revoked or expired on this unit.",
                    "headers": {version.HEADER: {"$ref": "#/components/headers/ReactorkitVersion"}},
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                },
                "Forbidden": {
                    "description": "The token's scope is too small for this operation.",
                    "headers": {version.HEADER: {"$ref": "#/components/headers/ReactorkitVersion"}},
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                },
                **{f"HttpServer{status}": {"description": text, "content": {"text/html": {"schema": {"type": "string"}}}}
                   for status, text in HTTP_SERVER_RESPONSES.items()},
            },
        },
    }


SECURITY_SCHEMES = {
    "bearerAuth": {"type": "http", "scheme": "bearer",
                   "description": "An API token (`pio tokens create --scope read|control|admin` on the leader). "
                                  "Scopes: read < control < admin; an operation lists the one it needs."},
    "cookieAuth": {"type": "apiKey", "in": "cookie", "name": "reactorkit_token",
                   "description": "The web UI's login cookie (POST /login exchanges a token for it)."},
}


def security_of(operation: Operation) -> list[dict[str, list[str]]]:
    """The operation's ``security``: ``[]`` when public, else bearer or cookie with the scope it needs."""
    from reactorkit.api.security.auth import operation_scope
    from reactorkit.core.auth.scopes import PUBLIC

    scope = operation_scope(operation)
    return [] if scope == PUBLIC else [{"bearerAuth": [scope]}, {"cookieAuth": [scope]}]


def operation_object(operation: Operation, root: str, *, max_wait_s: float) -> dict[str, Any]:
    """The OpenAPI operation object of one catalog entry."""
    spec = operation.spec
    security = security_of(operation)
    out: dict[str, Any] = {
        "operationId": operation_id(operation.method, operation.path),
        "summary": spec.get("summary") or "",
        "tags": list(spec.get("tags") or [tag_of(operation.path, root)]),
        "security": security,
        "x-scope": security[0]["bearerAuth"][0] if security else "public",
    }
    if spec.get("description"):
        out["description"] = spec["description"]
    path_schemas = spec.get("path") or {}
    parameters: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": path_schemas.get(name, {"type": "string"}),
         **({"description": "May contain slashes."} if converter == "path" else {})}
        for name, converter in path_fields(operation.template)
    ]
    for name, schema in (spec.get("query") or {}).items():
        parameters.append({"name": name, "in": "query", "required": False, "schema": schema,
                           **({"description": schema["description"]} if "description" in schema else {})})
    if operation.is_async and "wait" not in (spec.get("query") or {}):
        parameters.append(wait_parameter(max_wait_s))
    parameters.append({"$ref": "#/components/parameters/ReactorkitVersion"})
    out["parameters"] = parameters
    body = spec.get("body")
    if body is not None:
        media = spec.get("body_content") or "application/json"
        out["requestBody"] = {"required": bool(spec.get("body_required")),
                              "content": {media: {"schema": body}}}
    responses: dict[str, Any] = {}
    for status, schema in (spec.get("responses") or {}).items():
        responses[str(status)] = response_object(str(status), schema)
    if security:
        responses.setdefault("401", {"$ref": "#/components/responses/Unauthorized"})
        responses.setdefault("403", {"$ref": "#/components/responses/Forbidden"})
    for status in HTTP_SERVER_RESPONSES:
        responses.setdefault(status, {"$ref": f"#/components/responses/HttpServer{status}"})
    responses["default"] = {"$ref": "#/components/responses/Error"}
    out["responses"] = responses
    return out


def response_object(status: str, schema: Any) -> dict[str, Any]:
    """``{description, headers, content}`` of a declared response (JSON Schema, Content or a tuple of them)."""
    parts = schema if isinstance(schema, tuple) else (schema,)
    content: dict[str, Any] = {}
    for part in parts:
        if isinstance(part, Content):
            content.update(part.to_openapi())
        elif part == {} and status == "2XX":
            content["*/*"] = {"schema": {}}
        else:
            content["application/json"] = {"schema": part}
    return {"description": STATUS_TEXT.get(status, status),
            "headers": {version.HEADER: {"$ref": "#/components/headers/ReactorkitVersion"}},
            "content": content}


def wait_parameter(max_wait_s: float) -> dict[str, Any]:
    return {
        "name": "wait", "in": "query", "required": False,
        "schema": {"type": "number", "minimum": 0},
        "description": f"Seconds to wait for the task (at most {max_wait_s:g}; more is cut to that). Finished in "
                       "time: 200 with the task's state (succeeded with result, or failed); else the usual 202.",
    }


_NON_WORD = re.compile(r"[^A-Za-z0-9]+")


def operation_id(method: str, path: str) -> str:
    """``get_unit_api_jobs_running_job_name``: unique per method and path."""
    return f"{method.lower()}_{_NON_WORD.sub('_', path).strip('_')}"


_GROUPING = {"workers", "units", "experiments"}


def tag_of(path: str, root: str) -> str:
    """The docs-page section of a path: its first literal segment after the root, skipping leading
    ``workers/{unit}``, ``units/{unit}`` and ``experiments/{experiment}`` when more follows."""
    parts = [p for p in path[len(root):].split("/") if p]
    i = 0
    while i + 2 < len(parts) and parts[i] in _GROUPING and parts[i + 1].startswith("{"):
        i += 2
    rest = [p for p in parts[i:] if not p.startswith("{")]
    return rest[0] if rest else (parts[0] if parts else root.strip("/"))
