"""The ``Reactorkit-Version`` header: which version of the HTTP API a client speaks.

The API is versioned on its own, with a plain integer (the idea of Opentrons'
``Opentrons-Version``). A request may name the version it was written for;
``*`` means "the newest you have" (for trying things out, not for programs).
A request naming a version this server does not support gets a 400 that lists
the supported ones; a request without the header is served as the newest
version. Every response carries ``Reactorkit-Version: <newest>``.
"""

from __future__ import annotations

from typing import Any

import falcon

from reactorkit.api.errors import ApiError

HEADER = "Reactorkit-Version"
SUPPORTED: tuple[str, ...] = ("1",)
"""Versions this server speaks, oldest first."""
LATEST = SUPPORTED[-1]
ANY = "*"


def requested(req: falcon.Request) -> str:
    """The version a request asks for (``LATEST`` without the header or for ``*``).

    Raises:
        ApiError: 400 when the header names a version that is not supported.
    """
    raw = req.get_header(HEADER)
    if raw is None:
        return LATEST
    value = raw.strip()
    if value == ANY:
        return LATEST
    if value in SUPPORTED:
        return value
    raise ApiError(
        falcon.HTTP_400, f"Unsupported {HEADER}.",
        cause=f"{HEADER} {raw!r} is not supported; this server supports {', '.join(SUPPORTED)} (or {ANY} for the "
              "newest).",
        remediation=f"Send {HEADER}: {LATEST}, or leave the header out.",
    )


class VersionMiddleware:
    """Rejects unsupported versions before routing and stamps every response (errors included)."""

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.api_version = LATEST
        req.context.api_version = requested(req)

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource: Any,
                         req_succeeded: bool) -> None:
        resp.set_header(HEADER, getattr(req.context, "api_version", LATEST))
        exposed = resp.get_header("Access-Control-Expose-Headers")
        if not exposed or HEADER.lower() not in exposed.lower():
            resp.set_header("Access-Control-Expose-Headers", f"{exposed}, {HEADER}" if exposed else HEADER)


def parameter() -> dict[str, Any]:
    """The OpenAPI request-header parameter."""
    return {
        "name": HEADER, "in": "header", "required": False,
        "schema": {"type": "string", "enum": [*SUPPORTED, ANY]},
        "description": f"The API version the client speaks ({', '.join(SUPPORTED)}; {ANY} = the newest). Others: 400.",
    }


def response_header() -> dict[str, Any]:
    """The OpenAPI response header."""
    return {"description": "The API version of this response.", "schema": {"type": "string", "enum": list(SUPPORTED)}}
