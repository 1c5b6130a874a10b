"""The vial temperature from one burst of temperature-sensor samples.

Two cases:

* The heater stayed on (the simulated vessel, whose sensor reads the liquid):
  the mean of the samples.
* The heater was switched off for the burst (real hardware: the sensor sits on
  the heater PCB, which is hotter than the vial while heating): the PCB cools
  towards the vial by Newton's law of cooling, T(t) = T∞ + A·exp(−k·t), so the
  fitted asymptote T∞ estimates the vial temperature. When the fit fails, or
  its asymptote lies outside a plausible range, the last (coolest, closest)
  sample is used.
"""

from __future__ import annotations

import math
from typing import Sequence


def mean_temperature(temperatures: Sequence[float]) -> float:
    """Mean of the samples in °C.

    Raises:
        ValueError: no samples.
    """
    if not temperatures:
        raise ValueError("no temperature samples")
    return sum(temperatures) / len(temperatures)


def asymptotic_temperature(times_s: Sequence[float], temperatures: Sequence[float]) -> float:
    """T∞ of ``T(t) = T∞ + A·exp(−k·t)`` fitted to a cooling curve (°C; times in seconds from the first sample).

    Falls back to the last sample when there are fewer than 4 samples, the curve
    is not cooling, or the fit does not converge to a value within 15 °C below
    the last sample.

    Raises:
        ValueError: no samples, or times and temperatures of different lengths.
    """
    if not temperatures or len(times_s) != len(temperatures):
        raise ValueError("need as many sample times as temperatures (at least one)")
    last = float(temperatures[-1])
    if len(temperatures) < 4 or temperatures[0] - last < 0.05:
        return mean_temperature(temperatures) if len(temperatures) >= 4 else last
    try:
        import numpy as np
        from scipy.optimize import curve_fit

        t = np.asarray(times_s, dtype=float) - float(times_s[0])
        y = np.asarray(temperatures, dtype=float)
        span = max(t[-1], 1.0)

        def model(x, t_inf, amplitude, k):
            return t_inf + amplitude * np.exp(-k * x)

        guess = (last, float(y[0] - last), 3.0 / span)
        params, _ = curve_fit(model, t, y, p0=guess, bounds=([last - 15.0, 0.0, 1e-5], [last, 100.0, 10.0]),
                              maxfev=2000)
        t_inf = float(params[0])
        if math.isfinite(t_inf):
            return t_inf
    except Exception:  # a fit that fails must never stop temperature recording
        pass
    return last
