"""Audit middleware and ``GET /api/audit`` / ``GET /unit_api/audit`` (admin); see :mod:`reactorkit.core.audit`."""

from __future__ import annotations

import logging
from typing import Any

import falcon

from reactorkit.api.openapi.schemas.common import INT, STR, array, nullable, obj, op
from reactorkit.core.audit import AuditLog, audit_path

logger = logging.getLogger("reactorkit.api.audit")
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
ROW = obj(id=INT, timestamp=STR, pioreactor_unit=STR, experiment=nullable(STR), actor=STR, token_id=nullable(STR),
          scope=nullable(STR), method=STR, path=STR, query=nullable(STR), status=INT, remote_addr=nullable(STR))


def _experiment(req: falcon.Request, params: dict[str, Any]) -> str | None:
    if params.get("experiment"):
        return str(params["experiment"])
    if (req.content_type or "").startswith("application/json"):
        try:
            body = req.get_media(default_when_empty=None)
        except Exception:
            return None
        if isinstance(body, dict) and isinstance(body.get("experiment"), str):
            return body["experiment"]
    return None


class AuditMiddleware:
    """Appends a row for every request that is not a GET, HEAD or OPTIONS, whatever its outcome.

    Args:
        log: Where rows go.
        unit: This unit's name.
    """

    def __init__(self, log: AuditLog, unit: str) -> None:
        self.log = log
        self.unit = unit

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource: Any,
                         req_succeeded: bool) -> None:
        if req.method in SAFE_METHODS:
            return
        record = getattr(req.context, "token", None)
        mode = getattr(req.context, "auth", "public")
        actor = record.name if record is not None else ("auth-off" if mode == "off" else "anonymous")
        try:
            self.log.append(pioreactor_unit=self.unit,
                            experiment=_experiment(req, getattr(req.context, "params", None) or {}),
                            actor=actor, token_id=getattr(record, "id", None), scope=getattr(record, "scope", None),
                            method=req.method, path=req.path, query=req.query_string or None,
                            status=int(str(resp.status).split()[0]), remote_addr=req.remote_addr)
        except Exception:  # the audit log must not turn an answered request into an error
            logger.exception("could not append to the audit log %s", self.log.path)


QUERY = {"limit": {"type": "integer", "minimum": 1, "maximum": 100000, "description": "Newest rows (default 1000)."},
         "experiment": STR, "actor": {"type": "string", "description": "A token's name."},
         "unit": STR, "since": {"type": "string", "description": "ISO 8601 UTC; rows at or after it."}}


class Audit:
    """``GET /api/audit`` and ``GET /unit_api/audit`` (admin)."""

    openapi = {"GET": op("The audit log: every state-changing request (who, what, when, result), oldest first.",
                         ok=array(ROW), query=QUERY, description="Needs the admin scope.")}

    def __init__(self, log: AuditLog) -> None:
        self.log = log

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = self.log.read(limit=req.get_param_as_int("limit") or 1000,
                                   experiment=req.get_param("experiment"), actor=req.get_param("actor"),
                                   unit=req.get_param("unit"), since=req.get_param("since"))


def install(app: Any, *, config: Any, unit: str, leader: bool) -> AuditLog:
    """Add the audit middleware and routes to ``app``; returns its :class:`AuditLog`."""
    log = AuditLog(audit_path(config, leader))
    app.add_middleware(AuditMiddleware(log, unit))
    app.add_route("/unit_api/audit", Audit(log))
    if leader:
        app.add_route("/api/audit", Audit(log))
    return log
