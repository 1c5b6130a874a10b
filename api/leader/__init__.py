"""The leader's ``/api``: inventory, experiments and assignments, logs, time series, media rates, config.

:func:`add_routes` mounts everything on the leader's app (``create_app`` calls
it when the unit is the leader); :func:`routes` lists the paths (the contract
test reads them against ``endpoints.tsv``). The leader database is opened once
per app with the plugins' tables (``register_storage``) created.
"""

from __future__ import annotations

from typing import Any, Callable

from reactorkit.api.leader import config_files as cfg
from reactorkit.api.leader import experiments as ex
from reactorkit.api.leader import logs as lg
from reactorkit.api.leader import time_series as ts
from reactorkit.api.leader import workers as wk
from reactorkit.api.leader.chart_preferences import ChartPreferences
from reactorkit.api.leader.common import Context
from reactorkit.api.leader.models import Models
from reactorkit.api.leader.series import named_series_specs

Factory = Callable[[Context], Any]

EXP = "/api/experiments/{experiment}"
WORKER = "/api/workers/{pioreactor_unit}"
UNIT = "/api/units/{pioreactor_unit}"


def routes(registry: Any = None) -> dict[str, Factory]:
    """``path -> factory(ctx)`` of every leader route of this package (classic aliases included), and a named
    time series per table of ``registry`` that declares ``time_series``."""
    out: dict[str, Factory] = {
        "/api/models": lambda ctx: Models(),
        # experiments
        "/api/experiments": ex.Experiments,
        EXP: ex.Experiment,
        "/api/experiments/latest": ex.LatestExperiment,
        "/api/experiments/active": ex.ActiveExperiments,
        "/api/experiments/assignment_count": ex.AssignmentCount,
        f"{EXP}/unit_labels": ex.UnitLabels,
        "/api/historical_media": lambda ctx: ex.Historical(ctx, "media_used"),
        "/api/historical_organisms": lambda ctx: ex.Historical(ctx, "organism_used"),
        # workers, units, assignments
        "/api/workers": wk.Workers,
        WORKER: wk.Worker,
        f"{WORKER}/is_active": wk.WorkerIsActive,
        f"{WORKER}/model": wk.WorkerModel,
        f"{WORKER}/experiment": wk.WorkerExperiment,
        "/api/workers/assignments": wk.Assignments,
        "/api/workers/discover": wk.DiscoverWorkers,
        "/api/workers/setup": wk.SetupWorker,
        "/api/units": wk.Units,
        f"{EXP}/workers": wk.ExperimentWorkers,
        f"{EXP}/workers/{{pioreactor_unit}}": wk.ExperimentWorker,
        f"{EXP}/historical_worker_assignments": wk.HistoricalAssignments,
        f"{EXP}/chart_preferences": ChartPreferences,
        # logs
        "/api/logs": lg.AllLogs,
        f"{EXP}/logs": lg.ExperimentLogs,
        f"{EXP}/recent_logs": lg.ExperimentRecentLogs,
        f"{UNIT}/logs": lg.UnitLogs,
        f"{UNIT}/system_logs": lg.UnitSystemLogs,
        f"{WORKER}/experiments/{{experiment}}/logs": lambda ctx: _WorkerLogs(ctx),
        f"{WORKER}/experiments/{{experiment}}/recent_logs": lambda ctx: lg.WorkerExperimentLogs(ctx, recent=True),
        f"{UNIT}/experiments/{{experiment}}/logs": lambda ctx: lg.PublishLog(ctx, "units"),
        # time series
        f"{EXP}/time_series/{{data_source}}/{{column}}": ts.FallbackSeries,
        f"{WORKER}/experiments/{{experiment}}/time_series/{{data_source}}/{{column}}": ts.FallbackSeries,
        # config
        "/api/config/shared": cfg.SharedConfig,
        "/api/config/shared/history": cfg.SharedConfigHistory,
        "/api/config/units/{pioreactor_unit}": cfg.UnitConfig,
        "/api/config/units/{pioreactor_unit}/specific": cfg.SpecificConfig,
        "/api/config/units/{pioreactor_unit}/specific/history": cfg.SpecificConfigHistory,
        # classic aliases
        f"{UNIT}/configuration": cfg.ClassicUnitConfiguration,
        "/api/configs": cfg.ClassicConfigs,
        "/api/configs/{filename}": cfg.ClassicConfigFile,
        "/api/configs/{filename}/history": cfg.ClassicConfigHistory,
    }
    for name in named_series_specs(registry):  # every table whose descriptor declares time_series
        out[f"{EXP}/time_series/{name}"] = lambda ctx, n=name: ts.NamedSeries(ctx, n)
        out[f"{WORKER}/experiments/{{experiment}}/time_series/{name}"] = (
            lambda ctx, n=name: ts.NamedSeries(ctx, n, per_worker=True))
    return out


class _WorkerLogs:
    """``/api/workers/{unit}/experiments/{experiment}/logs``: GET reads, POST publishes."""

    def __init__(self, ctx: Context) -> None:
        self._read = lg.WorkerExperimentLogs(ctx)
        self._publish = lg.PublishLog(ctx, "workers")

    def on_get(self, req: Any, resp: Any, pioreactor_unit: str, experiment: str) -> None:
        self._read.on_get(req, resp, pioreactor_unit, experiment)

    def on_post(self, req: Any, resp: Any, pioreactor_unit: str, experiment: str) -> None:
        self._publish.on_post(req, resp, pioreactor_unit, experiment)


def add_routes(app: Any, registry: Any, config: Any = None, *, unit: str | None = None, db: Any = None,
               context: Any = None) -> Context:
    """Mount the leader routes on ``app``.

    Args:
        app: The Falcon app.
        registry: Plugin registry (its ``tables`` are created in the database).
        config: This unit's config, used as given (default: the process-wide one as it is at each request).
        unit: This (leader) unit's name (default ``$HOSTNAME``).
        db: A ``LeaderDB`` to use (default: ``[storage] database``, opened and migrated on first use).
        context: The app's :class:`~reactorkit.api.context.AppContext` (its database is shared);
            default a new one from the other arguments.

    Returns:
        The shared :class:`Context` (tests use its ``db``).
    """
    from reactorkit.core.config import get_unit_name

    ctx = context if context is not None else Context(db, config, registry, unit or get_unit_name())
    for path, factory in routes(ctx.registry).items():
        app.add_route(path, factory(ctx))
    return ctx
