"""Calibration curves: fit, evaluate (x → y) and invert (y → x).

A curve is plain data (the ``curve_data_`` of a calibration record, domain
facts §6.2), tagged by ``type``:

- ``{"type": "poly", "coefficients": [c_n, …, c_1, c_0]}``, highest degree
  first: ``y = Σ c_k x^k``. Pump curves are zero-intercept lines ``[slope, 0]``.
- ``{"type": "spline" | "akima", "knots": [k_0 < … < k_n], "coefficients":
  [[a, b, c, d], …]}`` with one row per interval ``[k_i, k_{i+1}]``:
  ``y = a + b u + c u² + d u³`` where ``u = x − k_i``. Outside the knots the
  first/last interval's cubic is extrapolated.

Evaluation and inversion use numpy only, imported lazily (background jobs
import this module); scipy is imported only inside the fitting functions.

Units are whatever the calibration's ``x``/``y`` are: OD600 → volts for OD,
seconds → mL for pumps, duty-cycle % → RPM for a stirrer.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

CURVE_TYPES = ("poly", "spline", "akima")
_DECIMALS = 10  # domain facts §6.2: x → y is evaluated to 10 decimal places


class InvalidCurve(ValueError):
    """``curve_data`` is not a well-formed poly/spline/akima curve (message names the field)."""


class OutOfCalibratedRange(ValueError):
    """``y → x`` has no acceptable solution inside the calibrated x range.

    Attributes:
        value: The ``y`` that was asked for.
        low, high: The calibrated x range (``None`` when unknown).
        side: ``"below"`` when the solution lies below ``low`` (or the nearest end
            of the curve is ``low``), ``"above"`` for ``high``, ``None`` if unknown.
        nearest: The bound on ``side`` (what a caller clamping to the range would use).
    """

    def __init__(
        self,
        value: float,
        low: float | None,
        high: float | None,
        side: str | None = None,
        message: str | None = None,
    ) -> None:
        self.value = value
        self.low = low
        self.high = high
        self.side = side
        self.nearest = low if side == "below" else high if side == "above" else None
        if message is None:
            where = {"below": "below", "above": "above"}.get(side or "", "outside")
            message = (
                f"y={value:g} has no solution inside the calibrated range "
                f"[{_fmt(low)}, {_fmt(high)}]; the solution lies {where} it"
            )
        super().__init__(message)


def _fmt(value: float | None) -> str:
    return "?" if value is None else f"{value:g}"


# ----------------------------------------------------------------------------- fitting


def _clean_xy(x: Sequence[float], y: Sequence[float], minimum: int) -> tuple[Any, Any]:
    import numpy as np

    xa = np.asarray(x, dtype=float).ravel()
    ya = np.asarray(y, dtype=float).ravel()
    if xa.shape != ya.shape:
        raise ValueError(f"x and y must have equal lengths, got {xa.size} and {ya.size}")
    if not (np.all(np.isfinite(xa)) and np.all(np.isfinite(ya))):
        raise ValueError("x and y must be finite numbers")
    if xa.size < minimum:
        raise ValueError(f"need at least {minimum} points to fit, got {xa.size}")
    return xa, ya


def _merge_duplicates(xa: Any, ya: Any) -> tuple[Any, Any, Any]:
    """Sort by x and average y over repeated x; returns (x, y_mean, counts)."""
    import numpy as np

    ux, inverse, counts = np.unique(xa, return_inverse=True, return_counts=True)
    sums = np.zeros_like(ux)
    np.add.at(sums, inverse, ya)
    return ux, sums / counts, counts.astype(float)


def fit_poly(
    x: Sequence[float], y: Sequence[float], degree: int, zero_intercept: bool = False
) -> dict[str, Any]:
    """Least-squares polynomial ``y ≈ Σ c_k x^k`` of the given degree.

    Args:
        x, y: Equal-length samples (e.g. pump run durations in s, volumes in mL).
        degree: Polynomial degree ≥ 1 (0 allowed without ``zero_intercept``).
        zero_intercept: Force ``c_0 = 0`` (pump fits: no volume at zero duration).

    Returns:
        ``{"type": "poly", "coefficients": [c_degree, …, c_0]}`` (highest first).

    Raises:
        ValueError: lengths differ, non-finite values, too few points, bad degree.
    """
    import numpy as np

    if not isinstance(degree, int) or degree < (1 if zero_intercept else 0):
        raise ValueError(f"degree must be an integer ≥ {1 if zero_intercept else 0}, got {degree!r}")
    n_params = degree if zero_intercept else degree + 1
    xa, ya = _clean_xy(x, y, max(1, n_params))
    powers = list(range(degree, 0 if zero_intercept else -1, -1))
    design = np.column_stack([xa**p for p in powers])
    coefs, *_ = np.linalg.lstsq(design, ya, rcond=None)
    coefficients = [float(c) for c in coefs]
    if zero_intercept:
        coefficients.append(0.0)
    return {"type": "poly", "coefficients": coefficients}


def fit_poly_with_stats(
    x: Sequence[float], y: Sequence[float]
) -> tuple[dict[str, Any], dict[str, float]]:
    """Zero-intercept line ``y = slope·x`` with the pump protocol's statistics.

    Also fits ``y = slope·x + bias`` by ordinary least squares to report the
    bias and standard errors (textbook OLS standard errors, σ² = RSS/(n−p)).

    Returns:
        ``(curve_data, {"slope", "bias", "std_slope", "std_bias"})``; the curve
        is ``{"type": "poly", "coefficients": [slope, 0.0]}``.
    """
    import numpy as np

    xa, ya = _clean_xy(x, y, 2)
    curve = fit_poly(xa, ya, 1, zero_intercept=True)
    design = np.column_stack([xa, np.ones_like(xa)])
    beta, *_ = np.linalg.lstsq(design, ya, rcond=None)
    n = xa.size
    stats = {"slope": float(beta[0]), "bias": float(beta[1]), "std_slope": float("nan"), "std_bias": float("nan")}
    if n > 2:
        resid = ya - design @ beta
        sigma2 = float(resid @ resid) / (n - 2)
        try:
            cov = sigma2 * np.linalg.inv(design.T @ design)
            stats["std_slope"] = float(np.sqrt(max(cov[0, 0], 0.0)))
            stats["std_bias"] = float(np.sqrt(max(cov[1, 1], 0.0)))
        except np.linalg.LinAlgError:
            pass
    return curve, stats


def _ppoly_to_curve(kind: str, breaks: Any, c: Any) -> dict[str, Any]:
    """scipy PPoly arrays (c[k, i] multiplies u^(3-k)) → our knots/[a,b,c,d] rows."""
    import numpy as np

    breaks = np.asarray(breaks, dtype=float)
    c = np.asarray(c, dtype=float)
    order = c.shape[0]
    keep = np.diff(breaks) > 0  # drop the zero-length intervals of repeated end knots
    rows = []
    knots = [float(breaks[0])]
    for i in np.nonzero(keep)[0]:
        coeffs = [float(c[order - 1 - k, i]) if order - 1 - k >= 0 else 0.0 for k in range(4)]
        rows.append(coeffs)
        knots.append(float(breaks[i + 1]))
    # the first kept interval must start at the first distinct break
    knots[0] = float(breaks[np.nonzero(keep)[0][0]])
    return {"type": kind, "knots": knots, "coefficients": rows}


def _linear_curve(kind: str, xa: Any, ya: Any) -> dict[str, Any]:
    rows = []
    for i in range(xa.size - 1):
        slope = (ya[i + 1] - ya[i]) / (xa[i + 1] - xa[i])
        rows.append([float(ya[i]), float(slope), 0.0, 0.0])
    return {"type": kind, "knots": [float(v) for v in xa], "coefficients": rows}


def fit_spline(
    x: Sequence[float], y: Sequence[float], smoothing: float | None = None
) -> dict[str, Any]:
    """Cubic smoothing spline through noisy samples (OD standards, a stirrer's RPM).

    Repeated x values are averaged (weighted by count). With ≥ 5 distinct x,
    ``scipy.interpolate.make_smoothing_spline`` is used (penalised least
    squares; ``smoothing`` is its ``lam``, ``None`` = chosen by generalized
    cross-validation). With 3–4 distinct x a natural cubic interpolating
    spline is used; with 2, a straight line.

    Returns:
        ``{"type": "spline", "knots": [...], "coefficients": [[a,b,c,d], ...]}``.

    Raises:
        ValueError: fewer than 2 distinct x, unequal lengths, non-finite values,
            negative smoothing.
    """
    from scipy import interpolate

    if smoothing is not None and smoothing < 0:
        raise ValueError(f"smoothing must be ≥ 0, got {smoothing}")
    xa, ya = _clean_xy(x, y, 2)
    ux, uy, w = _merge_duplicates(xa, ya)
    if ux.size < 2:
        raise ValueError("need at least 2 distinct x values to fit a spline")
    if ux.size == 2:
        return _linear_curve("spline", ux, uy)
    if ux.size < 5:
        cs = interpolate.CubicSpline(ux, uy, bc_type="natural")
        return _ppoly_to_curve("spline", cs.x, cs.c)
    bspl = interpolate.make_smoothing_spline(ux, uy, w=w, lam=smoothing)
    pp = interpolate.PPoly.from_spline(bspl)
    return _ppoly_to_curve("spline", pp.x, pp.c)


def fit_akima(x: Sequence[float], y: Sequence[float]) -> dict[str, Any]:
    """Akima piecewise-cubic interpolant (od_fused per-angle curves).

    Repeated x values are averaged; with 2 distinct x the result is a line.

    Returns:
        ``{"type": "akima", "knots": [...], "coefficients": [[a,b,c,d], ...]}``.

    Raises:
        ValueError: fewer than 2 distinct x, unequal lengths, non-finite values.
    """
    from scipy import interpolate

    xa, ya = _clean_xy(x, y, 2)
    ux, uy, _ = _merge_duplicates(xa, ya)
    if ux.size < 2:
        raise ValueError("need at least 2 distinct x values to fit an Akima curve")
    if ux.size == 2:
        return _linear_curve("akima", ux, uy)
    ak = interpolate.Akima1DInterpolator(ux, uy)
    return _ppoly_to_curve("akima", ak.x, ak.c)


# ------------------------------------------------------------------------ validation


def validate_curve(curve_data: Any) -> dict[str, Any]:
    """Check the shape of ``curve_data``; returns it unchanged.

    Raises:
        InvalidCurve: not a mapping, unknown ``type``, missing/non-numeric
            ``coefficients``, knots not strictly increasing, or rows ≠ knots − 1.
    """
    import math

    if not isinstance(curve_data, dict):
        raise InvalidCurve("curve_data_ must be a mapping with a 'type'")
    kind = curve_data.get("type")
    if kind not in CURVE_TYPES:
        raise InvalidCurve(f"curve_data_.type must be one of {', '.join(CURVE_TYPES)}; got {kind!r}")
    coefficients = curve_data.get("coefficients")
    if not isinstance(coefficients, list) or not coefficients:
        raise InvalidCurve("curve_data_.coefficients must be a non-empty list")

    def number(v: Any, where: str) -> None:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise InvalidCurve(f"{where} must be a finite number, got {v!r}")

    if kind == "poly":
        for i, c in enumerate(coefficients):
            number(c, f"curve_data_.coefficients[{i}]")
        return curve_data
    knots = curve_data.get("knots")
    if not isinstance(knots, list) or len(knots) < 2:
        raise InvalidCurve("curve_data_.knots must be a list of at least 2 numbers")
    for i, k in enumerate(knots):
        number(k, f"curve_data_.knots[{i}]")
    if any(b <= a for a, b in zip(knots, knots[1:])):
        raise InvalidCurve("curve_data_.knots must be strictly increasing")
    if len(coefficients) != len(knots) - 1:
        raise InvalidCurve(
            f"curve_data_.coefficients must have {len(knots) - 1} rows (knots − 1), got {len(coefficients)}"
        )
    for i, row in enumerate(coefficients):
        if not isinstance(row, list) or len(row) != 4:
            raise InvalidCurve(f"curve_data_.coefficients[{i}] must be [a, b, c, d]")
        for j, v in enumerate(row):
            number(v, f"curve_data_.coefficients[{i}][{j}]")
    return curve_data


# ------------------------------------------------------------------------ evaluation


def _piecewise_eval(curve_data: dict[str, Any], xa: Any) -> Any:
    import numpy as np

    knots = np.asarray(curve_data["knots"], dtype=float)
    rows = np.asarray(curve_data["coefficients"], dtype=float)
    idx = np.clip(np.searchsorted(knots, xa, side="right") - 1, 0, len(rows) - 1)
    u = xa - knots[idx]
    a, b, c, d = rows[idx, 0], rows[idx, 1], rows[idx, 2], rows[idx, 3]
    return a + u * (b + u * (c + u * d))


def evaluate(curve_data: dict[str, Any], x: float | Iterable[float]) -> Any:
    """``y`` of the curve at ``x`` (forward direction, x → y).

    Args:
        curve_data: A poly/spline/akima curve (see module docstring).
        x: A number or a sequence of numbers.

    Returns:
        A float rounded to 10 decimals for a scalar ``x``; a list of floats for a sequence.

    Raises:
        InvalidCurve: malformed ``curve_data``.
    """
    import numpy as np

    validate_curve(curve_data)
    scalar = np.ndim(x) == 0
    xa = np.atleast_1d(np.asarray(x, dtype=float))
    if curve_data["type"] == "poly":
        ya = np.polyval(np.asarray(curve_data["coefficients"], dtype=float), xa)
    else:
        ya = _piecewise_eval(curve_data, xa)
    ya = np.round(ya, _DECIMALS)
    return float(ya[0]) if scalar else [float(v) for v in ya]


def _real_roots(coefs_high_first: Any) -> list[float]:
    import numpy as np

    c = np.trim_zeros(np.asarray(coefs_high_first, dtype=float), "f")
    if c.size == 0:  # the zero polynomial: every u is a root; report u = 0
        return [0.0]
    if c.size == 1:
        return []
    roots = np.roots(c)
    scale = max(1.0, float(np.max(np.abs(roots)))) if roots.size else 1.0
    return [float(r.real) for r in roots if abs(r.imag) <= 1e-9 * scale]


def _all_roots(curve_data: dict[str, Any], y: float) -> list[float]:
    if curve_data["type"] == "poly":
        coefs = [float(c) for c in curve_data["coefficients"]]
        coefs[-1] -= y
        return sorted(set(_real_roots(coefs)))
    knots = [float(k) for k in curve_data["knots"]]
    rows = curve_data["coefficients"]
    roots: list[float] = []
    last = len(rows) - 1
    for i, (a, b, c, d) in enumerate(rows):
        h = knots[i + 1] - knots[i]
        tol = 1e-9 * max(1.0, abs(h))
        for u in _real_roots([d, c, b, a - y]):
            if (u >= -tol or i == 0) and (u <= h + tol or i == last):
                roots.append(knots[i] + u)
    roots.sort()
    deduped: list[float] = []
    for r in roots:
        if not deduped or abs(r - deduped[-1]) > 1e-9 * max(1.0, abs(r)):
            deduped.append(r)
    return deduped


def curve_x_range(curve_data: dict[str, Any]) -> tuple[float, float] | None:
    """The knot span of a spline/akima curve; ``None`` for a polynomial."""
    if curve_data.get("type") == "poly":
        return None
    knots = curve_data["knots"]
    return float(knots[0]), float(knots[-1])


def invert(
    curve_data: dict[str, Any],
    y: float,
    x_range: tuple[float, float] | None = None,
    enforce_bounds: bool = True,
) -> float:
    """Solve ``curve(x) = y`` for ``x`` (y → x; what jobs use at run time).

    Real roots only. One root: returned (checked against ``x_range`` when
    ``enforce_bounds``). Several roots: the one closest to ``x_range`` (distance 0
    inside; ties go to the root nearest the range's middle). Without ``x_range``,
    a spline/akima curve uses its knot span; a polynomial has no bounds.

    Args:
        curve_data: A poly/spline/akima curve.
        y: Target value (volts, mL, RPM …).
        x_range: ``(low, high)`` calibrated x range, usually the recorded x min/max.
        enforce_bounds: Raise when the chosen root lies outside ``x_range``.

    Returns:
        ``x`` as a float.

    Raises:
        OutOfCalibratedRange: no real root, or (bounds enforced) the root lies
            outside ``x_range``; ``.side`` tells which end.
        InvalidCurve: malformed ``curve_data``.
    """
    import math

    validate_curve(curve_data)
    y = float(y)
    if not math.isfinite(y):
        raise ValueError(f"y must be a finite number, got {y!r}")
    if x_range is None:
        x_range = curve_x_range(curve_data)
    low, high = (None, None) if x_range is None else (float(min(x_range)), float(max(x_range)))
    roots = _all_roots(curve_data, y)
    if not roots:
        side = None
        if low is not None and high is not None:
            y_low, y_high = evaluate(curve_data, low), evaluate(curve_data, high)
            side = "below" if abs(y - y_low) <= abs(y - y_high) else "above"
        raise OutOfCalibratedRange(
            y, low, high, side, message=f"y={y:g} is never reached by the calibration curve"
            + (f" over [{_fmt(low)}, {_fmt(high)}]" if low is not None else "")
        )
    if low is None or high is None:
        return roots[0] if len(roots) == 1 else min(roots, key=abs)
    mid = (low + high) / 2

    def distance(r: float) -> tuple[float, float]:
        return (max(low - r, 0.0, r - high), abs(r - mid))

    best = min(roots, key=distance)
    if enforce_bounds:
        tol = 1e-9 * max(1.0, abs(high - low))
        if best < low - tol:
            raise OutOfCalibratedRange(y, low, high, "below")
        if best > high + tol:
            raise OutOfCalibratedRange(y, low, high, "above")
    return float(best)
