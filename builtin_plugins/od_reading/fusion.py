"""Multi-angle fused OD: the ``od_fused`` estimator (domain facts §6.1).

An estimator holds, for each photodiode angle (``"45"``, ``"90"``, ``"135"``),
two Akima curves of ``logc = log10(OD600)``:

- ``mu_splines[angle]``: the mean of ``log(V)`` (natural log of the reading in volts);
- ``sigma_splines_log[angle]``: ``log(σ)`` of ``log(V)`` (its spread between readings),
  with σ never below ``sigma_floor``.

Fusion (:func:`fuse`) picks the ``logc`` in ``[min_logc, max_logc]`` that
minimises the robust negative log-likelihood of the readings

    L(logc) = Σ_angles  log σ_a(logc) + ρ((log V_a − μ_a(logc)) / σ_a(logc))

with Huber's ρ (k = 1.5; Huber 1964, *Ann. Math. Statist.* 35:73), so one bad
angle cannot drag the estimate, and returns ``10 ** logc``. A response that
rises then falls (scatter at high density) is ambiguous for one angle but not
for several, which is why the estimator fuses them.

``low_conc_scales`` (optional, ``{angle: factor}``) multiplies σ of that angle
below the second-lowest standard, to down-weight angles that are unreliable
near the blank. Readings must be the same signal the protocol recorded: raw
photodiode volts at the estimator's ``ir_led_intensity``.

Evaluation imports numpy only; :func:`fit_estimator` imports scipy (through
:mod:`reactorkit.core.curves`).
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping

from reactorkit.plugin import evaluate_curve, fit_akima

ESTIMATOR_TYPE = "od_fused_estimator"
DEVICE = "od_fused"
HUBER_K = 1.5
DEFAULT_SIGMA_FLOOR = 0.05
_GRID = 801


class FusionError(ValueError):
    """Readings or standards that cannot produce a fused OD (message says why)."""


def fit_estimator(
    observations: Iterable[tuple[float, str, float]],
    *,
    estimator_name: str,
    unit: str,
    created_at: str,
    ir_led_intensity: float,
    sigma_floor: float = DEFAULT_SIGMA_FLOOR,
    min_standards: int = 4,
) -> dict[str, Any]:
    """Fit an ``od_fused_estimator`` record from standards.

    Args:
        observations: ``(od600, angle, volts)`` triples; repeated readings of a
            standard give its spread. Standards with OD600 ≤ 0 (blanks) and
            readings ≤ 0 V are ignored (logs undefined).
        estimator_name, unit, created_at, ir_led_intensity: Record fields.
        sigma_floor: Minimum σ of ``log(V)``.
        min_standards: Distinct positive standards required (§6.4: ≥ 4).

    Returns:
        The estimator record (``estimator_type``, ``estimator_name``,
        ``calibrated_on_pioreactor_unit``, ``created_at``, ``ir_led_intensity``,
        ``angles``, ``mu_splines``, ``sigma_splines_log``, ``min_logc``, ``max_logc``,
        ``sigma_floor``, ``recorded_data {by_angle: {angle: {x: logc, y: log V}}}``,
        ``low_conc_scales``, ``x``, ``y``).

    Raises:
        FusionError: fewer than ``min_standards`` positive standards or
            fewer than 2 angles.
    """
    import numpy as np

    by_angle: dict[str, dict[float, list[float]]] = {}
    for od, angle, volts in observations:
        od, volts = float(od), float(volts)
        if od <= 0 or volts <= 0 or not (math.isfinite(od) and math.isfinite(volts)):
            continue
        by_angle.setdefault(str(angle), {}).setdefault(math.log10(od), []).append(math.log(volts))
    angles = sorted(by_angle, key=lambda a: (not a.isdigit(), int(a) if a.isdigit() else 0, a))
    if len(angles) < 2:
        raise FusionError(f"fusion needs readings from at least 2 angles, got {angles or 'none'}")
    standards = sorted({c for a in angles for c in by_angle[a]})
    if len(standards) < min_standards:
        raise FusionError(
            f"fusion needs at least {min_standards} standards with OD600 > 0, got {len(standards)}"
        )
    mu_splines, sigma_splines, recorded = {}, {}, {}
    for angle in angles:
        logcs = sorted(by_angle[angle])
        means = [float(np.mean(by_angle[angle][c])) for c in logcs]
        spreads = []
        for c in logcs:
            values = by_angle[angle][c]
            sd = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
            spreads.append(math.log(max(sd, sigma_floor)))
        mu_splines[angle] = fit_akima(logcs, means)
        sigma_splines[angle] = fit_akima(logcs, spreads)
        xs = [c for c in logcs for _ in by_angle[angle][c]]
        ys = [v for c in logcs for v in by_angle[angle][c]]
        recorded[angle] = {"x": xs, "y": ys}
    return {
        "estimator_type": ESTIMATOR_TYPE,
        "estimator_name": estimator_name,
        "calibrated_on_pioreactor_unit": unit,
        "created_at": created_at,
        "ir_led_intensity": float(ir_led_intensity),
        "angles": angles,
        "mu_splines": mu_splines,
        "sigma_splines_log": sigma_splines,
        "min_logc": float(standards[0]),
        "max_logc": float(standards[-1]),
        "sigma_floor": float(sigma_floor),
        "recorded_data": {"by_angle": recorded},
        "low_conc_scales": {},
        "x": "log10(OD600)",
        "y": "log(Voltage)",
    }


def _huber(z: Any) -> Any:
    import numpy as np

    a = np.abs(z)
    return np.where(a <= HUBER_K, 0.5 * a * a, HUBER_K * a - 0.5 * HUBER_K * HUBER_K)


def negative_log_likelihood(estimator: Mapping[str, Any], readings: Mapping[str, float], logc: Any) -> Any:
    """``L(logc)`` of the module docstring for an array (or scalar) of ``logc``.

    Raises:
        FusionError: no usable reading for the estimator's angles.
    """
    import numpy as np

    logc = np.atleast_1d(np.asarray(logc, dtype=float))
    floor = float(estimator.get("sigma_floor", DEFAULT_SIGMA_FLOOR))
    scales = estimator.get("low_conc_scales") or {}
    total = np.zeros_like(logc)
    used = 0
    for angle in estimator["angles"]:
        angle = str(angle)
        volts = readings.get(angle)
        if volts is None:
            volts = readings.get(int(angle)) if angle.isdigit() else None  # type: ignore[call-overload]
        if volts is None or not volts > 0:
            continue
        mu = np.asarray(evaluate_curve(estimator["mu_splines"][angle], logc), dtype=float)
        log_sigma = np.asarray(evaluate_curve(estimator["sigma_splines_log"][angle], logc), dtype=float)
        sigma = np.maximum(np.exp(log_sigma), floor)
        if angle in scales:
            knots = estimator["mu_splines"][angle].get("knots") or [estimator["min_logc"]]
            low = knots[1] if len(knots) > 1 else knots[0]
            sigma = np.where(logc < low, sigma * float(scales[angle]), sigma)
        z = (math.log(float(volts)) - mu) / sigma
        total += np.log(sigma) + _huber(z)
        used += 1
    if used == 0:
        raise FusionError(f"no positive reading for any of the estimator's angles {estimator['angles']}")
    return total


def fuse(estimator: Mapping[str, Any], readings: Mapping[str, float]) -> float:
    """Fused OD600 from one reading per angle.

    Args:
        estimator: An ``od_fused_estimator`` record.
        readings: ``{angle: volts}`` (angles as strings, e.g. ``{"45": 0.05, "90": 0.01}``);
            missing or non-positive angles are skipped.

    Returns:
        OD600 = ``10 ** logc`` with ``logc`` in ``[min_logc, max_logc]``: a grid
        search over 801 points, refined by golden-section search around the best.

    Raises:
        FusionError: no usable reading.
    """
    import numpy as np

    lo, hi = float(estimator["min_logc"]), float(estimator["max_logc"])
    grid = np.linspace(lo, hi, _GRID)
    values = negative_log_likelihood(estimator, readings, grid)
    i = int(np.argmin(values))
    a, b = grid[max(i - 1, 0)], grid[min(i + 1, _GRID - 1)]
    phi = (math.sqrt(5) - 1) / 2
    c, d = b - phi * (b - a), a + phi * (b - a)

    def f(x: float) -> float:
        return float(negative_log_likelihood(estimator, readings, x)[0])

    fc, fd = f(c), f(d)
    for _ in range(40):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - phi * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + phi * (b - a)
            fd = f(d)
    best = (a + b) / 2
    if f(best) > float(values[i]):
        best = float(grid[i])
    return float(10.0 ** best)


def offset_estimator(estimator: Mapping[str, Any], offsets: Mapping[str, float], **fields: Any) -> dict[str, Any]:
    """A copy of ``estimator`` with ``mu_splines[angle]`` shifted by ``offsets[angle]`` (in log V).

    Used by the two-point offset protocol: readings of known standards on this
    unit differ from the estimator's means by a constant in log space (a gain
    change of the photodiode), so adding the mean difference re-centres it.
    ``fields`` (e.g. a new ``estimator_name``) replace record fields.
    """
    import copy

    out = copy.deepcopy(dict(estimator))
    for angle, delta in offsets.items():
        spline = out["mu_splines"][str(angle)]
        for row in spline["coefficients"]:
            row[0] = float(row[0]) + float(delta)
    out.update(fields)
    return out
