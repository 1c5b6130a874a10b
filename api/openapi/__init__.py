"""OpenAPI for the reactorkit API: documents, docs pages, request validation, ``?wait=`` and the version header.

:func:`install` (called by ``create_app`` once every route is mounted) adds:

* ``GET /unit_api/openapi.json`` (every unit) and ``GET /api/openapi.json`` (the
  leader): OpenAPI 3.1 documents generated from the app's routes
  (:mod:`.catalog`) and the operation descriptions of :mod:`.schemas` for the
  core routes; every plugin (built-in or third-party) describes its own routes
  with ``RouteDescriptor(schemas=…)`` or a resource's ``openapi`` attribute; any
  other route still appears, with a generic description;
* ``GET /unit_api/docs`` and ``GET /api/docs``: Swagger UI pages, their assets
  served from the package (``/unit_api/static/…``);
* middleware, in this order: :class:`.version.VersionMiddleware`
  (``Reactorkit-Version``), :class:`.wait.WaitMiddleware` (``?wait=`` on async
  operations) and :class:`.validation.ValidationMiddleware` (path fields, query
  parameters and bodies against the same schemas: 400 naming the field); all
  checks run before the responder.
"""

from __future__ import annotations

from typing import Any

from reactorkit.api.openapi.catalog import Catalog, catalog_of
from reactorkit.api.openapi.docs import STATIC_DIR, STATIC_URL, DocsPage, OpenApiDocument
from reactorkit.api.openapi.validation import ValidationMiddleware
from reactorkit.api.openapi.version import VersionMiddleware
from reactorkit.api.openapi.wait import WaitMiddleware, max_wait_s

__all__ = ["Catalog", "catalog_of", "install"]


def install(app: Any) -> None:
    """Mount the documents, docs pages and static assets, and add the middleware, on ``app``.

    Call it after every route was added (the documents are built on first
    request from what is mounted then). ``app.context`` must carry ``config``,
    ``unit`` and ``leader`` (as ``create_app`` sets them).
    """
    context = app.context
    def cap() -> float:  # [ui] max_wait_seconds as the app's config is now (read at each request)
        return max_wait_s(context.config)

    roots = ["/unit_api"] + (["/api"] if getattr(context, "leader", False) else [])
    for root in roots:
        app.add_route(f"{root}/openapi.json", OpenApiDocument(app, root, cap))
        app.add_route(f"{root}/docs", DocsPage(root))
    app.add_static_route(STATIC_URL, str(STATIC_DIR))
    app.add_middleware([VersionMiddleware(), WaitMiddleware(context.unit, cap), ValidationMiddleware(app)])
