"""The browser boundary: CORS, foreign origins and content types.

* **CORS** is off unless ``[api] cors_origins`` lists origins
  (``https://lab.example.org http://10.0.0.5:3000``, space or comma separated):
  only those get ``Access-Control-Allow-Origin`` (with credentials), and only for
  the headers and methods the API uses (:func:`cors_middleware`).
* **Foreign origins**: a state-changing request (anything but GET, HEAD,
  OPTIONS) whose ``Origin`` is neither this server's own nor a listed one, or that
  the browser marks ``Sec-Fetch-Site: cross-site``, is refused with 403 before
  routing (:class:`OriginMiddleware`). Clients that are not browsers send no
  ``Origin`` and are not affected.
* **Content types**: a request body must be of the media type its operation
  declares (``application/json`` unless the operation says otherwise, e.g. a
  multipart upload): anything else is 415, so an HTML form (form-encoded, multipart
  or text/plain — the bodies a page may send to another site without asking) never
  reaches a JSON endpoint (:class:`ContentTypeMiddleware`).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import falcon

from reactorkit.api.errors import ApiError

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
_SPLIT = re.compile(r"[\s,]+")


def allowed_origins(config: Any) -> list[str]:
    """``[api] cors_origins`` as a list of ``scheme://host[:port]`` (empty: CORS off)."""
    raw = config.get("api", "cors_origins", fallback="") if config is not None else ""
    return [o.rstrip("/") for o in _SPLIT.split(raw or "") if o]


def cors_middleware(origins: list[str]) -> Any:
    """Falcon's CORS middleware for ``origins`` (None when the list is empty: no CORS headers at all)."""
    if not origins:
        return None
    return falcon.CORSMiddleware(allow_origins=origins, allow_credentials=origins,
                                 expose_headers=["Reactorkit-Version", "Location", "Content-Disposition"])


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    port = parts.port
    default = {"http": 80, "https": 443}.get(parts.scheme)
    netloc = parts.hostname or ""
    if port and port != default:
        netloc += f":{port}"
    return f"{parts.scheme}://{netloc}".lower()


def same_origin(req: falcon.Request, origin: str) -> bool:
    """True when ``origin`` (an ``Origin`` header) names the server the request was sent to."""
    if origin == "null":
        return False
    return _origin_of(origin) == _origin_of(f"{req.scheme}://{req.get_header('Host') or req.host}")


class OriginMiddleware:
    """Refuses state-changing requests from foreign origins (403, before routing).

    Args:
        origins: The listed CORS origins (also allowed to change state).
    """

    def __init__(self, origins: list[str]) -> None:
        self.origins = {_origin_of(o) for o in origins}

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        if req.method in SAFE_METHODS:
            return
        origin = req.get_header("Origin")
        if origin is not None:
            if same_origin(req, origin) or (origin != "null" and _origin_of(origin) in self.origins):
                return
            raise refused(f"Origin {origin!r} is neither this server nor one of [api] cors_origins.")
        if (req.get_header("Sec-Fetch-Site") or "").lower() == "cross-site":
            raise refused("The browser marked the request cross-site (Sec-Fetch-Site).")


def refused(cause: str) -> ApiError:
    return ApiError(falcon.HTTP_403, "Cross-origin request refused.", cause=cause,
                    remediation="Call the API from the web UI it serves, or from a program; to allow another site, "
                                "add its origin to [api] cors_origins.")


def body_present(req: falcon.Request) -> bool:
    length = req.content_length
    return bool(length) or (length is None and req.get_header("Transfer-Encoding") is not None)


def media_type(req: falcon.Request) -> str:
    return (req.content_type or "").split(";")[0].strip().lower()


def accepts(declared: list[str], media: str) -> bool:
    for kind in declared:
        if media == kind or (kind == "application/json" and media.startswith("application/") and
                             media.endswith("+json")):
            return True
    return False


class ContentTypeMiddleware:
    """415 for a request body whose media type the operation does not take (after authentication).

    An operation's description may list what it takes in ``"accept"``; else its ``body_content``
    (default ``application/json``).
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    def process_resource(self, req: falcon.Request, resp: falcon.Response, resource: Any, params: Any) -> None:
        if req.method in SAFE_METHODS or not body_present(req):
            return
        from reactorkit.api.openapi.catalog import catalog_of

        operation = catalog_of(self.app).get(req.method, req.uri_template)
        spec = operation.spec if operation is not None else {}
        declared = list(spec.get("accept") or [spec.get("body_content") or "application/json"])
        media = media_type(req)
        if not accepts(declared, media):
            raise ApiError(falcon.HTTP_415, "Unsupported media type.",
                           cause=f"{req.method} {req.path} takes {' or '.join(declared)} bodies; this one is "
                                 f"{media or 'without a Content-Type'}.",
                           remediation=f"Send the body with Content-Type: {declared[0]}.")
