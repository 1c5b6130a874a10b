"""The web UI at ``/`` on the leader: the installed Pioreactor UI build, with SPA fallback.

The build's ``index.html`` loads its assets from ``/static/…`` (the build's own
root), so ``/static/<file>`` and ``/<file>`` both serve ``<build>/<file>``. Every
other path that is not under ``/api`` or ``/unit_api`` answers ``index.html``:
the UI routes itself in the browser (``/overview``, ``/pioreactors/worker1`` …).

With authentication on, a page of the UI (not one of its files) asked for without
the login cookie is redirected to ``/login`` (:mod:`reactorkit.api.security.login`).

``/exports/<file>`` serves the leader's export archives (``$DOT_PIOREACTOR/exports``),
where the UI downloads a finished dataset export from.

The build is looked up on every request (``[ui] static_dir``, else the build
``pio ui install`` recorded), so installing one needs no restart. Without a
build, ``/`` answers a short page saying how to install one.

Mounting it removes the ``$DOT_PIOREACTOR/ui/.install-*`` folders that killed
installs left behind (:func:`reactorkit.core.webui.build.remove_stale_installs`:
not while an install runs, never through a link).
"""

from __future__ import annotations

import html
import logging
import mimetypes
import re
from pathlib import Path
from typing import Any, Callable

import falcon

from reactorkit.core.paths import UnsafePath, safe_join

logger = logging.getLogger(__name__)

# every path but /api…, /unit_api… (those 404 in the contract's JSON shape when no route matches)
UI_PATHS = re.compile(r"^/(?!(?:api|unit_api)(?:/|$))")
ASSET_PREFIX = "static/"
HASHED_ASSETS = "static/"  # <build>/static/*-<hash>.js|css: names change with their content

NO_BUILD_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>reactorkit: no web UI installed</title>
<style>body{{font-family:sans-serif;max-width:44em;margin:3em auto;line-height:1.5}}code{{background:#eee;padding:0 .3em}}</style>
</head><body>
<h1>No web UI is installed on this leader</h1>
<p>The API runs: see <a href="/api/docs">/api/docs</a> and <a href="/unit_api/docs">/unit_api/docs</a>.</p>
<p>To serve the Pioreactor web UI here, install its build (it is fetched from the package index):</p>
<pre><code>pio ui install</code></pre>
<p>or point <code>[ui] static_dir</code> in <code>config.ini</code> at a folder holding a build's
<code>index.html</code>. {detail}</p>
</body></html>
"""


class WebUI:
    """Falcon sink serving the UI build (``GET``/``HEAD``), mounted with :data:`UI_PATHS`.

    Args:
        locate: Returns the build folder, or None when there is none (called per request).
    """

    def __init__(self, locate: Callable[[], Path | None], *, auth: bool = False) -> None:
        self.locate = locate
        self.auth = auth

    def __call__(self, req: falcon.Request, resp: falcon.Response, **params: Any) -> None:
        if req.method not in ("GET", "HEAD"):
            raise falcon.HTTPMethodNotAllowed(["GET", "HEAD"])
        build = self.locate()
        if build is None:
            resp.status = falcon.HTTP_200 if req.path == "/" else falcon.HTTP_404
            resp.content_type = falcon.MEDIA_HTML
            detail = "" if req.path == "/" else f"(You asked for <code>{html.escape(req.path)}</code>.)"
            resp.text = NO_BUILD_PAGE.format(detail=detail)
            return
        file = self.file_of(build, req.path)
        if file is None and self.auth:
            from reactorkit.api.security.login import has_session

            if not has_session(req):  # a page of the UI without a login: to the login page, then back
                from urllib.parse import quote

                resp.status = falcon.HTTP_303
                resp.location = "/login?next=" + quote(req.relative_uri, safe="")
                return
        if file is None:
            file = build / "index.html"
            resp.cache_control = ["no-cache"]
        elif file.relative_to(build).as_posix().startswith(HASHED_ASSETS):
            resp.cache_control = ["public", "max-age=31536000", "immutable"]
        else:
            resp.cache_control = ["no-cache"]
        resp.content_type = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        if file.suffix == ".js":
            resp.content_type = "text/javascript"
        resp.content_length = file.stat().st_size
        if req.method == "GET":
            resp.stream = open(file, "rb")

    @staticmethod
    def file_of(build: Path, path: str) -> Path | None:
        """The build's file for a request path (``/static/x`` or ``/x``), or None (SPA fallback)."""
        relative = path.lstrip("/")
        candidates = [relative]
        if relative.startswith(ASSET_PREFIX):
            candidates.insert(0, relative[len(ASSET_PREFIX):])
        for candidate in candidates:
            if not candidate:
                continue
            try:
                file = safe_join(build, *candidate.split("/"))
            except UnsafePath:
                continue
            if file.is_file():
                return file
        return None


class ExportDownload:
    """``GET /exports/{filename}``: an export archive of ``$DOT_PIOREACTOR/exports`` (404 when absent)."""

    def on_get(self, req: falcon.Request, resp: falcon.Response, filename: str) -> None:
        from reactorkit.core.paths import dot_pioreactor

        try:
            file = safe_join(dot_pioreactor() / "exports", filename)
        except UnsafePath:
            file = None
        if file is None or not file.is_file() or filename.startswith("."):
            raise falcon.HTTPNotFound(title="Export not found.",
                                      description=f"No export named {filename!r} on this leader.")
        resp.content_type = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        resp.downloadable_as = file.name
        resp.content_length = file.stat().st_size
        resp.stream = open(file, "rb")


def mount(app: Any) -> None:
    """Serve the UI on ``app`` (the leader's): a sink for every path but ``/api`` and ``/unit_api``;
    the build is the one of ``app.context.config`` (``[ui] static_dir``) or the installed one.

    First removes the leftovers of killed UI installs (:func:`~reactorkit.core.webui.build.remove_stale_installs`);
    a UI folder that cannot be opened or locked for that is logged, and the UI is mounted all the same."""
    from reactorkit.core.webui.build import remove_stale_installs, static_dir

    try:
        remove_stale_installs(echo=logger.warning)
    except OSError as exc:
        logger.warning("leftovers of interrupted web UI installs were not looked for: %s", exc)
    context = app.context
    app.add_route("/exports/{filename}", ExportDownload())
    app.add_sink(WebUI(lambda: static_dir(context.config), auth=getattr(context, "auth_enabled", False)), UI_PATHS)
