"""Fused OD from several photodiode angles with an ``od_fused_estimator`` (pure).

The estimator record (domain facts §6.1) holds, per angle, a curve ``μ_a(c)``
of the expected ``log(voltage)`` and a curve ``log σ_a(c)`` of its spread, both
over ``c = log10 OD`` in ``[min_logc, max_logc]``. The fused estimate is the
``c`` that minimises a robust negative log-likelihood of the readings,

    Σ_a  log σ_a(c) + (ν + 1)/2 · log(1 + z_a²/ν),   z_a = (log V_a − μ_a(c)) / σ_a(c),

a Student-t likelihood (ν = 4) so that one misbehaving angle cannot drag the
estimate (Lange, Little & Taylor, *JASA* 84:881, 1989). It is found on a grid
of the range, refined by golden-section search, and returned as ``10^c``.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

NU = 4.0
GRID_POINTS = 241


def _loss_terms(record: Mapping[str, Any], angles: list[str], logs: dict[str, float], cs: list[float]) -> list[float]:
    from reactorkit.core.curves import evaluate

    floor = float(record.get("sigma_floor") or 1e-3)
    total = [0.0] * len(cs)
    for angle in angles:
        mus = evaluate(record["mu_splines"][angle], cs)
        log_sigmas = evaluate(record["sigma_splines_log"][angle], cs)
        for i, (mu, ls) in enumerate(zip(mus, log_sigmas)):
            sigma = max(math.exp(ls), floor)
            z = (logs[angle] - mu) / sigma
            total[i] += math.log(sigma) + (NU + 1.0) / 2.0 * math.log1p(z * z / NU)
    return total


def fused_od(record: Mapping[str, Any], readings_by_angle: Mapping[str, float]) -> float:
    """OD600 from readings ``{angle: volts}`` (e.g. ``{"45": 0.12, "90": 0.31}``).

    Angles the estimator does not know, and non-positive readings, are ignored.

    Raises:
        ValueError: no usable angle, or the record lacks its curves.
    """
    angles = [str(a) for a in record.get("angles", []) if readings_by_angle.get(str(a), 0) and readings_by_angle[str(a)] > 0]
    if not angles:
        raise ValueError("no reading at an angle the od_fused estimator knows")
    logs = {a: math.log(float(readings_by_angle[a])) for a in angles}
    lo, hi = float(record["min_logc"]), float(record["max_logc"])
    step = (hi - lo) / (GRID_POINTS - 1)
    grid = [lo + i * step for i in range(GRID_POINTS)]
    losses = _loss_terms(record, angles, logs, grid)
    best = min(range(GRID_POINTS), key=losses.__getitem__)
    a, b = grid[max(best - 1, 0)], grid[min(best + 1, GRID_POINTS - 1)]
    golden = (math.sqrt(5.0) - 1.0) / 2.0
    for _ in range(30):
        c1, c2 = b - golden * (b - a), a + golden * (b - a)
        f1, f2 = _loss_terms(record, angles, logs, [c1, c2])
        if f1 <= f2:
            b = c2
        else:
            a = c1
    return 10.0 ** ((a + b) / 2.0)
