"""Token routes: ``/api/tokens`` on the leader (list, create, revoke) and ``PUT /unit_api/auth/tokens`` on a
worker (the leader's list, pushed after every change; see :mod:`reactorkit.core.auth.distribute`)."""

from __future__ import annotations

from typing import Any

import falcon

from reactorkit.api.context import as_config_source
from reactorkit.api.errors import ApiError
from reactorkit.api.openapi.schemas.common import STR, array, nullable, obj, op
from reactorkit.core.auth.scopes import SCOPES
from reactorkit.core.auth.tokens import TokenError, TokenStore

SCOPE = {"type": "string", "enum": list(SCOPES)}
RECORD = obj(id=STR, name=STR, scope=SCOPE, created_at=STR, expires_at=nullable(STR), revoked_at=nullable(STR),
             active={"type": "boolean"})
PUSHED = {"type": "object", "additionalProperties": STR,
          "description": "unit -> ok, or why the worker did not take the list"}


def _bad(exc: Exception) -> ApiError:
    return ApiError(falcon.HTTP_400, "Invalid token request.", cause=str(exc),
                    remediation="Give a name, a scope (read, control or admin) and optionally expires (30d, 12h, "
                                "or an ISO date).")


class Tokens:
    """``GET|POST /api/tokens`` (admin)."""

    openapi = {
        "GET": op("Every API token of the cluster (never its secret), revoked and expired ones included.",
                  ok=array(RECORD), description="Needs the admin scope."),
        "POST": op("Create a token; its secret is in this answer only. The list is pushed to every worker.",
                   body=obj(("name", "scope"), name=STR, scope=SCOPE,
                            expires={"type": ["string", "null"],
                                     "description": "A duration (90m, 12h, 30d, 2w) or an ISO date; null: never."}),
                   body_required=True, status=201,
                   ok=obj(token=STR, record=RECORD, pushed=PUSHED)),
    }

    def __init__(self, config: Any) -> None:
        self._config = as_config_source(config)  # the workers' addresses as they are at each push

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = [r.public() for r in TokenStore().list()]

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        from reactorkit.core.auth.distribute import push_tokens

        body = req.get_media(default_when_empty={}) or {}
        try:
            token, record = TokenStore().create(str(body.get("name") or ""), str(body.get("scope") or ""),
                                                expires=body.get("expires"))
        except TokenError as exc:
            raise _bad(exc) from exc
        resp.status = falcon.HTTP_201
        resp.media = {"token": token, "record": record.public(), "pushed": push_tokens(self._config())}


class Token:
    """``DELETE /api/tokens/{token_id}`` (admin): revoke."""

    openapi = {
        "DELETE": op("Revoke a token (by id or name); the list is pushed to every worker.",
                     ok=obj(record=RECORD, pushed=PUSHED)),
    }

    def __init__(self, config: Any) -> None:
        self._config = as_config_source(config)  # the workers' addresses as they are at each push

    def on_delete(self, req: falcon.Request, resp: falcon.Response, token_id: str) -> None:
        from reactorkit.core.auth.distribute import push_tokens

        try:
            record = TokenStore().revoke(token_id)
        except TokenError as exc:
            raise ApiError(falcon.HTTP_404, "No such token.", cause=str(exc),
                           remediation="GET /api/tokens lists the tokens and their ids.") from exc
        resp.media = {"record": record.public(), "pushed": push_tokens(self._config())}


class UnitTokens:
    """``PUT /unit_api/auth/tokens`` (admin): a worker takes the leader's token list."""

    openapi = {
        "PUT": op("Replace this worker's token list with the leader's (hashes only). Refused on the leader, "
                  "which keeps the list of record.",
                  body=obj(("tokens",), tokens=array(obj(("id", "name", "scope", "sha256", "created_at"),
                                                         id=STR, name=STR, scope=SCOPE, sha256=STR,
                                                         created_at=STR, expires_at=nullable(STR),
                                                         revoked_at=nullable(STR)))),
                  body_required=True, ok=obj(count={"type": "integer"}), responses={409: {}}),
    }

    def __init__(self, leader: bool) -> None:
        self.leader = leader

    def on_put(self, req: falcon.Request, resp: falcon.Response) -> None:
        if self.leader:
            raise ApiError(falcon.HTTP_409, "The leader keeps the token list of record.",
                           cause="PUT /unit_api/auth/tokens replaces a worker's copy; this unit is the leader.",
                           remediation="Create and revoke tokens with `pio tokens` or /api/tokens on the leader.")
        body = req.get_media(default_when_empty={}) or {}
        try:
            count = TokenStore().replace(list(body.get("tokens") or []))
        except TokenError as exc:
            raise _bad(exc) from exc
        resp.media = {"count": count}


def mount(app: Any, *, config: Any, leader: bool) -> None:
    """Add the token routes to ``app``; ``config``: a Config or ``() -> Config`` (the app's as it is now), whose
    ``[cluster.addresses]`` and inventory name the workers a changed list is pushed to."""
    app.add_route("/unit_api/auth/tokens", UnitTokens(leader))
    if leader:
        app.add_route("/api/tokens", Tokens(config))
        app.add_route("/api/tokens/{token_id}", Token(config))
