"""Health and version endpoints of ``/unit_api``."""

from __future__ import annotations

import falcon

from reactorkit import __version__
from reactorkit.core.clock import utc_iso_ms
from reactorkit.core.clock import get_clock


class Health:
    """``GET /unit_api/health``: ``{"status": "ok"|"degraded", "pioreactor_unit", "utc_time", "broker", "redis",
    "database"[, "ingestion"]}`` — 200 while the API answers; ``status`` is ``degraded`` when the broker, Redis or
    the database cannot be reached (each ``{"reachable", "latency_ms"|"error"}``), see
    :mod:`reactorkit.api.resources.health_checks`. On the leader ``ingestion`` is
    ``{"running", "lost", "gaps", "missing"}``.
    """

    def __init__(self, unit: str, config: object = None, leader: bool = False) -> None:
        # config: a Config, or () -> Config (the app's as it is now: a broker saved through the API is checked)
        self.unit = unit
        self.checks = None
        if config is not None:
            from reactorkit.api.resources.health_checks import HealthChecks

            self.checks = HealthChecks(config, leader)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = {"status": "ok", "pioreactor_unit": self.unit, "utc_time": utc_iso_ms(get_clock().now())}
        if self.checks is not None:
            checks = self.checks.results()
            body.update(checks)
            if not all(checks[k]["reachable"] for k in ("broker", "redis", "database")):
                body["status"] = "degraded"
        resp.media = body


class AppVersion:
    """``GET /unit_api/versions/app``: ``{"version": "<reactorkit version>"}``."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"version": __version__}
