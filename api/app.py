"""The Falcon app: ``/unit_api`` on every unit, ``/api`` on the leader.

``create_app`` builds it from a plugin :class:`Registry`; ``get_app`` is what
gunicorn loads (``gunicorn 'reactorkit.api.app:get_app()'``, or ``pio serve``).
Plugins add routes through the ``register_routes`` hook; a route's resource class that
takes a ``context`` argument is built with the app's :class:`~reactorkit.api.context.AppContext`.
"""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import falcon

from reactorkit.api import errors
from reactorkit.api.context import AppContext, build_resource
from reactorkit.api.resources.system import AppVersion, Health
from reactorkit.api.unit import mount as mount_jobs_tasks_descriptors
from reactorkit.core.config import Config, get_config, get_unit_name, is_leader, recheck_config_files
from reactorkit.core.descriptors import resolve
from reactorkit.core.plugins import Registry, make_plugin_manager

logger = logging.getLogger("reactorkit.api")


class App(falcon.App):
    """``falcon.App`` with a ``context``: an :class:`~reactorkit.api.context.AppContext` (``registry``,
    ``config``, ``unit``, ``leader``, ``leader_db``, ``fanout``) once :func:`create_app` has built it."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.context: Any = SimpleNamespace()
        self.route_table: dict[str, tuple[object, dict[str, object]]] = {}

    def add_route(self, uri_template: str, resource: object, **kwargs: object) -> None:
        """As ``falcon.App.add_route``; also recorded in ``route_table`` (template → ``(resource, kwargs)``),
        which the OpenAPI document is generated from (:mod:`reactorkit.api.openapi.catalog`)."""
        super().add_route(uri_template, resource, **kwargs)
        self.route_table[uri_template] = (resource, kwargs)


class RecheckReplacedFiles:
    """Middleware: at the start of each request, the serving thread's leader-database connection is told to
    check, at its next use, that the file was not replaced (a state archive imported: the connection would go
    on writing into the replaced file, and the rows would be lost). One ``stat`` per request that uses the
    database (:meth:`reactorkit.core.leader_db.LeaderDB.recheck_file`), none for the others.

    And the config files: one ``stat`` of each per request; when one was replaced since this worker process
    read them (a sibling gunicorn worker saved it through ``…/config…``, a state archive was imported), the
    cached config and the clock built from its ``[simulation]`` section are forgotten
    (:func:`reactorkit.core.config.recheck_config_files`): a changed ``speedup`` or ``clock_origin`` reaches
    this worker's "now" (the pump limits' last hour, timestamps) as it reaches the jobs started afterwards, and
    the app's ``context.config`` (:func:`create_app`) is the files' new content from this request on."""

    def __init__(self, context: AppContext) -> None:
        self.context = context

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        recheck_config_files()
        db = self.context._db
        if db is not None:
            db.recheck_file()


def _dumps() -> Any:
    """``obj -> bytes``: orjson (about 7× quicker than the standard library on small bodies, 15× on
    large ones; NaN and infinities become ``null``, i.e. valid JSON), the standard library for what
    orjson refuses (integers beyond 64 bits, unknown types: the same TypeError as before)."""
    import json

    try:
        import orjson
    except ImportError:
        return None
    options = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY

    def dumps(obj: Any) -> bytes:
        try:
            return orjson.dumps(obj, option=options)
        except TypeError:
            return json.dumps(obj, ensure_ascii=False).encode()

    return dumps


def install_json_encoder(app: falcon.App) -> None:
    """Responses' ``resp.media`` encoded with :func:`_dumps` (request bodies keep the standard parser)."""
    dumps = _dumps()
    if dumps is None:
        return
    handler = falcon.media.JSONHandler(dumps=dumps)
    app.resp_options.media_handlers[falcon.MEDIA_JSON] = handler


def create_app(registry: Registry, *, config: Config | None = None, unit: str | None = None,
               leader: bool | None = None) -> falcon.App:
    """Build the WSGI app.

    Args:
        registry: What the installed plugins contribute.
        config: Merged config, used as given for the app's life (tests). Default: this unit's config as it is
            at each request (:func:`~reactorkit.core.config.get_config`, forgotten when a file was saved or
            replaced: :class:`RecheckReplacedFiles`).
        unit: This unit's name (default ``$HOSTNAME``).
        leader: Mount ``/api`` (default: this unit is ``[cluster.topology] leader_hostname``).

    Which settings a save through the API changes without a restart: every one a route, the health check,
    the fan-out, the unit probes, the token push, ``?wait=``'s cap or the JSON body bounds read
    (``context.config``, read per request). Taken once here, a restart needed: this unit's name and
    whether it serves ``/api`` (the routes mounted), the storage files' paths (databases, audit log,
    opened once), and the API's security: ``[api] auth`` and ``cors_origins`` — which the API refuses to
    change (:mod:`reactorkit.core.config_guard`); set in the unit's files by its owner, they apply when the
    server restarts, so no file swapped under a running server turns authentication off or lets another
    origin in.
    """
    given = config
    config = config or get_config()
    unit = unit or get_unit_name()
    leader = is_leader(config) if leader is None else leader
    app = App()
    install_json_encoder(app)
    app.context = context = AppContext(registry, given, unit, leader)
    live = context.config_source()  # () -> the app's config as it is now
    app.req_options.strip_url_path_trailing_slash = True
    errors.install(app)
    from reactorkit.api.security import auth, browser, tokens_api

    # the API's security is taken once, from the files as the server starts (see above): the API cannot change
    # [api] auth or cors_origins, and a server restarted by its owner applies theirs
    enabled = auth.auth_enabled(config)
    app.context.auth_enabled = enabled
    if not enabled:
        auth.warn_auth_off(unit)
    origins = browser.allowed_origins(config)
    cors = browser.cors_middleware(origins)
    # before every other check: CORS (only for listed origins), foreign origins, the caller's token and scope,
    # then the body's media type
    app.add_middleware([m for m in (RecheckReplacedFiles(context), cors, browser.OriginMiddleware(origins),
                                    auth.AuthMiddleware(app, enabled=enabled), browser.ContentTypeMiddleware(app))
                        if m is not None])
    tokens_api.mount(app, config=live, leader=leader)
    from reactorkit.api.security import audit

    app.context.audit_log = audit.install(app, config=config, unit=unit, leader=leader)
    from reactorkit.api.body_limits import install as bound_json_bodies

    bound_json_bodies(app, live)  # 413 above [api] max_body_bytes; nesting and text length bounded
    app.add_route("/unit_api/health", Health(unit, live, leader))
    app.add_route("/unit_api/versions/app", AppVersion())
    mount_jobs_tasks_descriptors(app, context)
    from reactorkit.api.unit.host import mount as mount_host

    mount_host(app)  # disk space, memory, IPv4 (the web UI shows them)
    if leader:  # inventory, experiments, logs, time series, config (leader database)
        from reactorkit.api.leader import add_routes as mount_leader_api

        app.context.leader_api = mount_leader_api(app, registry, unit=unit, context=context)
        from reactorkit.api.security import login
        from reactorkit.api.webui import mount as mount_web_ui

        login.mount(app)  # /login, /logout: a token for the UI's cookie
        mount_web_ui(app)  # the web UI at / (every path but /api and /unit_api)
    for route in registry.routes.values():
        if route.leader_only and not leader:
            continue
        try:
            app.add_route(route.path, build_resource(resolve(route.resource), context))
        except Exception as exc:  # a plugin's broken route never takes the API down
            logger.error("route %s from %s not mounted: %s", route.path, route.source, exc)
    from reactorkit.api.openapi import install as install_openapi

    install_openapi(app)  # openapi.json + docs pages, validation, ?wait=, Reactorkit-Version (after all routes)
    return app


def warm_up(app: falcon.App) -> None:
    """Do once, as a server's worker process starts, what its first requests would otherwise do while their
    callers wait: build the OpenAPI catalog (which the request validation and the token check read) and
    import what a job's start through the API uses (jsonschema for its body, redis for its run window and the
    health check, rq for its task).

    Why: each gunicorn worker process built and imported these at its own first requests, ~0.5 s of CPU
    (a fresh app, 15:12 UTC at load 13: first health request 559 ms, first ``POST …/jobs/run/…`` 263–414
    ms, the second 4–8 ms), and 0.4–2.0 s on a loaded machine: a job's first start through the API after the
    server (re)started waited that long, most of it before the API had taken the job's 1 s run window.
    A failure here is logged and left to the first request, as before.
    """
    from reactorkit.api.openapi.catalog import catalog_of

    try:
        catalog_of(app)
        import jsonschema  # noqa: F401
        import redis  # noqa: F401
        import rq  # noqa: F401
    except Exception as exc:  # a plugin's broken route or a missing package never keeps a worker from starting
        logger.warning("warming the API up failed (its first requests will do it): %s", exc)


def get_app() -> falcon.App:
    """For gunicorn: ``gunicorn 'reactorkit.api.app:get_app()'`` (each worker process builds its app, warmed
    up: :func:`warm_up`)."""
    app = create_app(Registry.from_plugins(*make_plugin_manager()))
    warm_up(app)
    return app
