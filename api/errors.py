"""The contract's error shape for every 4xx/5xx: ``{error, cause, remediation?, status}``."""

from __future__ import annotations

import json
from typing import Any

import falcon
from falcon.util.misc import code_to_http_status

from reactorkit.core.paths import UnsafePath


class ApiError(falcon.HTTPError):
    """An HTTP error with the contract's ``remediation``; ``title`` is its ``error``.

    Args:
        status: Falcon status, e.g. ``falcon.HTTP_400``.
        error: What went wrong, one sentence.
        cause: Why (defaults to ``error``), e.g. which field and what was expected.
        remediation: What the caller should do.
    """

    def __init__(self, status: str, error: str, *, cause: str | None = None, remediation: str | None = None) -> None:
        super().__init__(status, title=error, description=cause)
        self.remediation = remediation


def invalid_config(exc: Exception) -> ApiError:
    """400 for INI text that cannot be saved (``exc`` says where and why)."""
    return ApiError(falcon.HTTP_400, "Invalid config.", cause=str(exc),
                    remediation="Fix the INI text (sections in [brackets], one key = value per line) and save again.")


def protected_setting(exc: Exception) -> ApiError:
    """403 for a config that would change a setting only the unit's owner may set (``exc`` names them)."""
    keys = ", ".join(getattr(exc, "keys", []) or [str(exc)])
    return ApiError(falcon.HTTP_403, "Protected setting.",
                    cause=f"{keys} cannot be set through the API: shell commands and the API's security settings "
                          "are set only in the unit's own files.",
                    remediation="Leave these keys as they are in the text you save; to change them, edit config.ini "
                                "or unit_config.ini on the unit itself.")


def status_code(status: Any) -> int:
    return int(str(status).split()[0])


DEFAULT_REMEDIATIONS = {
    400: "Check the request against the endpoint's schema in the OpenAPI document.",
    404: "Check the path and the names in it (unit, experiment, job).",
    405: "Use one of the methods the endpoint allows (see its Allow header).",
    409: "Choose another name, or update the existing resource instead.",
    413: "Send a smaller body.",
    415: "Send JSON with Content-Type: application/json.",
    429: "Wait a moment and try again.",
}


def serialize_error(req: falcon.Request, resp: falcon.Response, exc: falcon.HTTPError) -> None:
    """Render any ``HTTPError`` (ours or Falcon's) in the contract's shape:
    ``{"error", "cause", "remediation", "status"}`` (a generic remediation when none was given)."""
    code = status_code(exc.status)
    status_line = code_to_http_status(code)
    title = exc.title or "Error"
    if title == status_line:  # Falcon's default title: say it as a sentence, not the status line again
        title = status_line.split(" ", 1)[-1].capitalize() + "."
    cause = exc.description
    remediation = getattr(exc, "remediation", None)
    if code == 405:
        allowed = _allowed_methods(exc)
        cause = cause or f"{req.method} is not one of the methods {req.path} takes ({allowed or 'none'})."
        remediation = remediation or (f"Send the request as {allowed}." if allowed else None)
    body: dict[str, Any] = {"error": title, "cause": cause or f"{req.method} {req.path} answered {status_line}."}
    remediation = remediation or DEFAULT_REMEDIATIONS.get(
        code, "See the unit's log file; report it if it persists." if code >= 500 else "Check the request.")
    body["remediation"] = remediation
    body["status"] = code
    resp.status = exc.status
    resp.content_type = falcon.MEDIA_JSON
    resp.text = json.dumps(body)
    if exc.headers:
        resp.set_headers(exc.headers)


def _allowed_methods(exc: falcon.HTTPError) -> str:
    """``"GET or POST"`` from a 405's Allow header (OPTIONS left out: every path takes it)."""
    allow = (exc.headers or {}).get("Allow", "")
    methods = [m.strip() for m in allow.split(",") if m.strip() and m.strip() != "OPTIONS"]
    return " or ".join(methods)


def _not_found(req: falcon.Request, resp: falcon.Response, ex: Exception, params: Any) -> None:
    raise ApiError(
        falcon.HTTP_404,
        "Not found.",
        cause=f"No route for {req.method} {req.path}.",
        remediation="Check the path against /unit_api/openapi.json (or /api on the leader).",
    )


def _unsafe_path(req: falcon.Request, resp: falcon.Response, ex: UnsafePath, params: Any) -> None:
    raise ApiError(falcon.HTTP_400, "Unsafe path.", cause=str(ex), remediation="Give a relative path inside $DOT_PIOREACTOR.")


def _unexpected(req: falcon.Request, resp: falcon.Response, ex: Exception, params: Any) -> None:
    if isinstance(ex, falcon.HTTPError):
        raise ex
    raise ApiError(falcon.HTTP_500, "Internal server error.", cause=f"{type(ex).__name__}: {ex}",
                   remediation="See the unit's log file; report it if it persists.")


def install(app: falcon.App) -> None:
    """Register the serializer and the domain-exception handlers on ``app``."""
    app.set_error_serializer(serialize_error)
    app.add_error_handler(Exception, _unexpected)
    app.add_error_handler(falcon.HTTPRouteNotFound, _not_found)
    app.add_error_handler(UnsafePath, _unsafe_path)
