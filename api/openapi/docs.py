"""The OpenAPI documents and the docs pages (Swagger UI from the package's ``static/`` folder, no CDN)."""

from __future__ import annotations

import html
import json
import threading
from pathlib import Path
from typing import Any

import falcon

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
STATIC_URL = "/unit_api/static"


class OpenApiDocument:
    """``GET {root}/openapi.json``: the OpenAPI 3.1 document of ``root``, built once on first request."""

    def __init__(self, app: Any, root: str, max_wait_s: float) -> None:
        self.app = app
        self.root = root
        self.max_wait_s = max_wait_s
        self._text: str | None = None
        self._lock = threading.Lock()

    def text(self) -> str:
        """The document as JSON text (cached)."""
        if self._text is None:
            with self._lock:
                if self._text is None:
                    from reactorkit.api.openapi.document import build

                    self._text = json.dumps(build(self.app, self.root, max_wait_s=self.max_wait_s))
        return self._text

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
