"""Helpers shared by the leader's ``/api`` resources: the database, parameters, errors."""

from __future__ import annotations

import math
from typing import Any

import falcon

from reactorkit.api.context import AppContext
from reactorkit.api.errors import ApiError
from reactorkit.api.unit.common import field, invalid, read_body  # noqa: F401  (re-exported for the resources)
from reactorkit.core.leader_db import LeaderDB

BROADCAST = "$broadcast"
UNIVERSAL_EXPERIMENT = "$experiment"


class Context(AppContext):
    """What every leader resource needs: the app's context (``db``, ``config``, ``registry``, ``unit``).

    The database is opened (and migrated, plugin tables included) on first use,
    so building the app has no side effect on disk.
    """

    def __init__(self, db: LeaderDB | None, config: Any, registry: Any, unit: str) -> None:
        super().__init__(registry, config, unit, leader=True, db=db)


def experiment_not_found(experiment: str) -> ApiError:
    return ApiError(falcon.HTTP_404, f"Experiment {experiment!r} not found.",
                    cause=f"No experiment named {experiment!r} exists on this leader.",
                    remediation="Check GET /api/experiments, or create it with POST /api/experiments.")


def worker_not_found(unit: str) -> ApiError:
    return ApiError(falcon.HTTP_404, f"Worker {unit!r} not found.",
                    cause=f"{unit!r} is not in the leader's workers inventory.",
                    remediation="Check GET /api/workers, or add it with PUT /api/workers.")


def unit_not_found(unit: str) -> ApiError:
    return ApiError(falcon.HTTP_404, f"Unit {unit!r} not found.",
                    cause=f"{unit!r} is neither the leader nor a worker of this cluster.",
                    remediation="Check GET /api/units.")


def require_experiment(ctx: Context, experiment: str) -> None:
    """Raises: ApiError 404 when ``experiment`` does not exist."""
    if not ctx.db.experiment_exists(experiment):
        raise experiment_not_found(experiment)


def require_worker(ctx: Context, unit: str) -> dict[str, Any]:
    """The worker's inventory row. Raises: ApiError 404 when it is not a worker."""
    row = ctx.db.worker(unit)
    if row is None:
        raise worker_not_found(unit)
    return row


def require_unit(ctx: Context, unit: str, *, allow_broadcast: bool = True) -> None:
    """Raises: ApiError 404 when ``unit`` is neither the leader, a worker, nor (if allowed) ``$broadcast``."""
    if unit == BROADCAST and allow_broadcast:
        return
    if unit not in ctx.db.units():
        raise unit_not_found(unit)


def query_param(req: falcon.Request, name: str) -> str | None:
    """The query-string value of ``name`` (None when absent or empty)."""
    value = req.params.get(name)
    if isinstance(value, list):
        value = value[-1]
    return value if value not in (None, "") else None


def float_param(req: falcon.Request, name: str, default: float, *, minimum: float | None = None) -> float:
    """A finite number from the query string.

    Raises:
        ApiError: 400 naming ``name`` when it is not a number (or below ``minimum``).
    """
    raw = query_param(req, name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise bad_param(name, raw, "a number") from None
    if not math.isfinite(value) or (minimum is not None and value < minimum):
        raise bad_param(name, raw, f"a finite number ≥ {minimum:g}" if minimum is not None else "a finite number")
    return value


def int_param(req: falcon.Request, name: str, default: int, *, minimum: int | None = None) -> int:
    """An integer from the query string.

    Raises:
        ApiError: 400 naming ``name`` when it is not an integer (or below ``minimum``).
    """
    raw = query_param(req, name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        try:
            as_float = float(raw)
        except ValueError:
            raise bad_param(name, raw, "an integer") from None
        if not as_float.is_integer():
            raise bad_param(name, raw, "an integer") from None
        value = int(as_float)
    if minimum is not None and value < minimum:
        raise bad_param(name, raw, f"an integer ≥ {minimum}")
    return value


def bad_param(name: str, raw: str, expected: str) -> ApiError:
    return ApiError(falcon.HTTP_400, f"Invalid query parameter {name!r}.",
                    cause=f"Query parameter '{name}' must be {expected}, got {raw!r}.",
                    remediation=f"Send {name} as {expected}.")


def success(resp: falcon.Response, status: str = falcon.HTTP_200, **extra: Any) -> None:
    """``{"status": "success", …}``."""
    resp.status = status
    resp.media = {"status": "success", **extra}


def raw_json(resp: falcon.Response, text: str, *, max_age: int | None = None) -> None:
    """Send an already serialized JSON document (built in SQL, no re-encoding)."""
    resp.content_type = falcon.MEDIA_JSON
    resp.text = text
    if max_age is not None:
        resp.cache_control = [f"max-age={max_age}"]
