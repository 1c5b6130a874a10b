"""Health and version endpoints of ``/unit_api``."""

from __future__ import annotations

import falcon

from reactorkit import __version__
from reactorkit.core.clock import utc_iso_ms
from reactorkit.core.clock import get_clock


class Health:
    """``GET /unit_api/health``: ``{"status": "ok", "pioreactor_unit", "utc_time"}``."""

    def __init__(self, unit: str) -> None:
        self.unit = unit

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"status": "ok", "pioreactor_unit": self.unit, "utc_time": utc_iso_ms(get_clock().now())}


class AppVersion:
    """``GET /unit_api/versions/app``: ``{"version": "<reactorkit version>"}``."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"version": __version__}
