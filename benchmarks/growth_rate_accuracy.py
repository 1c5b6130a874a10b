"""Accuracy of the growth-rate estimator, side by side with Pioreactor's filter (``grpredict``).

Streams (generated here, deterministic under a seed)
----------------------------------------------------
The pure vessel model (:mod:`reactorkit.core.hardware.vessel`: Monod growth,
pumps that dilute, an efflux tube) runs a **turbidostat** and a **chemostat**
for 24 h from OD 0.05, and an OD reading is taken every 5 s:

* reading = true OD × (1 + 0.015·ε), ε ~ N(0, 1) (1.5 % noise), and 0.2 % of
  the readings carry a spike: × (1 ± U(0.15, 0.5)) (bubbles, debris);
* turbidostat: when the true OD reaches the target, 1 mL of media is pumped in
  (0.5 mL/s), 5 s later 2 mL of waste out (the efflux tube keeps 14 mL); the
  target OD is drawn per seed in [1.0, 1.6] (of a carrying capacity of 2), so
  substrate runs low before the first dose and every dose of fresh media makes
  μ jump;
* chemostat: 0.5 mL of media every 20 min (then waste), the demo's settings;
  the culture grows in batch until the substrate runs out, then μ settles
  around the dilution rate with a jump at every dose (fresh substrate) that
  decays as it is consumed;
* μmax and the Monod constant Ks are drawn per seed (U(0.45, 0.75) h⁻¹,
  U(0.2, 0.4)), so no stream is the one the defaults were chosen on.

Every dose publishes dosing events as the pump actions do: ``add_media`` with
its volume when the media pump stops, ``remove_waste`` when the waste pump
stops. Readings and events reach both estimators in the order a live job sees
them (an event before the first reading taken after it). Our estimator also
gets the vial volume before each event (the job tracks it from the
``bioreactor/current_volume_ml`` topic); grpredict gets what the Pioreactor
job gives it: "the 2 readings after a dose are a recent dilution".

Metrics (per seed; the table shows the mean and the worst seed)
--------------------------------------------------------------
* RMSE of the growth rate against the vessel's true μ, readings after the first hour;
* lag: the shift of the estimate back in time (0–60 min, 15 s steps) that minimises that RMSE;
* lag of the cycle means: the same on the estimate and the true μ both averaged over a moving
  window of the stream's median dosing interval (after the first hour), which removes the
  saw-tooth of the dosing cycles: a periodic error can make a shift of one dosing period look
  like a lag, this one measures the response to the changes of the cycle-mean μ (substrate
  running out before the first doses, a batch becoming a chemostat);
* recovery: after each ``add_media`` dose past the first hour, the time until the
  estimate is within ±10 % of the true μ and stays there for 10 minutes (or until
  the next dose); the median over doses;
* spikes flagged (share of spiked readings our filter marks as outliers) and
  false flags (flagged readings without a spike, as a share of all readings);
* where the squared error falls (both estimators): readings where the culture's μ, averaged over 20
  minutes, changes faster than 0.05 h⁻² (substrate running out, a batch becoming a chemostat), the
  5 minutes after a dose, and the rest (steady);
* the same streams with the dosing events withheld ("no events");
* the real recording in ``tests/data/real``: window means against the
  documented log-linear fits, negative estimates after the first hour, and the
  start-up against the first window's μ: the first time the estimate comes within
  ±10 % of it (target: by 30 min) and its mean from 30 min to the window's end
  (target: within ±10 %); the single estimate at 30 min is printed beside the
  recording's own log-linear slope over 0–30 and 0–60 min (what an estimate that
  follows the culture can read there), not judged.

Near zero (``near_zero_section``; ``--no-near-zero`` skips it, ``--only near-zero`` runs it alone, ~10 s)
--------------------------------------------------------------------------------------------------------
Both estimators, through the same drivers, on readings near the photodiode's noise floor (OD at
0 ± noise: blank media, a fresh inoculum, a blank-subtracted OD), ``--seeds`` streams of each:
(a) a constant OD 0.002 with Gaussian noise of SD 0.002 and 0.004, 4 h: the mean growth rate over
1–4 h (true 0) and the mean filtered OD / true OD; (b) blank media (true OD 0) for 3 h, then an
inoculum from OD 0.002 at 0.5 h⁻¹ (noise SD 0.002): the rate over the blank's 1–3 h and over hours
1–4 after inoculation, with the filtered OD / true there; (c) OD 0.003 plus the real recording's
noise as the near-zero unit test builds it (its first 3 h less a 10-minute running median), started
at evenly spaced points of it: the rate over 1–3 h and the filtered OD / true. The worst seed is the
one furthest from the truth. grpredict takes every reading, clipping one at or below 1e-9 of its
baseline to 1e-9 before its log (its warm-up too): the share of readings ≤ 0 is printed beside it,
and the share of our estimates held below the noise (``below_noise``). Printed, not judged
(``tests/builtin_plugins/growth_rate/test_growth_rate_near_zero.py`` bounds our side).

Usage::

    pip install -e '.[bench]'          # grpredict 26.4.7, the peer
    python benchmarks/growth_rate_accuracy.py [--seeds 10] [--hours 24] [--only turbidostat] [--no-near-zero]

Without grpredict installed, our side runs alone and the ratio columns say ``n/a``.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import math
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from reactorkit.builtin_plugins.growth_rate.estimator import FilterSettings, GrowthRateCalculator
from reactorkit.core.hardware.vessel import Vessel, VesselParameters, VesselState

INTERVAL_S = 5.0
NOISE = 0.015
SPIKE_PROBABILITY = 0.002
SPIKE_SIZE = (0.15, 0.5)
PUMP_ML_PER_S = 0.5
EFFLUX_ML = 14.0
SETTLE_H = 1.0
RECOVERY_BAND = 0.10
RECOVERY_HOLD_H = 10 / 60
REAL_RECORDING = Path(__file__).resolve().parents[1] / "tests" / "data" / "real" / "pioreactor_1unit_5s_od_readings.csv.gz"
REAL_FITS = (((0, 3), 0.116), ((3, 8), 0.051), ((8, 15), 0.025))  # tests/data/real/README.md, fact 1

TARGETS = {"rmse": 0.010, "ratio": 0.5, "lag_min": 6.0, "recovery_min": 6.0, "false_flags": 0.005}


@dataclass
class Dose:
    """One dosing event as published: epoch s, action, mL, and the vial volume before it (mL)."""

    t: float
    event: str
    volume_ml: float
    vial_volume_ml: float


@dataclass
class Stream:
    """Readings ``t`` (s), ``y`` (OD), the truth ``mu`` (h⁻¹) and ``od``, spike mask, dosing events."""

    kind: str
    seed: int
    t: np.ndarray
    y: np.ndarray
    mu: np.ndarray
    od: np.ndarray
    spike: np.ndarray
    doses: list[Dose] = field(default_factory=list)


def make_stream(kind: str, seed: int, hours: float = 24.0) -> Stream:
    """Simulate a ``turbidostat`` or ``chemostat`` (see the module docstring) under ``seed``."""
    rng = np.random.default_rng([seed, 0 if kind == "turbidostat" else 1])
    mu_max, ks = rng.uniform(0.45, 0.75), rng.uniform(0.2, 0.4)
    target_od = rng.uniform(1.0, 1.6)
    params = VesselParameters(mu_max_per_hour=mu_max, ks=ks, substrate_in=2.0, pump_ml_per_second=PUMP_ML_PER_S,
                              efflux_tube_volume_ml=EFFLUX_ML, noise_fraction=0.0, seed=seed)
    vessel = Vessel(params, VesselState(t=0.0, od=0.05, substrate=1.95, volume_ml=EFFLUX_ML))
    media_ml = 1.0 if kind == "turbidostat" else 0.5
    every_s = 20 * 60.0
    next_chemostat = every_s
    volume = EFFLUX_ML  # the vial bookkeeping (monitor rules)
    ts, ys, mus, ods, spikes, doses = [], [], [], [], [], []
    n = int(hours * 3600 / INTERVAL_S)
    busy_until = -math.inf
    switches: list[tuple[float, str, float]] = []  # (epoch s, PWM channel, seconds on): pumps scheduled by a dose
    for i in range(1, n + 1):
        t = i * INTERVAL_S
        while switches and switches[0][0] <= t:
            on_at, channel, seconds = switches.pop(0)
            vessel.advance(on_at)
            vessel.s.pwm[channel] = 100.0
            vessel.s.pwm_off_at[channel] = on_at + seconds  # the vessel switches it off in time
        vessel.advance(t)
        spike = rng.random() < SPIKE_PROBABILITY
        y = vessel.s.od * (1.0 + NOISE * rng.standard_normal())
        if spike:
            y *= 1.0 + rng.choice((-1.0, 1.0)) * rng.uniform(*SPIKE_SIZE)
        ts.append(t)
        ys.append(max(y, 1e-6))
        mus.append(vessel.growth_rate_per_hour())
        ods.append(vessel.s.od)
        spikes.append(spike)
        due = vessel.s.od >= target_od if kind == "turbidostat" else t >= next_chemostat
        if due and t >= busy_until:
            if kind == "chemostat":
                next_chemostat += every_s
            # the pumps run between this reading and the next ones (so some readings see a partial dose)
            start = t + float(rng.uniform(0.5, INTERVAL_S))
            media_s, waste_s = media_ml / PUMP_ML_PER_S, 2 * media_ml / PUMP_ML_PER_S
            waste_at = start + media_s + 5.0
            switches += [(start, "2", media_s), (waste_at, "4", waste_s)]
            doses.append(Dose(start + media_s, "add_media", media_ml, volume))
            volume += media_ml
            doses.append(Dose(waste_at + waste_s, "remove_waste", 2 * media_ml, volume))
            volume = max(volume - 2 * media_ml, EFFLUX_ML)
            busy_until = waste_at + waste_s + 30.0  # the turbidostat's quiet time
    return Stream(kind, seed, np.array(ts), np.array(ys), np.array(mus), np.array(ods), np.array(spikes), doses)


def _events_in_order(stream: Stream, with_events: bool) -> list[tuple[float, int, Any]]:
    """Readings and dosing events as a live job sees them: an event before the first reading after it."""
    items: list[tuple[float, int, Any]] = [(float(t), 1, i) for i, t in enumerate(stream.t)]
    if with_events:
        items += [(d.t, 0, d) for d in stream.doses]
    items.sort(key=lambda x: (x[0], x[1]))
    return items


# --------------------------------------------------------------------- estimators


@dataclass
class Run:
    """One estimator's output on one stream: estimate per reading (NaN before it starts), outlier flags."""

    estimate: np.ndarray
    flagged: np.ndarray
    elapsed_s: float
    od_filtered: np.ndarray | None = None  # the filter's OD in the readings' units, per reading (NaN before it starts)
    held: np.ndarray | None = None  # ours: the estimate is marked below_noise (the rate is held)


def run_ours(stream: Stream, with_events: bool = True, settings: FilterSettings | None = None) -> Run:
    """:class:`GrowthRateCalculator` with its defaults, fed readings and events in live order.

    The estimate of a reading is the one returned when it arrived (what the job publishes);
    an outlier flag is the last decision on a reading (a late dosing event may re-process it).
    A warm-up whose readings' median is not positive raises for the reading and the job goes on
    with the next one (the warm-up slides on): so does this.
    """
    calc = GrowthRateCalculator(settings)
    est = np.full(len(stream.t), np.nan)
    od_filtered = np.full(len(stream.t), np.nan)
    held = np.zeros(len(stream.t), dtype=bool)
    flagged = np.zeros(len(stream.t), dtype=bool)
    index = {float(t): i for i, t in enumerate(stream.t)}
    started = time.perf_counter()
    for t, kind, item in _events_in_order(stream, with_events):
        if kind == 0:
            for replayed in calc.on_dosing(item.t, volume_change_ml=item.volume_ml, event=item.event,
                                           vial_volume_ml=item.vial_volume_ml):
                flagged[index[replayed.timestamp]] = bool(replayed.outliers)
            continue
        try:
            e = calc.on_od(t, {"2": float(stream.y[item])})
        except ValueError:
            if calc.normalization is not None:
                raise
            continue  # the warm-up's median is not positive (a blank at 0): it slides on
        if e is not None:
            est[item] = e.growth_rate
            od_filtered[item] = e.od_filtered * calc.normalization.factors["2"]
            held[item] = e.below_noise
            flagged[item] = bool(e.outliers)
    return Run(est, flagged, time.perf_counter() - started, od_filtered, held)


def grpredict_available() -> bool:
    try:
        import grpredict  # noqa: F401
    except ImportError:
        return False
    return True


def run_grpredict(stream: Stream, with_events: bool = True, skip_first: int = 5, warmup: int = 10,
                  recent_dilution_readings: int = 2) -> Run:
    """grpredict as the Pioreactor job drives it: skip 5 readings, summarise 10 warm-up readings,
    then ``update(obs, dt_h, recent_dilution)`` per reading, ``recent_dilution`` for the 2 readings
    after a dosing event (a dose during the warm-up restarts it)."""
    import grpredict

    est = np.full(len(stream.t), np.nan)
    od_filtered = np.full(len(stream.t), np.nan)
    started = time.perf_counter()
    ekf = None
    gathered: list[float] = []
    skipped = 0
    since_dose: int | None = None
    last_t = 0.0
    for t, kind, item in _events_in_order(stream, with_events):
        if kind == 0:
            if ekf is None:
                gathered.clear()
            else:
                since_dose = 0
            continue
        y = float(stream.y[item])
        if skipped < skip_first:
            skipped += 1
            continue
        if ekf is None:
            gathered.append(y)
            if len(gathered) == warmup:
                summary = grpredict.summarize_warmup_observations(np.array(gathered), INTERVAL_S / 3600.0)
                ekf = grpredict.build_filter_from_observation_summary(summary, outlier_std_threshold=5.0)
                factor = float(summary.normalization_factors[0])
                last_t = t
            continue
        recent = since_dose is not None and since_dose < recent_dilution_readings
        state, _ = ekf.update([y / factor], (t - last_t) / 3600.0, recent)
        last_t = t
        if since_dose is not None:
            since_dose += 1
        est[item] = float(state[1])
        od_filtered[item] = math.exp(min(float(state[0]), 700.0)) * factor
    return Run(est, np.zeros(len(stream.t), dtype=bool), time.perf_counter() - started, od_filtered)


# ------------------------------------------------------------------------ metrics


def rmse_after(stream: Stream, est: np.ndarray, settle_h: float = SETTLE_H) -> float:
    mask = (stream.t / 3600.0 >= settle_h) & np.isfinite(est)
    return float(np.sqrt(np.mean((est[mask] - stream.mu[mask]) ** 2)))


def best_lag_minutes(stream: Stream, est: np.ndarray, max_min: float = 60.0, step_readings: int = 3) -> float:
    """The shift of the estimate back in time (minutes) that minimises its RMSE against the truth."""
    mask = (stream.t / 3600.0 >= SETTLE_H) & np.isfinite(est)
    e, mu = est[mask], stream.mu[mask]
    best, best_rmse = 0.0, math.inf
    for lag in range(0, int(max_min * 60 / INTERVAL_S) + 1, step_readings):
        if lag >= len(e) - 10:
            break
        r = float(np.sqrt(np.mean((e[lag:] - mu[: len(mu) - lag]) ** 2)))
        if r < best_rmse:
            best, best_rmse = lag * INTERVAL_S / 60.0, r
    return best


def cycle_mean_lag_minutes(stream: Stream, est: np.ndarray, max_min: float = 60.0, step_readings: int = 3) -> float:
    """:func:`best_lag_minutes` of the estimate and the truth both averaged over a moving window of the
    median interval between ``add_media`` doses after the first hour (the dosing cycle; 20 min without doses)."""
    adds = np.array([d.t for d in stream.doses if d.event == "add_media" and d.t >= SETTLE_H * 3600.0])
    period_s = float(np.median(np.diff(adds))) if len(adds) > 2 else 1200.0
    k = max(int(round(period_s / INTERVAL_S)), 1)
    mask = (stream.t / 3600.0 >= SETTLE_H) & np.isfinite(est)
    first = int(np.argmax(mask))
    window = np.ones(k) / k
    e = np.convolve(est[first:], window, mode="valid")
    mu = np.convolve(stream.mu[first:], window, mode="valid")
    best, best_rmse = 0.0, math.inf
    for lag in range(0, int(max_min * 60 / INTERVAL_S) + 1, step_readings):
        if lag >= len(e) - 10:
            break
        r = float(np.sqrt(np.nanmean((e[lag:] - mu[: len(mu) - lag]) ** 2)))
        if r < best_rmse:
            best, best_rmse = lag * INTERVAL_S / 60.0, r
    return best


def recovery_minutes(stream: Stream, est: np.ndarray) -> list[float]:
    """Per ``add_media`` dose after the first hour: minutes until within ±10 % for 10 min (or to the next dose)."""
    h = stream.t / 3600.0
    ok = np.isfinite(est) & (np.abs(est - stream.mu) <= RECOVERY_BAND * np.abs(stream.mu))
    adds = [d.t / 3600.0 for d in stream.doses if d.event == "add_media"]
    out = []
    for k, d in enumerate(adds):
        if d < SETTLE_H:
            continue
        nxt = adds[k + 1] if k + 1 < len(adds) else h[-1]
        hold = min(RECOVERY_HOLD_H, nxt - d)
        after = np.where(h >= d)[0]
        rec = math.nan
        for i in after:
            if h[i] > nxt:
                break
            span = (h >= h[i]) & (h < h[i] + hold)
            if ok[span].all():
                rec = (h[i] - d) * 60.0
                break
        out.append(rec if not math.isnan(rec) else (nxt - d) * 60.0)
    return out


@dataclass
class Scores:
    rmse: float
    lag_min: float
    recovery_min: float
    cycle_lag_min: float
    spikes_flagged: float
    false_flags: float
    rmse_no_events: float = math.nan
    phases: dict[str, tuple[float, float]] = field(default_factory=dict)


PHASES = ("changing", "≤ 5 min after a dose", "steady")
PHASE_SLOPE = 0.05  # h⁻²: the culture's cycle-averaged μ changes faster than this: its substrate runs out (or back)


def phase_of_readings(stream: Stream) -> np.ndarray:
    """Per reading (after the first hour) its phase, an index into ``PHASES``; −1 before.

    ``changing``: the true μ averaged over a 20-minute window (a chemostat's dosing period, so its
    saw-tooth averages out) changes faster than ``PHASE_SLOPE`` h⁻² (substrate running out before the
    first doses, a batch turning into a chemostat); else ``≤ 5 min after a dose`` (an ``add_media``
    dose up to 5 minutes before the reading); else ``steady``.
    """
    h = stream.t / 3600.0
    k = max(int(1200 / INTERVAL_S), 1)
    smooth = np.convolve(stream.mu, np.ones(k) / k, mode="same")
    slope = np.gradient(smooth, h)
    adds = np.array(sorted(d.t for d in stream.doses if d.event == "add_media"))
    last = np.searchsorted(adds, stream.t) - 1
    since = np.where(last >= 0, stream.t - adds[np.clip(last, 0, None)], np.inf) if len(adds) else np.full(len(h), np.inf)
    phase = np.where(np.abs(slope) > PHASE_SLOPE, 0, np.where(since <= 300.0, 1, 2))
    return np.where(h >= SETTLE_H, phase, -1)


def phase_profile(stream: Stream, est: np.ndarray) -> dict[str, tuple[float, float]]:
    """``{phase: (share of readings, share of the squared error)}`` after the first hour."""
    phase = phase_of_readings(stream)
    ok = (phase >= 0) & np.isfinite(est)
    se = np.where(ok, (est - stream.mu) ** 2, 0.0)
    total, n = float(se.sum()) or 1.0, max(int(ok.sum()), 1)
    return {name: (float((ok & (phase == i)).sum()) / n, float(se[ok & (phase == i)].sum()) / total)
            for i, name in enumerate(PHASES)}


def score(stream: Stream, run: Run, run_no_events: Run | None = None) -> Scores:
    started = np.isfinite(run.estimate)
    spikes = stream.spike & started
    recoveries = recovery_minutes(stream, run.estimate)
    return Scores(
        rmse=rmse_after(stream, run.estimate),
        lag_min=best_lag_minutes(stream, run.estimate),
        recovery_min=float(np.median(recoveries)) if recoveries else math.nan,
        cycle_lag_min=cycle_mean_lag_minutes(stream, run.estimate),
        spikes_flagged=float(run.flagged[spikes].mean()) if spikes.any() else math.nan,
        false_flags=float((run.flagged & ~stream.spike & started).sum() / max(started.sum(), 1)),
        rmse_no_events=rmse_after(stream, run_no_events.estimate) if run_no_events is not None else math.nan,
        phases=phase_profile(stream, run.estimate),
    )


# --------------------------------------------------------------------- real recording


def real_recording() -> tuple[np.ndarray, np.ndarray]:
    from datetime import datetime

    with gzip.open(REAL_RECORDING, "rt", newline="") as fh:
        rows = [(datetime.fromisoformat(r["timestamp"].replace("Z", "+00:00")).timestamp(), float(r["od_reading"]))
                for r in csv.DictReader(fh)]
    t = np.array([r[0] for r in rows])
    return t - t[0], np.array([r[1] for r in rows])


def real_scores(estimator: Callable[[Stream], Run]) -> dict[str, Any]:
    t, y = real_recording()
    stream = Stream("real", 0, t, y, np.zeros_like(y), np.zeros_like(y), np.zeros_like(y, dtype=bool))
    est = estimator(stream).estimate
    h = t / 3600.0
    out: dict[str, Any] = {"windows": []}
    for (a, b), documented in REAL_FITS:
        window = (h >= a) & (h < b) & np.isfinite(est)
        out["windows"].append((a, b, documented, float(np.mean(est[window]))))
    late = (h >= SETTLE_H) & np.isfinite(est)
    out["negatives_after_1h"] = int((est[late] < 0).sum())
    i30 = int(np.searchsorted(h, 0.5))
    out["at_30_min"] = float(est[i30])
    first = REAL_FITS[0][1]
    in_band = np.isfinite(est) & (np.abs(est / first - 1) <= 0.10)
    out["first_in_band_min"] = float(60 * h[int(np.argmax(in_band))]) if in_band.any() else math.nan
    settled = (h >= 0.5) & (h < REAL_FITS[0][0][1]) & np.isfinite(est)
    out["mean_30min_to_window_end"] = float(np.mean(est[settled]))
    # jitter: SD of the estimate around its centred 30-minute rolling mean, 1–15 h
    k = int(1800 / INTERVAL_S)
    valid = np.where(np.isfinite(est), est, 0.0)
    rolling = np.convolve(valid, np.ones(k) / k, mode="same")
    core = (h >= 1.0) & (h <= 15.0)
    out["jitter"] = float(np.std(est[core] - rolling[core]))
    return out


# ------------------------------------------------------------------------ near zero


NEAR_ZERO_BLANK_H = 3.0  # (b): hours of blank media before the inoculum
NEAR_ZERO_REAL_OD = 0.003  # (c): the constant OD under the real noise (about the noise's SD)


@dataclass
class NearZeroCase:
    """One near-zero stream kind: ``make(seed)`` gives a :class:`Stream` (``od``: true OD, ``mu``: true h⁻¹);
    ``windows`` are ``(label, start h, end h, true rate h⁻¹)``, the last one also giving the filtered OD / true."""

    name: str
    make: Callable[[int], Stream]
    windows: tuple[tuple[str, float, float, float], ...]


def _near_zero_stream(name: str, seed: int, od: np.ndarray, mu: np.ndarray, noise: np.ndarray) -> Stream:
    """Readings ``od + noise`` every ``INTERVAL_S`` from ``INTERVAL_S`` on (no spikes, no doses, no clipping)."""
    t = INTERVAL_S * np.arange(1, len(od) + 1)
    return Stream(name, seed, t, od + noise, mu, od, np.zeros(len(od), dtype=bool))


def constant_od_stream(level: float, sd: float, hours: float, seed: int) -> Stream:
    """(a) A constant OD ``level`` read with Gaussian noise of SD ``sd`` (OD units)."""
    n = int(hours * 3600 / INTERVAL_S)
    noise = np.random.default_rng([seed, 2, int(round(sd * 1e6))]).normal(0.0, sd, n)
    return _near_zero_stream("constant", seed, np.full(n, level), np.zeros(n), noise)


def blank_then_culture_stream(seed: int, sd: float = 0.002, od0: float = 0.002, mu: float = 0.5,
                              hours_after: float = 4.0) -> Stream:
    """(b) Blank media (true OD 0) for ``NEAR_ZERO_BLANK_H`` h, then an inoculum from ``od0`` growing at ``mu``
    h⁻¹ for ``hours_after`` h, read with Gaussian noise of SD ``sd`` (the unit test's blank-then-culture stream)."""
    n = int((NEAR_ZERO_BLANK_H + hours_after) * 3600 / INTERVAL_S)
    h = INTERVAL_S * np.arange(1, n + 1) / 3600.0
    grown = h >= NEAR_ZERO_BLANK_H
    od = np.where(grown, od0 * np.exp(mu * (h - NEAR_ZERO_BLANK_H)), 0.0)
    noise = np.random.default_rng([seed, 3]).normal(0.0, sd, n)
    return _near_zero_stream("blank", seed, od, np.where(grown, mu, 0.0), noise)


def real_noise() -> np.ndarray:
    """The real recording's noise as the near-zero unit test builds it: each reading of its first 3 h less the
    median of the 121 readings (10 min) around it (OD units; a robust SD of about 0.003)."""
    t, y = real_recording()
    ods = y[t < 3 * 3600]
    return np.array([od - np.median(ods[max(0, i - 60):i + 61]) for i, od in enumerate(ods)])


def real_noise_stream(noise: np.ndarray, seed: int, seeds: int) -> Stream:
    """(c) ``NEAR_ZERO_REAL_OD`` plus the real noise, started at the ``seed``-th of ``seeds`` evenly spaced
    points of it (a rotation: the noise wraps around)."""
    shift = (seed - 1) * len(noise) // max(seeds, 1)
    rotated = np.roll(noise, -shift)
    return _near_zero_stream("real noise", seed, np.full(len(noise), NEAR_ZERO_REAL_OD), np.zeros(len(noise)),
                             rotated)


def near_zero_cases(seeds: int) -> list[NearZeroCase]:
    """The near-zero streams (a), (b), (c): see :func:`near_zero_section`."""
    b = NEAR_ZERO_BLANK_H
    cases = [
        NearZeroCase("(a) OD 0.002, Gaussian noise SD 0.002, 4 h", lambda s: constant_od_stream(0.002, 0.002, 4, s),
                     (("rate 1–4 h", 1.0, 4.0, 0.0),)),
        NearZeroCase("(a) OD 0.002, Gaussian noise SD 0.004, 4 h", lambda s: constant_od_stream(0.002, 0.004, 4, s),
                     (("rate 1–4 h", 1.0, 4.0, 0.0),)),
        NearZeroCase(f"(b) blank (OD 0) {b:g} h, then OD 0.002 at 0.5 h⁻¹, noise SD 0.002",
                     blank_then_culture_stream,
                     (("blank: rate 1–3 h", 1.0, b, 0.0), ("inoculum: rate 1–4 h after", b + 1.0, b + 4.0, 0.5))),
    ]
    if REAL_RECORDING.exists():
        noise = real_noise()
        cases.append(NearZeroCase(f"(c) OD {NEAR_ZERO_REAL_OD:g} + the real recording's noise "
                                  f"(robust SD {1.4826 * float(np.median(np.abs(noise - np.median(noise)))):.4f}), "
                                  f"{len(noise) * INTERVAL_S / 3600:.0f} h",
                                  lambda s: real_noise_stream(noise, s, seeds),
                                  (("rate 1–3 h", 1.0, 3.0, 0.0),)))
    return cases


def _window_means(stream: Stream, run: Run, start_h: float, end_h: float) -> tuple[float, float, float]:
    """Mean estimate (h⁻¹), mean filtered OD over the true OD, and the share of estimates held below the
    noise, over the readings from ``start_h`` to ``end_h`` that have an estimate (NaN if none)."""
    h = stream.t / 3600.0
    w = (h >= start_h) & (h < end_h) & np.isfinite(run.estimate)
    if not w.any():
        return math.nan, math.nan, math.nan
    ratio = (float(np.mean(run.od_filtered[w] / stream.od[w]))
             if run.od_filtered is not None and (stream.od[w] > 0).all() else math.nan)  # not for a blank at 0
    held = float(np.mean(run.held[w])) if run.held is not None else math.nan
    return float(np.mean(run.estimate[w])), ratio, held


def _furthest(values: list[float], truth: float) -> tuple[float, float]:
    """``(mean, worst)``: the worst is the value furthest from ``truth`` (signed); NaNs left out."""
    vals = [v for v in values if not math.isnan(v)]
    if not vals:
        return math.nan, math.nan
    return statistics.fmean(vals), max(vals, key=lambda v: abs(v - truth))


def near_zero_section(seeds: int, peer: bool) -> None:
    """Both estimators on the same readings near the photodiode's noise floor (OD at 0 ± noise), printed.

    (a) a constant OD 0.002 with Gaussian noise of SD 0.002 and 0.004 (4 h); (b) blank media (OD 0) for 3 h,
    then an inoculum from OD 0.002 at 0.5 h⁻¹ (noise SD 0.002); (c) OD 0.003 plus the real recording's noise
    (:func:`real_noise`), started at ``seeds`` points of it. Per stream kind and window: the mean growth rate
    and the mean filtered OD / true OD over the seeds, and the worst seed (the one furthest from the truth).
    grpredict takes every reading: it clips one at or below 1e-9 of its baseline to 1e-9 before taking its
    log (``MINIMUM_OBSERVATION_VALUE``), also in its warm-up; the share of such readings is printed. Not
    judged: no target (the near-zero unit tests bound our side).
    """
    from machine import conditions  # noqa: E402 (benchmarks/ is the script's folder)

    print(f"\nnear zero (readings at 0 ± noise): {seeds} seeds, readings every {INTERVAL_S:g} s, no spikes, "
          "no dosing events; worst = the seed furthest from the truth")
    ours_time, peer_time, ours_n, peer_n = 0.0, 0.0, 0, 0
    for case in near_zero_cases(seeds):
        per_window: dict[str, dict[str, list[float]]] = {w[0]: {} for w in case.windows}
        nonpositive, ours_none, peer_errors = [], 0, []
        for seed in range(1, seeds + 1):
            stream = case.make(seed)
            nonpositive.append(float(np.mean(stream.y <= 0)))
            ours = run_ours(stream)
            ours_time, ours_n = ours_time + ours.elapsed_s, ours_n + len(stream.t)
            ours_none += not np.isfinite(ours.estimate).any()
            theirs = None
            if peer:
                try:
                    theirs = run_grpredict(stream)
                    peer_time, peer_n = peer_time + theirs.elapsed_s, peer_n + len(stream.t)
                except Exception as exc:  # noqa: BLE001 (reported, not hidden)
                    peer_errors.append(f"seed {seed}: {type(exc).__name__}: {exc}")
            for label, a, b, _ in case.windows:
                rate, ratio, held = _window_means(stream, ours, a, b)
                gr_rate, gr_ratio, _ = _window_means(stream, theirs, a, b) if theirs else (math.nan,) * 3
                for key, value in (("rate", rate), ("ratio", ratio), ("held", held), ("gr rate", gr_rate),
                                   ("gr ratio", gr_ratio)):
                    per_window[label].setdefault(key, []).append(value)
        print(f"\n{case.name}")
        print(f"{'metric':<44} {'ours mean':>10} {'ours worst':>10} {'grpredict mean':>14} {'gr worst':>9} "
              f"{'target':>8}  verdict")
        for label, _, _, truth in case.windows:
            v = per_window[label]
            rows = [(f"{label} (1/h, true {truth:g})", "rate", "gr rate", truth, ".4f")]
            if any(not math.isnan(x) for x in v["ratio"] + v["gr ratio"]):  # not for the blank (true OD 0)
                rows.append(("  filtered OD / true, same hours", "ratio", "gr ratio", 1.0, ".3f"))
            for name, ours_key, peer_key, true_value, spec in rows:
                mean, worst = _furthest(v[ours_key], true_value)
                pm, pw = _furthest(v[peer_key], true_value)
                print(f"{name:<44} {_fmt(mean, spec):>10} {_fmt(worst, spec):>10} {_fmt(pm, spec):>14} "
                      f"{_fmt(pw, spec):>9} {'':>8}")
            held = [x for x in v["held"] if not math.isnan(x)]
            if held and max(held) > 0:
                print(f"  {label}: ours held below the noise (below_noise) for {100 * statistics.fmean(held):.0f} % "
                      f"of the estimates (mean; {100 * min(held):.0f}–{100 * max(held):.0f} % by seed)")
        print(f"  readings ≤ 0: {100 * statistics.fmean(nonpositive):.1f} % of all (mean; up to "
              f"{100 * max(nonpositive):.1f} %)"
              + (": grpredict clips each to 1e-9 of its baseline before ln (ln 1e-9 = −20.7)" if peer else ""))
        if ours_none:
            print(f"  ours gave no estimate on {ours_none} of {seeds} seeds "
                  "(its warm-up's median never turned positive)")
        for line in peer_errors:
            print(f"  grpredict raised on {line}")
    print(f"\nnear zero, time per reading: ours {_fmt(1e6 * ours_time / max(ours_n, 1), '.0f')} µs, grpredict "
          f"{_fmt(1e6 * peer_time / peer_n if peer_n else math.nan, '.0f')} µs   [{conditions()}]")


# --------------------------------------------------------------------------- report


def _fmt(x: float, spec: str = ".4f") -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=10, help="streams per kind (default 10)")
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--only", choices=("turbidostat", "chemostat", "near-zero"),
                        help="one kind of stream, or the near-zero section alone")
    parser.add_argument("--near-zero", action=argparse.BooleanOptionalAction, default=True,
                        help="the near-zero section (readings at 0 ± noise; --no-near-zero skips it)")
    parser.add_argument("--no-peer", action="store_true", help="skip grpredict even if installed")
    args = parser.parse_args()
    peer = grpredict_available() and not args.no_peer
    if not peer:
        print("grpredict is not installed (pip install -e '.[bench]'): ratio columns show n/a")
    kinds = () if args.only == "near-zero" else (args.only,) if args.only else ("turbidostat", "chemostat")
    failures: list[str] = []
    elapsed = []
    for kind in kinds:
        print(f"\n{kind}: {args.seeds} seeds × {args.hours:g} h, readings every {INTERVAL_S:g} s, "
              f"{100 * NOISE:g} % noise, {100 * SPIKE_PROBABILITY:g} % spikes")
        header = (f"{'seed':>4} {'doses':>5} {'RMSE ours':>9} {'grpredict':>9} {'ratio':>6} {'lag min':>7} "
                  f"{'gr lag':>6} {'cyc lag':>7} {'gr cyc':>6} {'recov min':>9} {'gr recov':>8} {'spikes':>6} {'false %':>7} "
                  f"{'no-ev ours':>10} {'no-ev gr':>8}")
        print(header)
        rows = []
        for seed in range(1, args.seeds + 1):
            stream = make_stream(kind, seed, args.hours)
            ours_run = run_ours(stream)
            elapsed.append(ours_run.elapsed_s / len(stream.t))
            ours = score(stream, ours_run, run_ours(stream, with_events=False))
            theirs = score(stream, run_grpredict(stream), run_grpredict(stream, with_events=False)) if peer else None
            ratio = ours.rmse / theirs.rmse if theirs else math.nan
            rows.append((ours, theirs, ratio))
            print(f"{seed:>4} {sum(d.event == 'add_media' for d in stream.doses):>5} {ours.rmse:>9.4f} "
                  f"{_fmt(theirs.rmse if theirs else math.nan):>9} {_fmt(ratio, '.2f'):>6} {ours.lag_min:>7.2f} "
                  f"{_fmt(theirs.lag_min if theirs else math.nan, '.2f'):>6} {ours.cycle_lag_min:>7.2f} "
                  f"{_fmt(theirs.cycle_lag_min if theirs else math.nan, '.2f'):>6} {ours.recovery_min:>9.1f} "
                  f"{_fmt(theirs.recovery_min if theirs else math.nan, '.1f'):>8} {100 * ours.spikes_flagged:>5.0f}% "
                  f"{100 * ours.false_flags:>7.3f} {ours.rmse_no_events:>10.4f} "
                  f"{_fmt(theirs.rmse_no_events if theirs else math.nan):>8}")
        o = [r[0] for r in rows]
        th = [r[1] for r in rows if r[1] is not None]
        ratios = [r[2] for r in rows]

        def agg(values: list[float], worst: Callable[[list[float]], float] = max) -> tuple[float, float]:
            vals = [v for v in values if not math.isnan(v)]
            return (statistics.fmean(vals), worst(vals)) if vals else (math.nan, math.nan)

        summary = {
            "RMSE after 1 h (1/h)": (agg([s.rmse for s in o]), agg([s.rmse for s in th]), TARGETS["rmse"], ".4f"),
            "RMSE ratio ours/grpredict": (agg(ratios), None, TARGETS["ratio"], ".2f"),
            "lag (min)": (agg([s.lag_min for s in o]), agg([s.lag_min for s in th]), TARGETS["lag_min"], ".2f"),
            "lag of cycle means (min)": (agg([s.cycle_lag_min for s in o]), agg([s.cycle_lag_min for s in th]),
                                         None, ".2f"),
            "median recovery (min)": (agg([s.recovery_min for s in o]), agg([s.recovery_min for s in th]),
                                      TARGETS["recovery_min"], ".1f"),
            "spikes flagged (%)": (agg([100 * s.spikes_flagged for s in o], min), None, 100.0, ".1f"),
            "false flags (% readings)": (agg([100 * s.false_flags for s in o]), None, 100 * TARGETS["false_flags"], ".3f"),
            "RMSE, no dosing events (1/h)": (agg([s.rmse_no_events for s in o]), agg([s.rmse_no_events for s in th]),
                                             None, ".4f"),
        }
        print("where the squared error after 1 h falls (share of readings → share of squared error, mean over seeds):")
        for name in PHASES:
            for label, scores in (("ours", o), ("grpredict", th)):
                if scores:
                    reads = statistics.fmean(s.phases[name][0] for s in scores)
                    error = statistics.fmean(s.phases[name][1] for s in scores)
                    print(f"  {name:<22} {label:<9} {100 * reads:5.1f} % → {100 * error:5.1f} %")
        print(f"\n{'metric':<30} {'ours mean':>10} {'ours worst':>10} {'grpredict mean':>14} {'gr worst':>9} "
              f"{'target':>8}  verdict")
        for name, ((mean, worst), peer_stats, target, spec) in summary.items():
            pm, pw = peer_stats if peer_stats else (math.nan, math.nan)
            verdict = ""
            if target is not None and not math.isnan(worst):
                good = worst >= target if name.startswith("spikes") else worst <= target
                verdict = "ok" if good else "MISSED"
                if not good:
                    failures.append(f"{kind}: {name}")
            print(f"{name:<30} {_fmt(mean, spec):>10} {_fmt(worst, spec):>10} {_fmt(pm, spec):>14} "
                  f"{_fmt(pw, spec):>9} {_fmt(target, spec) if target is not None else '':>8}  {verdict}")
    if REAL_RECORDING.exists() and args.only != "near-zero":
        print("\nreal recording (tests/data/real, 15.2 h, no dosing events):")
        ours_real = real_scores(run_ours)
        peer_real = real_scores(run_grpredict) if peer else None
        print(f"{'window (h)':<12} {'documented':>10} {'ours':>8} {'off':>7} {'grpredict':>10} {'off':>7}")
        for k, (a, b, documented, mean) in enumerate(ours_real["windows"]):
            pm = peer_real["windows"][k][3] if peer_real else math.nan
            print(f"{a:>2}–{b:<9} {documented:>10.3f} {mean:>8.4f} {100 * (mean / documented - 1):>+6.1f}% "
                  f"{_fmt(pm):>10} {_fmt(100 * (pm / documented - 1), '+.1f'):>6}%")
            if abs(mean / documented - 1) > 0.03:
                failures.append(f"real recording window {a}–{b} h")
        first = REAL_FITS[0][1]
        print(f"estimate at 30 min: ours {ours_real['at_30_min']:.4f} "
              f"({100 * (ours_real['at_30_min'] / first - 1):+.1f} % of {first}), grpredict "
              f"{_fmt(peer_real['at_30_min'] if peer_real else math.nan)}")
        print(f"first within ±10 % of {first}: ours at {ours_real['first_in_band_min']:.1f} min, grpredict "
              f"{_fmt(peer_real['first_in_band_min'] if peer_real else math.nan, '.1f')} min (target: by 30 min)")
        end = REAL_FITS[0][0][1]
        settled_mean = ours_real["mean_30min_to_window_end"]
        peer_settled = peer_real["mean_30min_to_window_end"] if peer_real else math.nan
        print(f"mean from 30 min to {end} h: ours {settled_mean:.4f} ({100 * (settled_mean / first - 1):+.1f} %), "
              f"grpredict {_fmt(peer_settled)} ({_fmt(100 * (peer_settled / first - 1), '+.1f')} %) (target: ±10 %)")
        t_real, y_real = real_recording()
        slopes = []
        for minutes in (30, 60):
            early = t_real <= 60 * minutes
            slopes.append(f"0–{minutes} min {np.polyfit(t_real[early] / 3600.0, np.log(y_real[early]), 1)[0]:.3f}")
        print("the recording's own log-linear slope (1/h): " + ", ".join(slopes))
        print(f"negative estimates after 1 h: ours {ours_real['negatives_after_1h']}, grpredict "
              f"{peer_real['negatives_after_1h'] if peer_real else 'n/a'}")
        print(f"jitter around the 30-min mean (1/h): ours {ours_real['jitter']:.4f}, grpredict "
              f"{_fmt(peer_real['jitter'] if peer_real else math.nan)}")
        if ours_real["negatives_after_1h"]:
            failures.append("real recording: negative estimates after 1 h")
        # "within ±10 % of the first window's μ by 30 min": the estimate has reached the band no later
        # than 30 min and, from then to the window's end, its mean stays in it. The single estimate *at*
        # 30 min is printed, not judged: the recording itself grows at ~0.2 h⁻¹ then (slopes above).
        if not (ours_real["first_in_band_min"] <= 30.0 and abs(settled_mean / first - 1) <= 0.10):  # NaN fails
            failures.append("real recording: slow start")
    if args.near_zero or args.only == "near-zero":
        near_zero_section(args.seeds, peer)
    if elapsed:
        print(f"\nour estimator: {1e6 * statistics.fmean(elapsed):.0f} µs per reading")
    if args.only == "near-zero":
        print("the near-zero section has no targets")
    else:
        print("all targets met" if not failures else "targets missed: " + "; ".join(failures))


if __name__ == "__main__":
    main()
