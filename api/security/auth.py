"""Authentication and authorization of every request (Falcon middleware).

After routing, :class:`AuthMiddleware` finds the operation a request reached in
the app's catalog, the scope it needs (:func:`reactorkit.core.auth.scopes.scope_for`,
or the operation's declared ``"scope"``), and the caller's token: ``Authorization:
Bearer <token>``, or the web UI's login cookie (:data:`COOKIE`). The token is checked
against this unit's token file (no call to the leader). Missing or unknown token:
401; a scope too small: 403; both in the contract's error shape. Public: health,
the OpenAPI documents and docs pages, the web UI's files and its login page.

``[api] auth = off`` (or ``REACTORKIT_API_AUTH=off`` in the server's environment)
turns the checks off for a closed bench network; the server says so loudly at start.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import falcon

from reactorkit.api.errors import ApiError
from reactorkit.api.openapi.catalog import catalog_of
from reactorkit.core.auth.scopes import PUBLIC, covers, scope_for
from reactorkit.core.auth.tokens import TokenRecord, TokenStore

logger = logging.getLogger("reactorkit.api.auth")

COOKIE = "reactorkit_token"
ROOTS = ("/api", "/unit_api")
ENV = "REACTORKIT_API_AUTH"
_OFF = ("0", "off", "false", "no", "none", "disabled")


def auth_enabled(config: Any) -> bool:
    """``$REACTORKIT_API_AUTH``, else ``[api] auth`` (default on); ``off``/``0``/``false``/``no`` turn it off."""
    raw = os.environ.get(ENV)
    if raw is None and config is not None:
        raw = config.get("api", "auth", fallback=None)
    return (raw or "on").strip().lower() not in _OFF


def warn_auth_off(unit: str) -> None:
    """The loud start-up notice of a server without authentication."""
    banner = "!" * 78
    logger.warning("%s\n  %s: API AUTHENTICATION IS OFF ([api] auth = off or %s=off).\n"
                   "  Anyone who can reach this port controls the unit. Use it only on a closed bench network.\n%s",
                   banner, unit, ENV, banner)


def presented_token(req: falcon.Request) -> str | None:
    """The bearer token of ``Authorization``, else the login cookie's, else None."""
    header = req.get_header("Authorization")
    if header:
        kind, _, value = header.strip().partition(" ")
        if kind.lower() == "bearer" and value.strip():
            return value.strip()
        return None
    cookies = req.get_cookie_values(COOKIE)
    return cookies[0] if cookies else None


def needed_scope(app: Any, req: falcon.Request) -> str:
    """The scope the operation ``req`` was routed to needs (``public`` for non-API paths)."""
    operation = catalog_of(app).get(req.method, req.uri_template)
    if operation is not None:
        return operation_scope(operation)
    if req.method == "OPTIONS":
        return PUBLIC
    if any(req.path == root or req.path.startswith(root + "/") for root in ROOTS):
        return scope_for(req.method, req.path)  # an unknown API path: at least a read token (then 404)
    return PUBLIC


def operation_scope(operation: Any) -> str:
    """The scope of a catalog :class:`~reactorkit.api.openapi.catalog.Operation` (its declared ``"scope"``, else
    derived from its method and path).

    Raises:
        ValueError: the operation declares a scope that does not exist.
    """
    return scope_for(operation.method, operation.path, operation.spec.get("scope"))


def unauthorized(cause: str) -> ApiError:
    error = ApiError(falcon.HTTP_401, "Authentication required.", cause=cause,
                     remediation="Send 'Authorization: Bearer <token>'. Create a token on the leader with "
                                 "`pio tokens create --name NAME --scope read|control|admin`.")
    error.headers = {"WWW-Authenticate": 'Bearer realm="reactorkit"'}
    return error


def forbidden(record: TokenRecord, needed: str, req: falcon.Request) -> ApiError:
    return ApiError(falcon.HTTP_403, "Scope too small.",
                    cause=f"{req.method} {req.path} needs the '{needed}' scope; token '{record.name}' "
                          f"({record.id}) has '{record.scope}'.",
                    remediation=f"Use a token with the '{needed}' scope (`pio tokens create --scope {needed}`).")


class AuthMiddleware:
    """Checks the caller's token and scope before any other middleware or responder acts.

    Sets ``req.context.params`` (the path fields), ``req.context.token``  (the :class:`TokenRecord`, or None on public operations and with auth off)
    and ``req.context.auth`` (``"token"``, ``"cookie"``, ``"off"`` or ``"public"``).

    Args:
        app: The Falcon app (its catalog says what each operation needs).
        enabled: False for ``[api] auth = off``.
    """

    def __init__(self, app: Any, *, enabled: bool = True) -> None:
        self.app = app
        self.enabled = enabled
        # per request these were most of the middleware's time: the scope of a routed operation (fixed once the
        # app is built) and the token file's path (fixed while $DOT_PIOREACTOR is)
        self._scopes: dict[tuple[str, str], str] = {}
        self._store: tuple[str | None, TokenStore] | None = None

    def scope(self, req: falcon.Request) -> str:
        """:func:`needed_scope` of ``req``, remembered per routed operation (method and URI template)."""
        key = (req.method, req.uri_template)
        found = self._scopes.get(key) if key[1] is not None else None
        if found is None:
            found = needed_scope(self.app, req)
            if key[1] is not None and catalog_of(self.app).get(*key) is not None:
                self._scopes[key] = found
        return found

    def store(self) -> TokenStore:
        """This unit's :class:`TokenStore` (made again when ``$DOT_PIOREACTOR`` changes; it re-reads its file
        whenever the file changes)."""
        root = os.environ.get("DOT_PIOREACTOR")
        cached = self._store
        if cached is None or cached[0] != root:
            cached = self._store = (root, TokenStore())
        return cached[1]

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.token = None
        req.context.auth = "off" if not self.enabled else "public"

    def process_resource(self, req: falcon.Request, resp: falcon.Response, resource: Any, params: Any) -> None:
        req.context.params = dict(params or {})  # for the audit log, even when the request is refused here
        if not self.enabled:
            return
        needed = self.scope(req)
        token = presented_token(req)
        if needed == PUBLIC and token is None:
            return
        if token is None:
            raise unauthorized(f"{req.method} {req.path} needs a token with the '{needed}' scope; none was sent.")
        record = self.store().verify(token)
        if record is None:
            if needed == PUBLIC:
                return
            raise unauthorized("The token is unknown, revoked or expired on this unit.")
        req.context.token = record
        req.context.auth = "token" if req.get_header("Authorization") else "cookie"
        if not covers(record.scope, needed):
            raise forbidden(record, needed, req)
