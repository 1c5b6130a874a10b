"""Time-series endpoints (domain facts §4.3), all units and per unit, named and fallback.

Query parameters: ``lookback`` hours (default 4.0, ≥ 0) and ``target_points``
(default 720, > 0); anything else is a 400 naming the parameter. The window
ends at "now" on the cluster clock. Responses are
``{"series": [names], "data": [[{"x", "y"}, …], …]}`` with ``Cache-Control:
max-age=5``; see :mod:`reactorkit.api.leader.series` for the sampling.
"""

from __future__ import annotations

import falcon

from reactorkit.api.errors import ApiError
from reactorkit.api.leader import series
from reactorkit.api.openapi.schemas.leader import named_series_operations
from reactorkit.api.leader.common import (
    Context,
    float_param,
    int_param,
    raw_json,
    require_experiment,
    require_worker,
)
from reactorkit.core.clock import get_clock, utc_iso_ms

DEFAULT_LOOKBACK_H = 4.0
DEFAULT_TARGET_POINTS = 720
MAX_AGE_S = 5


def window(req: falcon.Request) -> tuple[str, str, int]:
    """``(lo, hi, target_points)`` from the query string.

    Raises:
        ApiError: 400 naming ``lookback`` or ``target_points``.
    """
    lookback = float_param(req, "lookback", DEFAULT_LOOKBACK_H, minimum=0.0)
    target = int_param(req, "target_points", DEFAULT_TARGET_POINTS, minimum=1)
    now = get_clock().now()
    lookback_s = min(lookback * 3600.0, now)  # far lookbacks reach the epoch, not before
    return utc_iso_ms(now - lookback_s), utc_iso_ms(now), target


class NamedSeries:
    """``GET /api/experiments/{experiment}/time_series/<data_source>`` and the per-worker variant."""

    def __init__(self, ctx: Context, data_source: str, *, per_worker: bool = False) -> None:
        spec = series.named_series_specs(ctx.registry).get(data_source)
        if spec is None:
            raise ValueError(f"unknown named series {data_source!r}: no table declares time_series")
        self.ctx = ctx
        self.data_source = data_source
        self.spec = spec
        self.openapi = named_series_operations(data_source, per_worker=per_worker)

    def on_get(self, req: falcon.Request, resp: falcon.Response, experiment: str,
               pioreactor_unit: str | None = None) -> None:
        lo, hi, target = window(req)
        require_experiment(self.ctx, experiment)
        if pioreactor_unit is not None:
            require_worker(self.ctx, pioreactor_unit)
        raw_json(resp, series.named_series(self.ctx.db, self.spec, experiment, lo, hi, target,
                                           unit=pioreactor_unit), max_age=MAX_AGE_S)


class FallbackSeries:
    """``GET /api/experiments/{experiment}/time_series/{data_source}/{column}`` and the per-worker variant."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def on_get(self, req: falcon.Request, resp: falcon.Response, experiment: str, data_source: str, column: str,
               pioreactor_unit: str | None = None) -> None:
        lo, hi, target = window(req)
        require_experiment(self.ctx, experiment)
        if pioreactor_unit is not None:
            require_worker(self.ctx, pioreactor_unit)
        try:
            text = series.fallback_series(self.ctx.db, data_source, column, experiment, lo, hi, target,
                                          unit=pioreactor_unit)
        except series.SeriesQueryError as exc:
            raise ApiError(falcon.HTTP_400, f"Cannot read {data_source}/{column}.", cause=str(exc),
                           remediation="Use a table with experiment, pioreactor_unit and timestamp columns "
                                       "(see GET /api/charts/descriptors for data_source and column).") from None
        raw_json(resp, text, max_age=MAX_AGE_S)
