"""Accuracy of the growth-rate estimator against the simulated vessel's ground truth.

Drives the pure vessel model (:mod:`reactorkit.core.hardware.vessel`) directly —
no processes, no broker — through a batch culture with periodic dilutions
(media in, waste out through the efflux tube), reads the 90° photodiode every
5 s as ``od_reading`` would (IR LED at 80 %, dark level and the known sensor
response removed, i.e. a perfect OD calibration), feeds the readings and the
dosing events to :class:`GrowthRateCalculator`, and prints:

* RMSE of the growth rate (h⁻¹) against the model's true μ, overall, during
  exponential growth, and in the hour after each dilution;
* the lag (minutes) that best aligns the estimate with the truth;
* the relative RMSE of the filtered OD against the true OD;
* time to recover within max(10 %, 0.02 h⁻¹) of the true rate after each
  dilution (and stay there 10 minutes) — in stationary phase a dose of fresh
  media makes μ itself jump, so this includes tracking that jump;
* the share of readings flagged as outliers, and the run time.

Usage: ``python benchmarks/growth_rate_accuracy.py [--hours 14] [--seed 1]
[--dilution-every-h 2] [--dilution-ml 2] [--uncalibrated]``.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from reactorkit.builtin_plugins.growth_rate.estimator import FilterSettings, GrowthRateCalculator
from reactorkit.core.hardware.vessel import ANGLE_GAIN, Vessel, VesselParameters, VesselState

INTERVAL_S = 5.0
RECOVERY_FLOOR = 0.02  # h⁻¹: "recovered" = within max(10 % of μ, 0.02 h⁻¹) for 10 minutes
IR_INTENSITY = 80.0


def od_from_voltage(volts: float, angle: str = "90") -> float:
    """Invert the vessel's photodiode response V = v0 + g·OD/(1 + 0.15·OD) (at 80 % IR)."""
    g = ANGLE_GAIN[angle]
    u = max(volts - 0.002, 0.0)
    return u / max(g - 0.15 * u, 1e-9)


def simulate(hours: float, seed: int, dilution_every_h: float, dilution_ml: float, calibrated: bool,
             settings: FilterSettings | None = None) -> dict:
    params = VesselParameters(seed=seed)
    vessel = Vessel(params, VesselState(t=0.0, od=0.05, substrate=1.95, volume_ml=14.0))
    vessel.s.leds["A"] = IR_INTENSITY
    calc = GrowthRateCalculator(settings)
    rows = []  # (t_h, true_mu, true_od, est_mu, est_od_norm, outlier)
    dilution_times: list[float] = []
    next_dilution = dilution_every_h * 3600.0 if dilution_every_h > 0 else math.inf
    t = 0.0
    started = time.perf_counter()
    while t < hours * 3600.0:
        t += INTERVAL_S
        if t >= next_dilution:
            # pump media and waste together, then waste alone, as a dosing automation would
            duration = dilution_ml / params.pump_ml_per_second
            vessel.advance(t - INTERVAL_S + 0.5)
            vessel.s.pwm.update({"2": 100.0, "4": 100.0})
            vessel.advance(t - INTERVAL_S + 0.5 + duration)
            vessel.s.pwm.update({"2": 0.0})
            vessel.advance(t - INTERVAL_S + 1.0 + duration)
            vessel.s.pwm.update({"4": 0.0})
            calc.on_dosing(t - INTERVAL_S + 1.0 + duration)
            dilution_times.append(t / 3600.0)
            next_dilution += dilution_every_h * 3600.0
        vessel.advance(t)
        volts = vessel.photodiode_voltages({2: "90"}, IR_INTENSITY)[2]
        signal = od_from_voltage(volts) if calibrated else volts
        truth = vessel.ground_truth()
        est = calc.on_od(t, {"2": signal})
        if est is not None:
            rows.append((t / 3600.0, truth["growth_rate"], truth["od"], est.growth_rate, est.od_filtered,
                         bool(est.outliers)))
    elapsed = time.perf_counter() - started
    return {"rows": np.array(rows, dtype=float), "dilutions": dilution_times, "elapsed_s": elapsed, "calibrated": calibrated,
            "normalization": calc.normalization, "outliers": calc.outlier_count, "readings": calc.reading_count}


def best_lag_minutes(h: np.ndarray, truth: np.ndarray, est: np.ndarray, max_min: int = 60) -> tuple[float, float]:
    """Shift (minutes) of the estimate back in time that minimises RMSE, and that RMSE."""
    step_min = INTERVAL_S / 60.0
    best = (0.0, float("inf"))
    for lag_steps in range(0, int(max_min / step_min) + 1, 6):
        if lag_steps >= len(est) - 10:
            break
        err = est[lag_steps:] - truth[: len(truth) - lag_steps]
        rmse = float(np.sqrt(np.mean(err**2)))
        if rmse < best[1]:
            best = (lag_steps * step_min, rmse)
    return best


def report(result: dict) -> dict:
    rows, dilutions = result["rows"], result["dilutions"]
    h, mu, od, mu_hat, nod_hat = rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3], rows[:, 4]
    settled = h >= 0.5
    rmse = float(np.sqrt(np.mean((mu_hat[settled] - mu[settled]) ** 2)))
    expo = settled & (mu > 0.9 * mu[0])
    rmse_expo = float(np.sqrt(np.mean((mu_hat[expo] - mu[expo]) ** 2))) if expo.any() else float("nan")
    rel_expo = float(np.max(np.abs(mu_hat[expo] - mu[expo]) / mu[expo])) if expo.any() else float("nan")
    after = np.zeros_like(h, dtype=bool)
    recoveries = []
    for d in dilutions:
        window = (h >= d) & (h < d + 1.0)
        after |= window
        ok = np.abs(mu_hat - mu) <= np.maximum(0.1 * mu, RECOVERY_FLOOR)
        idx = np.where((h >= d) & ok)[0]
        # recovered = first time after which it stays within 10 % for 10 minutes
        rec = float("nan")
        for i in idx:
            span = (h >= h[i]) & (h < h[i] + 1 / 6)
            if ok[span].all():
                rec = (h[i] - d) * 60.0
                break
        recoveries.append(rec)
    rmse_after = float(np.sqrt(np.mean((mu_hat[after] - mu[after]) ** 2))) if after.any() else float("nan")
    od_rel = float("nan")
    if result["calibrated"]:  # filtered nOD × baseline is OD600 only when the signal is calibrated
        od_rel = float(np.sqrt(np.mean(((nod_hat[settled] * result["normalization"].factors["2"]) / od[settled] - 1) ** 2)))
    lag, lag_rmse = best_lag_minutes(h[settled], mu[settled], mu_hat[settled])
    return {
        "rmse": rmse, "rmse_exponential": rmse_expo, "max_rel_err_exponential": rel_expo, "rmse_after_dilution": rmse_after,
        "lag_min": lag, "lag_rmse": lag_rmse, "od_rel_rmse": od_rel, "recovery_min": recoveries,
        "outlier_share": result["outliers"] / max(result["readings"], 1), "elapsed_s": result["elapsed_s"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hours", type=float, default=14.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--dilution-every-h", type=float, default=2.0)
    parser.add_argument("--dilution-ml", type=float, default=2.0)
    parser.add_argument("--uncalibrated", action="store_true", help="feed raw voltages (no OD calibration)")
    args = parser.parse_args()
    result = simulate(args.hours, args.seed, args.dilution_every_h, args.dilution_ml, not args.uncalibrated)
    r = report(result)
    print(f"simulated {args.hours:g} h, {len(result['rows'])} estimates, {len(result['dilutions'])} dilutions of "
          f"{args.dilution_ml:g} mL, {'calibrated' if not args.uncalibrated else 'uncalibrated'} signal")
    print(f"growth rate RMSE (after 30 min)      {r['rmse']:.4f} 1/h")
    print(f"growth rate RMSE, exponential phase  {r['rmse_exponential']:.4f} 1/h "
          f"(max relative error {100 * r['max_rel_err_exponential']:.1f} %)")
    print(f"growth rate RMSE, 1 h after doses    {r['rmse_after_dilution']:.4f} 1/h")
    print(f"lag (best alignment)                 {r['lag_min']:.1f} min (RMSE then {r['lag_rmse']:.4f} 1/h)")
    print(f"filtered OD relative RMSE            {100 * r['od_rel_rmse']:.2f} %")
    recs = ", ".join("n/a" if math.isnan(x) else f"{x:.1f}" for x in r["recovery_min"])
    print(f"recovery after doses (10 %/0.02)     [{recs}] min")
    print(f"readings flagged as outliers         {100 * r['outlier_share']:.2f} %")
    print(f"estimator time                       {r['elapsed_s']:.2f} s ({1e6 * r['elapsed_s'] / max(len(result['rows']), 1):.0f} µs/reading)")


if __name__ == "__main__":
    main()
