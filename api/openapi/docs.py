"""The OpenAPI documents and the docs pages (Swagger UI from the package's ``static/`` folder, no CDN)."""

from __future__ import annotations

import html
import json
import threading
from pathlib import Path
from typing import Any, Callable

import falcon

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
STATIC_URL = "/unit_api/static"


class OpenApiDocument:
    """``GET {root}/openapi.json``: the OpenAPI 3.1 document of ``root``, built on first request and again only
    when the cap of ``?wait=`` it states changed.

    Args:
        app: The app whose routes are documented.
        root: ``/api`` or ``/unit_api``.
        max_wait_s: The cap of ``?wait=`` in seconds, or ``() -> seconds`` (the app's ``[ui] max_wait_seconds``
            as it is now: a cap saved through the API is the one the document states).
    """

    def __init__(self, app: Any, root: str, max_wait_s: float | Callable[[], float]) -> None:
        self.app = app
        self.root = root
        self._max_wait_s = max_wait_s if callable(max_wait_s) else (lambda: max_wait_s)
        self._built: tuple[float, str] | None = None  # (cap, document text)
        self._lock = threading.Lock()

    @property
    def max_wait_s(self) -> float:
        return self._max_wait_s()

    def text(self) -> str:
        """The document as JSON text (cached per cap)."""
        cap = self.max_wait_s
        built = self._built
        if built is None or built[0] != cap:
            with self._lock:
                built = self._built
                if built is None or built[0] != cap:
                    from reactorkit.api.openapi.document import build

                    built = self._built = (cap, json.dumps(build(self.app, self.root, max_wait_s=cap)))
        return built[1]

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = falcon.MEDIA_JSON
        resp.text = self.text()


PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" type="image/png" href="{static}/swagger-ui-favicon.png">
<link rel="stylesheet" href="{static}/swagger-ui.css">
<style>body {{ margin: 0; }} .topbar {{ display: none; }}</style>
</head>
<body>
<div id="api-docs"></div>
<script src="{static}/swagger-ui-bundle.js"></script>
<script>
window.addEventListener("load", function () {{
  window.ui = SwaggerUIBundle({{
    url: {spec_url},
    dom_id: "#api-docs",
    deepLinking: true,
    validatorUrl: null,
    tryItOutEnabled: false,
    displayRequestDuration: true,
    docExpansion: "none",
    filter: true
  }});
}});
</script>
</body>
</html>
"""


class DocsPage:
    """``GET {root}/docs``: Swagger UI over ``{root}/openapi.json``."""

    def __init__(self, root: str) -> None:
        self.root = root

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = "text/html; charset=utf-8"
        resp.text = PAGE.format(title=html.escape(f"reactorkit {self.root} docs"), static=STATIC_URL,
                                spec_url=json.dumps(f"{self.root}/openapi.json"))
