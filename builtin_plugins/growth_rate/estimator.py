"""Growth rate from optical density: a robust, adaptive extended Kalman filter (pure; no I/O).

The model
---------
State ``x = [ℓ, r, a, s]``:

* ``ℓ = ln(nOD)``: log of the normalised optical density (nOD = OD / baseline);
* ``r``: the culture's specific growth rate μ in h⁻¹ (the growth rate reported);
* ``a``: a drift ``dr/dt`` in h⁻² that the biomass does not explain, so a culture
  slowing down (or speeding up) is followed without the lag a constant-rate model has;
* ``s = dμ/dℓ`` (h⁻¹ per unit ln OD, ≤ 0): how the growth rate depends on the biomass.

**Why μ is a function of the biomass.** In a stirred vessel with Monod kinetics
(Monod, *Annu. Rev. Microbiol.* 3:371, 1949), ``μ = μmax·S/(K + S)``, growth turns
substrate into biomass at a fixed yield Y, so ``X + Y·S`` is conserved by growth;
a dilution with media of substrate ``S_in`` moves it towards ``Y·S_in`` (the
chemostat's mass balance, Smith & Waltman, *The Theory of the Chemostat*,
Cambridge 1995, ch. 1). Once ``X + Y·S = Y·S_in = C`` (after a few volume
exchanges, or from the start when the vessel was filled with the media it is
fed), ``S = (C − X)/Y`` and ``μ = μ(X)`` falls as the biomass rises. Linearised
in ℓ over the range a dosed culture moves in (a dose exchanges a few %):

    μ = μ* + s·(ℓ − ℓ*),   s = dμ/dℓ = −X·μmax·K'/(K' + C' − X)² ≤ 0

(K', C' in biomass units). One slope explains three things: a dose that lowers ℓ
by δ lifts μ by ``−s·δ``; between doses μ falls as the culture grows back,
``dμ/dt = s·μ``; and a batch running out of substrate is μ falling as X nears C.
Because s is shared by every cycle, jump and fall are learned together across
doses instead of from the little one cycle says.

Dynamics over ``Δt`` hours (s constant over the step; exact for the linear model; the drift's
growth without doses, below, replaces ``e^{−Δt/τ}`` by ``e^{γΔt}``):

    ℓ' = ℓ + r·(e^{sΔt} − 1)/s + l_a·a,   r' = r·e^{sΔt} + r_a·a,   a' = a·e^{−Δt/τ},   s' = s

with the Singer drift (Singer, *IEEE TAES* 6(4):473, 1970; ``drift_correlation_h``
τ, default 2 h: a change of the rate persists for about τ and is then
forgotten) ``r_a = τ(1 − e^{−Δt/τ})``, ``l_a = τ(Δt − r_a)``; process noise
``q_ℓ·Δt`` on ℓ, the continuous white-noise jerk matrix of (ℓ, r, a) for ``q_r``
and ``q_a`` (Bar-Shalom, Li & Kirubarajan, *Estimation with Applications to
Tracking and Navigation*, Wiley 2001, §6.2–6.3), and on s a random walk whose
SD per √h is ``q_s0 + q_s1·|s| + k·|a|/max(|r|, 0.05)``: a floor, a relative
part (s changes in proportion as X and S do), and a part that grows while the
rate changes for a reason the slope does not yet explain (a batch turning into
a chemostat moves s from ≈ 0 to −2…−3 within an hour or two). The transition is
non-linear in (r, s): the filter propagates the covariance with its Jacobian
(extended Kalman filter).

**Only doses identify s.** Without doses s·μ and the drift a are the same
curvature of ℓ; an s learnt from a real culture's burst of growth was then
extrapolated for hours (the real recording's window means −5/−8/−10 %). So
the rate is tied to the biomass (the terms in s above) only for
``slope_memory_h`` (2 h) after a known dose; otherwise ``s = 0`` in the
dynamics and the filter is the (ℓ, r, a) filter. When doses start, s starts
from what the drift says of it, ``s = a/μ`` (``dμ/dt = s·μ``), with the drift's
variance divided by μ² plus ``initial_slope_std²``, and the drift keeps the rest.

**While doses tie the rate to the biomass** the slope explains the jump at a
dose and the fall between doses, so less is left to the rate's random walk and
to the drift: their noises are then ``coupled_rate_process_std`` (0.005) and
``coupled_drift_process_std`` (0.01), half the uncoupled ones. The mean rate
over a dosing cycle can still change fast (a chemostat's batch running out of
substrate while it is already dosed), so the drift's noise is then scaled by
``min(max(χ⁴, 1), drift_boost_max)`` with ``χ = m·√(2N − 1)``, ``m`` the
exponentially weighted mean of the standardised innovations over
``N = drift_boost_readings`` (60) readings (for the white, unit-variance
innovations of a filter whose model holds, m has variance 1/(2N − 1), so χ is
a standard normal; a rate the model misses makes the innovations keep a sign
and χ grow): an adjustable process-noise level (Bar-Shalom, Li & Kirubarajan
2001, ch. 11, manoeuvring targets). While χ ≥ ``slope_boost_std`` (3: by
chance 0.3 % of the time) the rate changes for a reason the slope has not
caught (a chemostat's slope goes from ≈ 0 to −2…−3 as its batch runs out),
and the slope's random-walk variance gets the same factor.

**Without doses, a falling rate is taken to accelerate as the biomass grows.**
In a closed batch ``X + Y·S`` is conserved from the start, so μ is a function
of the biomass there too, and a batch running out of substrate is μ falling
ever faster: with ``a = dμ/dt = s·μ`` and ``s = dμ/dℓ``,

    d ln|a|/dt = κ·μ + s,   κ = d ln|s|/dℓ = 1 + 2X/(K + S)   (Monod; κ = 1 for logistic growth)

so |a| grows (by 0.7–1.9 h⁻¹ in the 2 h before a simulated turbidostat's first
dose) where the Singer drift has it shrink by 1/τ, and the estimate lagged the
fall by 8–13 min. So without doses a falling drift (``a < 0`` at ``r > 0``)
changes at ``γ = κ·r + a/max(r, 0.05) − 1/τ`` (κ = ``falling_drift_growth``,
default 3; ``a/r`` is s; what of the fall is not exhaustion is still forgotten
over τ): over a step ``a' = a·e^{γΔt}``, ``r_a = (e^{γΔt} − 1)/γ``,
``l_a = (r_a − Δt)/γ`` (γ = −1/τ is the Singer drift above), the Jacobian
including γ's dependence on r and a; γ is held over a step, so a longer gap between
readings is predicted in steps of at most ``MAX_GROWTH_STEP_H`` (3 min). Why κ = 3:
Monod's κ is at least 3 once ``S ≤ (C − K)/2`` (C = X + S, in biomass units),
that is once μ has fallen by K/C of its rate at a small inoculum,
``μmax·C/(K + C)``: by 10 % in a medium holding 10·K of substrate, by less in
a richer one (lab media hold far more: E. coli's K for glucose is of the order
of mg/L, media g/L), by 10–20 % in the benchmark's media (C/K = 5–10); it
rises to ``1 + 2C/K`` as S runs out, and logistic slowing (κ = 1) is the gentle
limit. So 3 is about the least κ once a fall is visible; of the integers 1–4
tried on the benchmark, it is the only one meeting every target (README; no
value between them was tried). The term ``a/r`` makes the
growth stop as μ nears 0 (exhaustion ends in a rate of 0, not below). A rising
rate is not extrapolated (growth does not speed up without a cause the filter
sees, a dose), nor anything while doses tie the rate to the biomass (the slope
carries the fall there), for ``slope_memory_h`` after a step without a dosing
event (a diluted culture is not a closed batch: a turbidostat without dosing
events had the falls of its saw-tooth extrapolated to a rate of 0) or over the
time a restarted job was down. Its cost: a culture growing steadily at
0.7 h⁻¹ has its negative wander extrapolated too (figures: README).

An earlier remedy, freeing the drift's variance while the signed
``χ ≤ −falling_boost_std`` (by ``χ⁴``, capped at
``drift_boost_max·min(1, (r/falling_rate_ref)²)``), is kept as an option, off by
default (0): with the drift's growth it no longer shortens the lag, and it
lowered the real recording's window means (its one-sided freeing follows the
dips of a wandering rate faster than its rises).

**Physical constraints** are kept by estimate projection after each update
(Simon, *IET Control Theory Appl.* 4(8):1303, 2010): ``−max_slope ≤ s ≤ 0``
(growth never speeds up as the biomass rises, since the substrate falls).

**A dose** of ``Δ`` mL into a vial holding ``V`` mL (a dosing event with the
volume the job tracks) exchanges the fraction ``f = Δ/(V + Δ)``: biomass is
conserved while the volume grows, so ℓ drops by the known
``δ = ln((V + Δ)/V)``, and the rate follows the biomass:

    ℓ ← ℓ − δ,   r ← r − s·δ,
    P ← J P Jᵀ + diag((σ_V·δ)², (c·f)², 0, 0)

(J: the Jacobian of ``r ← r − s·δ``; ``σ_V`` = ``dose_volume_rel_std``, the
relative error of a pumped volume; ``c`` = ``dose_rate_jump_std``, the part of
the jump the slope does not explain). Waste removal changes no concentration.
A dose of unknown size (an event without volumes) only re-anchors the level
(extra SD ``dilution_log_std`` on ℓ for the next ``readings_after_dilution``
readings).

Each photodiode channel ``i`` observes ``yᵢ = exp(ℓ) + vᵢ`` with
``vᵢ ~ N(0, σᵢ²·exp(2ℓ) + Aᵢ)``: noise proportional to the signal (real Pioreactor
recordings show a roughly constant relative noise of 1–3 %) plus, for a channel
read near its noise floor, an absolute part Aᵢ (below; 0 otherwise). The observation is
non-linear in ℓ, hence the *extended* Kalman filter: it is linearised at the
prediction, ``H = [exp(ℓ⁻), 0, …]`` (Jazwinski, *Stochastic Processes and
Filtering Theory*, 1970, ch. 8). Channels are processed one after another
(sequential scalar updates; their noises are independent). Covariance updates
use the Joseph form for numerical symmetry.

**Readings near zero.** A photodiode's noise does not vanish with the signal:
blank media, a culture just inoculated, or an OD calibrated by subtracting the
blank read ``0 ± noise``. This is the two-component error model of analytical
measurements, ``Var(y) = A + B·μ²`` with μ the true signal, a constant part
that dominates near 0 and a proportional part above (Rocke & Lorenzato,
*Technometrics* 37(2):176, 1995). Under relative noise alone a reading of 0 or
less has no likelihood and had to be left out: the filter then kept the
positive half of a noise centred near the level, its level ran high (+27 % at
a noise SD equal to the level, +101 % at twice it), and as the share left out
changed that bias moved and read as growth (a culture growing at 0.3 h⁻¹ from
half its noise SD read 0.11 h⁻¹ for its third hour; a constant OD with the
real recording's noise up to +0.19 h⁻¹; ``test_growth_rate_near_zero.py``).
The warm-up gives each channel its floor (:func:`compute_normalization`): the
robust residual variance V of its normalised readings in linear space, at
their level 1, beyond ``max_rel_noise²`` (5 %: a culture's readings scatter by
1–3 % of themselves) is absolute, ``A = V − max_rel_noise²``, and the relative
variance is then at most ``max_rel_noise²``; a warm-up scattering by less has
no floor (A = 0), and its filter is exactly the one without it (the
benchmark's streams and the real recording: figures unchanged to the last
digit). With a floor a reading of 0 or less is an ordinary reading (its
innovation is in linear space, ``y − ŷ``, with variance ``ŷ²(P_ℓℓ + B) + A``),
so the noise is kept whole and the level is unbiased. The gain on ℓ,
``P_ℓℓ·ŷ/(ŷ²(P_ℓℓ + B) + A)``, falls to 0 as ŷ sinks below √A (no pull of
``1/ŷ`` as with relative noise). **Below the noise the rate is held.** Far
below the floor the readings cannot tell a level from 0, and the filter,
linearised in ℓ, drifts down: its gain is larger when its level is high (and
the innovations low) than when it is low, so ℓ sinks and the rate follows
(a constant OD at 0.25 / 0.1 / 0.05 of the noise SD read −0.07 / −0.20 /
−0.31 h⁻¹, and blank media at 0 −0.15 to −0.46 h⁻¹, for hours). So a channel
with a floor holds the rate, drift and slope while the mean of its readings
(running, then exponentially weighted over ``HOLD_MEMORY_READINGS``, 720: an
hour at 5 s) is below ``HOLD_BELOW_FLOOR·√A`` (0.35), from its first reading
until that mean rises above ``RELEASE_ABOVE_FLOOR·√A`` (0.6): its readings then
update the level only (a Schmidt–Kalman update with the rate, drift and slope
as consider states: their gains 0, their covariance kept right by the Joseph
form; Schmidt, *Advances in Control Systems* 3:293, 1966), and the estimate is
marked ``below_noise``. The mean of the readings decides, not the filter's
level, and with two thresholds: decided on the level (which follows the same
readings' noise) the hold let the rate be updated when the level was high and
the innovations low, and a culture near the threshold read a falling rate
(−0.26 h⁻¹ at the threshold); the exponentially weighted mean of an
exponential culture is its level over ``1 + μ·τ``, so the release lags by a
factor, not by an hour. With a floor on every channel the level is not taken
below ``LEVEL_BOUND_OF_FLOOR·√A`` (0.1; an estimate projection as for the
slope), where the rate is held, so that a culture inoculated after hours of
blank is followed at once instead of from e^ℓ ≈ 0. Thresholds tried (0.2 /
0.4, 0.35 / 0.6 and 0.5 / 0.8 of √A, memories 240 and 720 readings): the
adopted ones hold a constant OD at or below 0.25 of the noise SD within
0.02 h⁻¹ of 0 and let a culture growing out of the noise from half of it be
read at its rate; their cost is a band just above the hold threshold (a
constant OD at 0.4 of the noise SD: −0.11 h⁻¹ on average over 8 seeds,
where the rate is frozen at the moment the mean dipped below 0.35). Both
parts of the noise are adapted online (covariance
matching, below, split between A and B by an EM step:
:meth:`GrowthRateEKF._match_two_noises`), so the relative part is learned as
the culture grows out of the noise. A level taken from one reading (the first,
a re-anchoring) reads ``max(y, √A)``.

Robustness
----------
* **Outliers are down-weighted, not dropped** (Huber-type weighting of the
  innovation, as in Masreliez & Martin, *IEEE TAC* 22(3):361, 1977): with the
  standardised innovation ``z = e/√S`` above the threshold ``k``
  (``ekf_outlier_std_threshold``, default 5), the reading's noise variance is
  inflated by ``|z|/k``, which bounds its influence on the state.
* **A reading of 0 or less is flagged and not assimilated** on a channel without a noise floor (NaN
  and ±inf are left out): no culture reads it, and under noise relative to the signal it has no
  likelihood; linearised at a small prediction its pull on ℓ grows as 1/ŷ (a run of −0.3 took ℓ to
  −67,000 in five readings, then divided by zero). With a floor it is assimilated (*Readings near zero*).
* **Adaptive observation noise** (covariance matching; Mehra, *IEEE TAC*
  17(5):693, 1972): each channel's relative noise variance ``σᵢ²`` starts from
  the warm-up readings and follows an exponentially weighted average of
  ``e²/ŷ² − P_ℓℓ`` (innovations clipped at ``min(k, level_shift_std)`` standard
  deviations, so a step's first readings do not pass for noise; with a noise floor
  the sample is shared between the floor and the relative part), so the
  filter stays calibrated when noise grows with the signal — a fixed noise
  level learnt at the start makes ordinary readings look like outliers later.
* **When a dose happened**: a dosing event is published when its pump stops,
  so the dilution happened within ``dilution_lookback_s`` before it. The
  filter keeps a short history; an event rewinds it to the first reading of
  that window and processes the readings again, with the dose applied at the
  time its pump stopped (the state is predicted to that time, diluted, and
  predicted on). Applied earlier, at the window's start, the level would grow
  at the diluted culture's higher rate for up to a window before the dose; the
  readings after it then pull the rate down to pay that back (a chemostat read
  every 20 s on exact OD ran 1 % low, a closed-loop run replayed 2.5 % low).
  Readings inside the window (the pump may still have been running) are not
  assimilated — either guess, diluted or not, would bias the level — and are
  flagged as outliers only when they fit neither.
* **Level shifts** without a dosing event (a dose the job was not told of, a
  vial moved): ``level_shift_outliers`` (4) consecutive readings more than
  ``level_shift_std − 1`` (2) standard deviations off on one side, on average
  ``level_shift_std`` (3) off — by chance well under once in 10⁶ readings —
  are a step. The filter rewinds to the first of
  them and processes them again as after a dose of unknown size, so the step
  goes into the level, not into the growth rate.

**A long gap between readings** (more than ``MAX_READING_GAP_H``, 24 h: the
unit was off, the job paused for days) is not predicted as a culture growing
on: the model would take the level ``r·Δt`` up (at 1 h⁻¹ ``e^ℓ`` overflows a
float after about a month), a falling drift would be followed in ~175,000
steps of 3 min over a year, and the random-walk variances grow as ``Δt³``
(a rate SD of ~10⁴ h⁻¹ after a year, which only costs the updates their
precision). Over such a gap nothing the filter knows holds anyway (doses,
harvests or a new vial may have come), so it is bridged as a restarted job's
downtime is (below): one prediction step without the drift's growth and
without the rate tied to the biomass (the drift forgets itself, the rate
keeps its estimate), the process noise of ``MAX_READING_GAP_H`` only (a rate
SD of √(q_r·24 + q_a·24³/3) ≈ 1.4 h⁻¹, already wider than any culture's rate
range), and the level taken afresh from the next reading with a positive
value (so is a level beyond ``MAX_ABS_LOG_OD``). Gaps up to 24 h are
predicted as before, in at most 480 steps of 3 min while the drift grows; a
normal stream (readings every few seconds, pauses of minutes or hours) is
filtered exactly as without the bound.

A restarted job resumes the filter with :meth:`GrowthRateEKF.carry_over`:
rate, drift, slope, their covariance (grown by the process noise of the time
the job was down, at most ``MAX_READING_GAP_H``), the noise estimates, until when the last doses tie the
rate to the biomass and until when the last step without a dosing event keeps
a falling drift from growing; the level is taken afresh from the first reading
(doses may have happened meanwhile).

Normalisation and warm-up (:class:`GrowthRateCalculator`) follow the Pioreactor
software's documented behaviour: the first ``skip_first`` OD messages are
ignored, then ``samples_for_od_statistics`` readings are gathered (a dose
restarts the gathering); each channel's baseline is the median of its readings,
and its initial noise the robust (1.4826·MAD) residual SD of the log readings
after a robust (Theil–Sen) straight-line fit, floored at ``min_obs_rel_std``.

numpy is imported by the functions that compute, on first use: importing this
module (and starting the job) does not load it, so the job is ready before the
first reading pays for it.
"""

from __future__ import annotations

import math
from collections import deque
from typing import TYPE_CHECKING, Any, Mapping

from reactorkit.plugin import Record, record_field as field

if TYPE_CHECKING:  # annotations only: numpy is imported where the filter first computes
    import numpy as np

SECONDS_PER_HOUR = 3600.0
L, R, A, SL = range(4)  # state indices: ln nOD, rate, drift, slope dμ/dℓ
N_STATES = 4
REPORTED = ((1.0, 0, 0, 0), (0, 1.0, 0, 0), (0, 0, 1.0, 0))  # → [ℓ, μ, a] (rows)
MIN_RATE_FOR_SLOPE = 0.05  # h⁻¹: below it a drift says nothing of dμ/dℓ = (dμ/dt)/μ
MAX_GROWTH_STEP_H = 0.05  # longest prediction step while a falling drift grows (3 min; readings come every 5 s)
#: Hours without a reading beyond which the filter does not predict the culture through the gap but bridges it
#: (module docstring, *A long gap between readings*): at most MAX_READING_GAP_H / MAX_GROWTH_STEP_H (480)
#: prediction steps per reading, a level that cannot overflow, a rate variance that stops growing.
MAX_READING_GAP_H = 24.0
#: |ℓ| beyond which the level is taken afresh from the next reading (nOD = e^±700: no reading is that far from
#: its baseline; e^710 overflows a float).
MAX_ABS_LOG_OD = 700.0
#: A channel with a noise floor A holds the rate (its readings update the level only) from when the mean of its
#: readings over about ``HOLD_MEMORY_READINGS`` falls below ``HOLD_BELOW_FLOOR·√A`` until it rises above
#: ``RELEASE_ABOVE_FLOOR·√A``, and from its first reading until then (module docstring, *Readings near zero*).
HOLD_BELOW_FLOOR = 0.35
RELEASE_ABOVE_FLOOR = 0.6
HOLD_MEMORY_READINGS = 720.0
#: With a floor on every channel the level is not taken below this many √A (the smallest floor's; module docstring).
LEVEL_BOUND_OF_FLOOR = 0.1
HISTORY_READINGS = 24  # readings kept to rewind to when a dosing event arrives late
WASTE_EVENT = "remove_waste"
MAD_TO_SD = 1.4826  # consistency constant of the MAD for a normal distribution


class FilterSettings(Record, kw_only=False):
    """Tuning of :class:`GrowthRateEKF` (how each default was chosen: ``README.md`` of this plugin).

    Attributes:
        outlier_std_threshold: ``k``: standardised innovations above it are
            down-weighted (``[growth_rate_calculating.config]
            ekf_outlier_std_threshold``, default 5.0; must be > 2).
        log_od_process_std: √q_ℓ, random walk of ℓ not explained by growth (h^-½).
        rate_process_std: √q_r, random walk of the growth rate (h⁻¹·h^-½).
        drift_process_std: √q_a, random walk of the rate's drift (h⁻²·h^-½).
        drift_correlation_h: τ (h) of a Singer drift that forgets itself (default 2); 0: a random walk.
        slope_process_std, slope_rel_process_std, slope_drift_gain: q_s0 (h⁻¹·h^-½), q_s1 (h^-½) and k
            (h^-½) of the slope's random walk, SD per √h ``q_s0 + q_s1·|s| + k·|a|/max(|r|, 0.05)``.
        initial_rate: Prior growth rate (h⁻¹) when nothing better is known.
        initial_rate_std: Prior SD of the growth rate (h⁻¹).
        initial_drift_std: Prior SD of the drift (h⁻²).
        initial_slope_std: SD added to the slope's when doses start (h⁻¹ per unit ln OD).
        max_slope: Bound of |s| (h⁻¹ per unit ln OD).
        slope_memory_h: Hours after a known dose during which the rate follows the biomass.
        dose_rate_jump_std: SD of the part of a dose's rate jump that the slope does not
            explain, per unit exchanged fraction (h⁻¹): a dose exchanging a
            fraction f adds ``(dose_rate_jump_std·f)²`` to the rate's variance.
        dose_volume_rel_std: Relative SD of a known dilution's log drop (pump
            calibration and volume bookkeeping errors).
        min_obs_rel_std: Floor of a channel's relative noise SD (5e-3 = 0.5 %).
        noise_adaptation_readings: Memory (in readings) of the adaptive noise estimate.
        dilution_log_std: Extra SD of ℓ given to each reading after a dose of unknown size.
        readings_after_dilution: How many readings after a dose of unknown size get it (2).
        dilution_lookback_s: A dosing event is published when its pump stops; the
            dilution happened within this many seconds before the event.
        level_shift_outliers: This many consecutive readings beyond ``level_shift_std``
            standard deviations on one side are a step in the signal (0: never).
        level_shift_std: The mean surprise (standardised innovation) of such a run; each
            reading of it is at least ``level_shift_std − 1`` off.
        coupled_rate_process_std, coupled_drift_process_std: √q_r and √q_a while doses tie the
            rate to the biomass (h⁻¹·h^-½, h⁻²·h^-½).
        drift_boost_readings: N, memory (readings) of the mean standardised innovation that scales
            the drift's noise while doses tie the rate to the biomass (0: never scaled).
        drift_boost_max: Largest factor on that drift variance (100: 10× its SD).
        slope_boost_std: While that standardised mean innovation χ is at least this, the slope's
            random-walk variance gets the drift's factor too (0: never).
        falling_boost_std: Without doses, while the signed χ is at most minus this (readings keep
            falling below the prediction: the rate is overestimated), the drift's variance gets the
            factor χ⁴ too (default 0: never).
        falling_rate_ref: h⁻¹; that factor is capped at ``drift_boost_max·min(1, (r/falling_rate_ref)²)``
            (default 0.5, a typical μ: a culture slows by a fraction of its rate).
        falling_drift_growth: κ (dimensionless: ``d ln|s|/dℓ``, how fast the slope steepens as the biomass
            grows; Monod kinetics give ``1 + 2X/(K + S)``, logistic growth 1): without doses a falling drift
            changes at ``κ·r + a/max(r, 0.05) − 1/τ`` per h (default 3, Monod's least κ once a fall is
            visible: module docstring; 0: it only forgets itself). A finite number ≥ 0.
        max_rel_noise: The largest relative noise SD taken for a culture's readings (0.05 = 5 %; real
            Pioreactor recordings scatter by 1–3 %): what a warm-up scatters beyond it at its level is the
            instrument's noise floor, an absolute noise (module docstring, *Readings near zero*). > 0.
    """

    outlier_std_threshold: float = 5.0
    log_od_process_std: float = 1e-3
    rate_process_std: float = 0.01
    drift_process_std: float = 0.02
    drift_correlation_h: float = 2.0
    slope_process_std: float = 0.05
    slope_rel_process_std: float = 0.1
    slope_drift_gain: float = 5.0
    initial_rate: float = 0.0
    initial_rate_std: float = 0.3
    initial_drift_std: float = 0.01
    initial_slope_std: float = 0.1
    max_slope: float = 10.0
    slope_memory_h: float = 2.0
    dose_rate_jump_std: float = 0.02
    dose_volume_rel_std: float = 0.05
    min_obs_rel_std: float = 5e-3
    noise_adaptation_readings: float = 240.0
    dilution_log_std: float = 0.5
    readings_after_dilution: int = 2
    dilution_lookback_s: float = 30.0
    level_shift_outliers: int = 4
    level_shift_std: float = 3.0
    coupled_rate_process_std: float = 0.005
    coupled_drift_process_std: float = 0.01
    drift_boost_readings: float = 60.0
    drift_boost_max: float = 100.0
    slope_boost_std: float = 3.0
    falling_boost_std: float = 0.0
    falling_rate_ref: float = 0.5
    falling_drift_growth: float = 3.0
    max_rel_noise: float = 0.05

    def __post_init__(self) -> None:
        if not self.outlier_std_threshold > 2:
            raise ValueError(f"ekf_outlier_std_threshold must be > 2, got {self.outlier_std_threshold}")
        if not self.max_slope > 0:
            raise ValueError(f"max_slope must be > 0, got {self.max_slope}")
        if self.slope_memory_h < 0:
            raise ValueError(f"slope_memory_h must be ≥ 0, got {self.slope_memory_h}")
        if self.drift_correlation_h < 0:
            raise ValueError(f"drift_correlation_h must be ≥ 0, got {self.drift_correlation_h}")
        if self.min_obs_rel_std <= 0:
            raise ValueError(f"min_obs_rel_std must be positive, got {self.min_obs_rel_std}")
        if self.readings_after_dilution < 1:
            raise ValueError(f"readings_after_dilution must be ≥ 1, got {self.readings_after_dilution}")
        if self.drift_boost_readings != 0 and not self.drift_boost_readings >= 1:
            raise ValueError(f"drift_boost_readings must be 0 or ≥ 1, got {self.drift_boost_readings}")
        if self.falling_boost_std < 0:
            raise ValueError(f"falling_boost_std must be ≥ 0, got {self.falling_boost_std}")
        if not (self.falling_drift_growth >= 0 and math.isfinite(self.falling_drift_growth)):
            raise ValueError(f"falling_drift_growth must be a finite number ≥ 0, got {self.falling_drift_growth}")
        if not self.falling_rate_ref > 0:
            raise ValueError(f"falling_rate_ref must be > 0, got {self.falling_rate_ref}")
        if self.slope_boost_std < 0:
            raise ValueError(f"slope_boost_std must be ≥ 0, got {self.slope_boost_std}")
        if not self.drift_boost_max >= 1:
            raise ValueError(f"drift_boost_max must be ≥ 1, got {self.drift_boost_max}")
        if self.dilution_lookback_s < 0:
            raise ValueError(f"dilution_lookback_s must be ≥ 0, got {self.dilution_lookback_s}")
        if not (self.max_rel_noise > 0 and math.isfinite(self.max_rel_noise)):
            raise ValueError(f"max_rel_noise must be a finite number > 0, got {self.max_rel_noise}")


def _drift_integrals(gamma: float, dt: float) -> tuple[float, float, float, float, float]:
    """For a drift ``a(u) = a·e^{γu}`` over ``dt`` hours: ``(e^{γ·dt}, r_a, l_a, ∂r_a/∂γ, ∂l_a/∂γ)`` with
    ``r_a = ∫₀^dt e^{γu} du`` (what the drift adds to the rate, per unit a) and ``l_a = ∫₀^dt r_a(u) du``
    (what it adds to ℓ). γ = −1/τ is the Singer drift, γ = 0 a random walk (series near 0). With γ = s
    the first, second and fourth are the rate's own growth over the step, its integral and that
    integral's derivative in s."""
    z = gamma * dt
    keep = math.exp(z)
    if abs(z) < 1e-3:
        r_a = dt * (1.0 + z / 2.0 + z * z / 6.0)
        l_a = dt * dt * (0.5 + z / 6.0 + z * z / 24.0)
        dr_a = dt * dt * (0.5 + z / 3.0 + z * z / 8.0)
        dl_a = dt**3 * (1.0 / 6.0 + z / 12.0 + z * z / 40.0)
    else:
        r_a = math.expm1(z) / gamma
        l_a = (r_a - dt) / gamma
        dr_a = (dt * keep - r_a) / gamma
        dl_a = (dr_a - l_a) / gamma
    return keep, r_a, l_a, dr_a, dl_a


def dilution_of(volume_change_ml: float, vial_volume_ml: float) -> tuple[float, float]:
    """``(δ, f)`` of adding ``volume_change_ml`` to a vial holding ``vial_volume_ml`` (both mL, > 0).

    ``f = Δ/(V + Δ)`` is the exchanged fraction and ``δ = ln((V + Δ)/V) = −ln(1 − f)``
    the drop of ln OD: biomass is conserved while the volume grows (mass balance).

    Raises:
        ValueError: a volume that is not positive and finite.
    """
    if not (math.isfinite(volume_change_ml) and math.isfinite(vial_volume_ml)) or vial_volume_ml <= 0 \
            or volume_change_ml <= 0:
        raise ValueError(f"need a positive dose and vial volume, got {volume_change_ml} mL into {vial_volume_ml} mL")
    return math.log((vial_volume_ml + volume_change_ml) / vial_volume_ml), volume_change_ml / (vial_volume_ml + volume_change_ml)


class Dose(Record, kw_only=False):
    """A dose the filter knows of.

    Attributes:
        t: Epoch s of its dosing event (published when the pump stopped).
        window_start: Epoch s from which the culture may already be diluted.
        log_drop: δ (see :func:`dilution_of`); None when the size is unknown.
        fraction: Exchanged fraction f (0 when unknown).
        key: Identity within the filter.
    """

    t: float
    window_start: float
    log_drop: float | None
    fraction: float
    key: int


class Estimate(Record, frozen=False, kw_only=False):
    """One filter output, for the OD reading at ``timestamp``.

    Attributes:
        timestamp: Epoch seconds of the OD reading.
        growth_rate: h⁻¹. growth_rate_std: its posterior SD (h⁻¹).
        od_filtered: Filtered normalised OD, ``exp(ℓ)`` (always > 0).
        log_od_std: Posterior SD of ℓ.
        state: ``[ℓ, r, a]``; covariance: its 3×3 block (the shape of ``kalman_filter_outputs``).
        dose_response: −s, the jump of the rate per unit log drop of a dose (h⁻¹; 0 before the first dose).
        outliers: Channels whose reading was down-weighted, or left out as 0 or less (not assimilated).
        after_dilution: The reading was taken around a dose (its level was uncertain).
        level_shift: A level shift was detected (and re-anchored) at this reading.
        observations: The normalised readings used, by channel.
        below_noise: Every channel has a noise floor and holds the rate (the mean of its readings went below
            ``HOLD_BELOW_FLOOR·√A`` and has not risen above ``RELEASE_ABOVE_FLOOR·√A`` since): the readings
            updated the level only and the growth rate is the held one, not observed (module docstring,
            *Readings near zero*).
    """

    timestamp: float
    growth_rate: float
    growth_rate_std: float
    od_filtered: float
    log_od_std: float
    state: list[float]
    covariance: list[list[float]]
    dose_response: float = 0.0
    outliers: tuple[str, ...] = ()
    after_dilution: bool = False
    level_shift: bool = False
    observations: dict[str, float] = field(default_factory=dict)
    below_noise: bool = False


class GrowthRateEKF:
    """The filter itself (see the module docstring for the model).

    Args:
        settings: :class:`FilterSettings`.
        t0: Epoch seconds of the initial state.
        log_od: Initial ℓ; log_od_var: its variance.
        obs_rel_var: Relative noise variance σᵢ² per channel, e.g. ``{"2": 1e-4}``.
        rate, rate_var: Prior growth rate (h⁻¹) and its variance (default from settings).
        prior: A :meth:`carry_over` of an earlier filter: rate, drift, dose response,
            their covariance and the noise estimates (overrides ``rate``/``rate_var``).
        obs_abs_var: Absolute noise variance Aᵢ per channel (nOD², the noise floor; module docstring,
            *Readings near zero*); a channel absent or at 0 has relative noise only.

    Raises:
        ValueError: no channel, or a non-positive variance (a negative or non-finite absolute one).
    """

    def __init__(
        self,
        settings: FilterSettings,
        t0: float,
        log_od: float,
        log_od_var: float,
        obs_rel_var: Mapping[str, float],
        rate: float | None = None,
        rate_var: float | None = None,
        prior: Mapping[str, Any] | None = None,
        obs_abs_var: Mapping[str, float] | None = None,
    ) -> None:
        import numpy as np  # on first use: the job is ready before numpy is imported
        if not obs_rel_var:
            raise ValueError("the filter needs at least one channel")
        if log_od_var <= 0 or any(v <= 0 for v in obs_rel_var.values()):
            raise ValueError("variances must be positive")
        if any(not (float(v) >= 0 and math.isfinite(float(v))) for v in (obs_abs_var or {}).values()):
            raise ValueError("absolute noise variances must be finite and ≥ 0")
        s = self.s = settings
        self.t = float(t0)
        self.x = np.array([float(log_od), s.initial_rate if rate is None else float(rate), 0.0, 0.0])
        self.P = np.diag([
            float(log_od_var),
            s.initial_rate_std**2 if rate_var is None else float(rate_var),
            s.initial_drift_std**2,
            s.initial_slope_std**2,
        ])
        floor = s.min_obs_rel_std**2
        self.obs_rel_var = {str(k): max(float(v), floor) for k, v in obs_rel_var.items()}
        self.obs_abs_var = {k: float((obs_abs_var or {}).get(k, 0.0)) for k in self.obs_rel_var}
        self._mean_reading: dict[str, tuple[float, float]] = {}  # channel → (readings counted, their mean, nOD)
        self._held: dict[str, bool] = {}  # channel with a floor → whether it holds the rate
        self._coupled_until = -math.inf  # epoch s until which doses hold the culture where μ follows its biomass
        self._surprise = 0.0  # exponentially weighted mean of the standardised innovation
        self._drift_growth = True  # False while bridging a gap (a restarted job's downtime, a day without readings)
        self._stepped_until = -math.inf  # epoch s until which a dose of unknown size (a step) rules out a batch
        self._reanchor = False  # after a long gap: the level is taken from the next reading
        if prior:
            self._use_prior(prior)
        self._dilution_readings_left = 0
        self._drift_boost = 1.0  # factor on the drift's variance while coupled
        self._slope_boost = 1.0  # factor on the slope's variance while coupled
        self._outlier_run: dict[str, int] = {}  # signed length of the current run of one-signed surprises
        self._run_start: dict[str, float] = {}  # epoch s of the run's first reading
        self._run_sum: dict[str, float] = {}  # sum of |z| over the run
        self._replaying = False
        self._doses: list[Dose] = []
        self._applied: frozenset[int] = frozenset()
        self._next_key = 0
        self._history: deque[tuple[float, dict[str, float], tuple[Any, ...]]] = deque(maxlen=HISTORY_READINGS)

    # ------------------------------------------------------------- model
    def _process_noise(self, dt: float) -> np.ndarray:
        import numpy as np  # on first use: the job is ready before numpy is imported
        s = self.s
        q_l, q_r, q_a = s.log_od_process_std**2, s.rate_process_std**2, s.drift_process_std**2
        if self.t < self._coupled_until:
            q_r, q_a = s.coupled_rate_process_std**2, s.coupled_drift_process_std**2 * self._drift_boost
        elif s.falling_boost_std > 0 and s.drift_boost_readings > 0 and \
                self._surprise * math.sqrt(2.0 * s.drift_boost_readings - 1.0) <= -s.falling_boost_std:
            # without doses only a falling rate frees the drift, in proportion to the rate (module docstring)
            cap = s.drift_boost_max * min(1.0, (max(float(self.x[R]), 0.0) / s.falling_rate_ref) ** 2)
            q_a *= max(min(self._drift_boost, cap), 1.0)
        dt2, dt3, dt4, dt5 = dt**2, dt**3, dt**4, dt**5
        Q = np.zeros((N_STATES, N_STATES))
        Q[:3, :3] = [
            [q_l * dt + q_r * dt3 / 3.0 + q_a * dt5 / 20.0, q_r * dt2 / 2.0 + q_a * dt4 / 8.0, q_a * dt3 / 6.0],
            [q_r * dt2 / 2.0 + q_a * dt4 / 8.0, q_r * dt + q_a * dt3 / 3.0, q_a * dt2 / 2.0],
            [q_a * dt3 / 6.0, q_a * dt2 / 2.0, q_a * dt],
        ]
        q_s = s.slope_process_std + s.slope_rel_process_std * abs(self.x[SL]) \
            + s.slope_drift_gain * abs(self.x[A]) / max(abs(self.x[R]), MIN_RATE_FOR_SLOPE)
        Q[SL, SL] = q_s**2 * dt * self._slope_boost if self.t < self._coupled_until else 0.0
        return Q

    def _transition(self, dt: float) -> tuple[np.ndarray, np.ndarray]:
        """The state after ``dt`` hours and the Jacobian of that map (module docstring)."""
        import numpy as np  # on first use: the job is ready before numpy is imported
        x = self.x
        coupled = self.t < self._coupled_until
        s, r = (float(x[SL]), x[R]) if coupled else (0.0, x[R])
        grow, phi, _, dphi, _ = _drift_integrals(s, dt)  # e^{sΔt}, ∫₀^Δt e^{su} du and its derivative in s
        tau = self.s.drift_correlation_h
        gamma = -1.0 / tau if tau > 0 else 0.0  # the drift's own rate of change, da/dt = γ·a
        g_r = g_a = 0.0  # ∂γ/∂r, ∂γ/∂a
        if self._drift_grows():
            # a batch running out of substrate: |a| grows as κ·μ + s with s = a/μ (module docstring)
            rate = max(float(x[R]), MIN_RATE_FOR_SLOPE)
            gamma += self.s.falling_drift_growth * float(x[R]) + float(x[A]) / rate
            g_r = self.s.falling_drift_growth - (float(x[A]) / rate**2 if x[R] > MIN_RATE_FOR_SLOPE else 0.0)
            g_a = 1.0 / rate
        keep, r_a, l_a, dr_a, dl_a = _drift_integrals(gamma, dt)
        new = x.copy()
        new[L] = x[L] + r * phi + x[A] * l_a
        new[R] = r * grow + x[A] * r_a
        new[A] = x[A] * keep
        F = np.eye(N_STATES)
        F[L, R], F[L, A], F[L, SL] = phi + x[A] * dl_a * g_r, l_a + x[A] * dl_a * g_a, r * dphi if coupled else 0.0
        F[R, R], F[R, A], F[R, SL] = grow + x[A] * dr_a * g_r, r_a + x[A] * dr_a * g_a, r * dt * grow if coupled else 0.0
        F[A, A] = keep + x[A] * dt * keep * g_a
        F[A, R] = x[A] * dt * keep * g_r
        return new, F

    def _drift_grows(self) -> bool:
        """Whether the next step takes a falling drift to accelerate (module docstring): without doses,
        ``a < 0`` at ``r > 0``, not over a restart's gap nor within ``slope_memory_h`` after a step."""
        return (self.s.falling_drift_growth > 0 and self.x[A] < 0 and self.x[R] > 0 and self._drift_growth
                and self.t >= self._coupled_until and self.t >= self._stepped_until)

    def predict(self, t: float) -> None:
        """Advance the state to epoch second ``t`` (no-op if ``t`` is not later).

        While the drift grows, the prediction goes in steps of at most ``MAX_GROWTH_STEP_H``: γ is held
        over a step, and held over hours (a pause in the readings) ``e^{γΔt}`` would take the rate far
        below 0 (and overflow), where the stepped model ends its fall at a rate of 0.

        A gap of more than ``MAX_READING_GAP_H`` is bridged in one step instead (:meth:`_bridge`; module
        docstring, *A long gap between readings*): the level is then taken afresh from the next reading."""
        t = float(t)
        if t - self.t > MAX_READING_GAP_H * SECONDS_PER_HOUR:
            level = self.x[L]
            self._bridge((t - self.t) / SECONDS_PER_HOUR)
            self.x[L] = level  # kept finite until the next reading gives the level
            self.P[L, :] = self.P[:, L] = 0.0
            self.P[L, L] = max(self.obs_rel_var.values())
            self._reanchor = True
            self.t = t
            return
        while t > self.t:
            end = min(t, self.t + MAX_GROWTH_STEP_H * SECONDS_PER_HOUR) if self._drift_grows() else t
            dt = (end - self.t) / SECONDS_PER_HOUR
            new, F = self._transition(dt)
            self.x = new
            self.P = F @ self.P @ F.T + self._process_noise(dt)
            self.t = end

    def _bridge(self, gap_h: float) -> None:
        """The state after a gap of ``gap_h`` hours the filter knows nothing of (a restarted job's downtime, or
        more than ``MAX_READING_GAP_H`` without a reading): one step without the drift's growth nor the rate tied
        to the biomass (doses may have come), its process noise that of at most ``MAX_READING_GAP_H`` hours. The
        level it predicts is the caller's to replace (the next reading gives it). Finite for any finite gap."""
        coupled_until, self._coupled_until = self._coupled_until, -math.inf
        self._drift_growth = False  # hours of a drift growing with the rate would be an extrapolation
        try:
            new, F = self._transition(gap_h)
            Q = self._process_noise(min(gap_h, MAX_READING_GAP_H))
        finally:
            self._drift_growth = True
            self._coupled_until = coupled_until
        self.x, self.P = new, F @ self.P @ F.T + Q

    def _apply_dose(self, dose: Dose) -> None:
        """The dose's effect on the state: ℓ −= δ, r −= s·δ (variances as in the module docstring)."""
        import numpy as np  # on first use: the job is ready before numpy is imported
        s = self.s
        if dose.log_drop is None:
            self.P[0, 0] += s.dilution_log_std**2
            self._dilution_readings_left = s.readings_after_dilution
            self._stepped_until = max(self._stepped_until, dose.t + s.slope_memory_h * SECONDS_PER_HOUR)
        else:
            f, drop = dose.fraction, dose.log_drop
            if self.t >= self._coupled_until:
                self._start_coupling()
            self._coupled_until = max(self._coupled_until, dose.t + s.slope_memory_h * SECONDS_PER_HOUR)
            F = np.eye(N_STATES)
            F[R, SL] = -drop
            self.x = F @ self.x
            self.x[L] -= drop
            self.P = F @ self.P @ F.T
            self.P[L, L] += (s.dose_volume_rel_std * drop) ** 2
            self.P[R, R] += (s.dose_rate_jump_std * f) ** 2
        self._applied = self._applied | {dose.key}

    def _start_coupling(self) -> None:
        """Doses begin (again): the slope starts from what the drift says of it, ``s = a/μ`` (between doses
        ``dμ/dt = s·μ``), within ``[−max_slope, 0]``; the drift keeps the rest, ``a − s·μ``. Its variance is
        the drift's, divided by μ², plus ``initial_slope_std²`` (linear map of the covariance)."""
        import numpy as np  # on first use: the job is ready before numpy is imported
        rate = max(abs(float(self.x[R])), MIN_RATE_FOR_SLOPE)
        slope = float(self.x[A]) / rate
        T = np.eye(N_STATES)
        T[SL, :] = 0.0
        if -self.s.max_slope < slope < 0:
            T[SL, A] = 1.0 / rate
            T[A, A] = 0.0
            self.x = T @ self.x
        else:
            self.x[SL] = min(max(slope, -self.s.max_slope), 0.0)
            self.x[A] -= self.x[SL] * rate
        self.P = T @ self.P @ T.T
        self.P[SL, SL] += self.s.initial_slope_std**2

    # ---------------------------------------------------------- history
    def _snapshot(self) -> tuple[Any, ...]:
        return (self.t, self.x.copy(), self.P.copy(), dict(self.obs_rel_var), dict(self._outlier_run),
                dict(self._run_start), dict(self._run_sum), self._dilution_readings_left, self._applied,
                self._coupled_until, self._surprise, self._drift_boost, self._slope_boost, self._stepped_until,
                self._reanchor, dict(self.obs_abs_var), dict(self._mean_reading), dict(self._held))

    def _restore(self, snapshot: tuple[Any, ...]) -> None:
        (self.t, x, P, obs, runs, starts, sums, self._dilution_readings_left, self._applied,
         self._coupled_until, self._surprise, self._drift_boost, self._slope_boost, self._stepped_until,
         self._reanchor, obs_abs, means, held) = snapshot
        self.x, self.P, self.obs_rel_var, self._outlier_run = x.copy(), P.copy(), dict(obs), dict(runs)
        self.obs_abs_var, self._mean_reading, self._held = dict(obs_abs), dict(means), dict(held)
        self._run_start, self._run_sum = dict(starts), dict(sums)

    def mark_dilution(self, t: float | None = None, volume_change_ml: float | None = None,
                      vial_volume_ml: float | None = None) -> list[Estimate]:
        """A dose happened: its dosing event at epoch second ``t`` (None: now).

        With ``volume_change_ml`` added to ``vial_volume_ml`` (mL) the level drops by the
        known δ and the rate may jump (see the module docstring); without them the level
        is re-anchored by the readings that follow. Readings already processed from
        ``t − dilution_lookback_s`` on are processed again with the dose in place (the
        filter is rewound); their new estimates are returned (empty when nothing was replayed).
        """
        log_drop, fraction = None, 0.0
        if volume_change_ml is not None and vial_volume_ml is not None and volume_change_ml > 0:
            log_drop, fraction = dilution_of(float(volume_change_ml), float(vial_volume_ml))
        when = self.t if t is None else float(t)
        window_start = when - (self.s.dilution_lookback_s if t is not None else 0.0)
        dose = Dose(when, window_start, log_drop, fraction, self._next_key)
        self._next_key += 1
        self._doses.append(dose)
        self._doses.sort(key=lambda d: d.window_start)
        replay_from = next((i for i, (rt, _, _) in enumerate(self._history) if rt > window_start), None)
        if replay_from is None:
            if log_drop is None:
                self._apply_dose(dose)
            # a known dose is applied by the next reading, at the time its pump stopped
            return []
        entries = list(self._history)[replay_from:]
        self._restore(entries[0][2])
        for _ in range(len(entries)):
            self._history.pop()
        return [self.update(rt, observations) for rt, observations, _ in entries]

    def _prune_doses(self) -> None:
        if self._history:
            oldest = self._history[0][0]
            self._doses = [d for d in self._doses if d.t >= oldest - self.s.dilution_lookback_s or d.key not in self._applied]

    # ------------------------------------------------------------ update
    def _scalar_update(self, y: float, y_hat: float, r_var: float, level_only: bool = False) -> None:
        """One channel's EKF update of ``y`` predicted as ``y_hat = exp(ℓ + offset)``, noise variance ``r_var``.
        ``level_only``: the rate, drift and slope are not updated (their gains 0: a Schmidt–Kalman update with
        them as consider states, Schmidt 1966; the Joseph form keeps the covariance right for any gain)."""
        import numpy as np  # on first use: the job is ready before numpy is imported
        H = np.zeros(N_STATES)
        H[L] = y_hat
        PHt = self.P @ H
        S = float(H @ PHt) + r_var
        K = PHt / S
        if level_only:
            K[L + 1:] = 0.0
        self.x = self.x + K * (y - y_hat)
        I_KH = np.eye(N_STATES) - np.outer(K, H)
        self.P = I_KH @ self.P @ I_KH.T + np.outer(K, K) * r_var

    def _project(self) -> None:
        """Estimate projection onto the physical constraints (Simon, *IET Control Theory Appl.* 4(8):1303, 2010):
        growth slows as biomass rises (−max_slope ≤ s ≤ 0); with a noise floor on every channel, the level is at
        least ``LEVEL_BOUND_OF_FLOOR·√A`` (the smallest floor)."""
        self.x[SL] = min(max(self.x[SL], -self.s.max_slope), 0.0)
        floors = [self.obs_abs_var.get(c, 0.0) for c in self.obs_rel_var]
        if all(a > 0 for a in floors):  # a level this far below the noise cannot be told from 0 (module docstring)
            self.x[L] = max(float(self.x[L]), math.log(LEVEL_BOUND_OF_FLOOR * math.sqrt(min(floors))))

    def update(self, t: float, observations: Mapping[str, float]) -> Estimate:
        """Predict to ``t`` (epoch s) and assimilate normalised readings ``{channel: nOD}``.

        Channels without a noise estimate are ignored. Returns the posterior
        :class:`Estimate`.
        """
        t = float(t)
        self._history.append((t, dict(observations), self._snapshot()))
        for dose in self._doses:
            if dose.key in self._applied or dose.window_start >= t:
                continue
            if dose.log_drop is None:  # a dose of unknown size re-anchors the level from its window on
                self._apply_dose(dose)
            elif dose.t <= t:  # its pump stopped by this reading: the culture grew undiluted until then
                self.predict(dose.t)
                self._apply_dose(dose)
        self.predict(t)
        if self._reanchor or not abs(float(self.x[L])) <= MAX_ABS_LOG_OD:
            self._reanchor_level(observations)
        # doses that may or may not have happened yet at this reading (pump still running): known doses
        # are applied when their pump stopped, one of unknown size from the start of its window
        pending = [d for d in self._doses if d.key in self._applied and t <= d.t and d.log_drop is None]
        ambiguous = sum(d.log_drop for d in self._doses
                        if d.key not in self._applied and d.window_start < t and d.log_drop is not None)
        after_dilution = self._dilution_readings_left > 0 or bool(pending)
        if after_dilution:
            self.P[0, 0] += self.s.dilution_log_std**2
            if not any(d.log_drop is None for d in pending):
                self._dilution_readings_left -= 1
        k = self.s.outlier_std_threshold
        outliers: list[str] = []
        level_shift = False
        step_from: float | None = None
        used: dict[str, float] = {}
        for channel, y in observations.items():
            channel = str(channel)
            if channel not in self.obs_rel_var or y is None or not math.isfinite(y):
                continue
            y = float(y)
            abs_var = self.obs_abs_var.get(channel, 0.0)
            if y <= 0 and abs_var <= 0:
                # no culture reads 0 or less, and under noise relative to the signal such a reading has no
                # likelihood: linearised at a small prediction its pull on ℓ grows as 1/ŷ (a run of −0.3 took ℓ
                # to −67,000 in five readings, then divided by zero). Not assimilated; flagged. With a noise
                # floor (abs_var > 0) it is an ordinary reading of a level near 0 (*Readings near zero*).
                outliers.append(channel)
                continue
            used[channel] = y
            rel_var = self.obs_rel_var[channel]
            prior_l_var = float(self.P[0, 0])
            y_hat = math.exp(self.x[0])
            S = y_hat * y_hat * (prior_l_var + rel_var) + abs_var
            z = (y - y_hat) / math.sqrt(S)
            if ambiguous > 0:
                # taken while the pump may still have run: diluted already, or not yet? Such a reading
                # is not assimilated (either guess would bias the level); it is flagged only when it
                # fits neither hypothesis.
                y_diluted = math.exp(self.x[L] - ambiguous)
                z_diluted = (y - y_diluted) / math.sqrt(y_diluted * y_diluted * (prior_l_var + rel_var) + abs_var)
                if min(abs(z), abs(z_diluted)) > k:
                    outliers.append(channel)
                continue
            r_var = rel_var * y_hat * y_hat + abs_var
            weight = 1.0
            run = self._outlier_run.get(channel, 0)
            if abs(z) > self.s.level_shift_std - 1.0 and not after_dilution:
                # a run of one-signed surprises: isolated ones are outliers, a sustained run is a step
                same = (run > 0) == (z > 0) and run != 0
                run = run + (1 if z > 0 else -1) if same else (1 if z > 0 else -1)
                if not same:
                    self._run_start[channel], self._run_sum[channel] = t, 0.0
                self._run_sum[channel] = self._run_sum.get(channel, 0.0) + abs(z)
                if self.s.level_shift_outliers and abs(run) >= self.s.level_shift_outliers \
                        and self._run_sum[channel] >= self.s.level_shift_std * abs(run):
                    step_from = self._run_start.get(channel, t) if step_from is None else min(step_from,
                                                                                           self._run_start.get(channel, t))
            else:
                run = 0
            self._outlier_run[channel] = run
            if abs(z) > k and not after_dilution:
                outliers.append(channel)
                weight = k / abs(z)
            if self.s.drift_boost_readings > 0 and not after_dilution and abs(z) <= k:
                beta = 1.0 / self.s.drift_boost_readings
                self._surprise = (1.0 - beta) * self._surprise + beta * z
                chi = abs(self._surprise) * math.sqrt(2.0 * self.s.drift_boost_readings - 1.0)
                self._drift_boost = min(max(chi**4, 1.0), self.s.drift_boost_max)
                slope_boost = self.s.slope_boost_std > 0 and chi >= self.s.slope_boost_std
                self._slope_boost = self._drift_boost if slope_boost else 1.0
            self._scalar_update(y, y_hat, r_var / weight, level_only=abs_var > 0 and self._holds(channel, y, abs_var))
            self._project()
            if not after_dilution and not level_shift:
                # covariance matching on the (clipped) relative innovation
                clip = min(k, self.s.level_shift_std) ** 2  # a step's first surprises must not teach the filter noise
                beta = 1.0 / self.s.noise_adaptation_readings
                if abs_var <= 0:
                    sample = max(min(z * z, clip) * (prior_l_var + rel_var) - prior_l_var, 0.0)
                    self.obs_rel_var[channel] = max((1.0 - beta) * rel_var + beta * sample, self.s.min_obs_rel_std**2)
                else:
                    self._match_two_noises(channel, max(min(z * z, clip) * S - y_hat * y_hat * prior_l_var, 0.0),
                                           y_hat, beta)
        self._prune_doses()
        if step_from is not None and not self._replaying:
            return self._replay_after_step(step_from)
        below_noise = all(self._held.get(c, False) for c in self.obs_rel_var)
        return self.estimate(outliers=tuple(outliers), after_dilution=after_dilution or ambiguous > 0,
                             level_shift=level_shift, observations=used, below_noise=below_noise)

    def _holds(self, channel: str, y: float, abs_var: float) -> bool:
        """Whether ``channel`` (with a noise floor ``abs_var``) holds the rate at this reading ``y``: the mean of
        its readings (a running mean, then an exponentially weighted one over ``HOLD_MEMORY_READINGS``) went
        below ``HOLD_BELOW_FLOOR·√A`` and has not risen above ``RELEASE_ABOVE_FLOOR·√A`` since (held from the
        first reading). The mean is of the readings, not of the filter's level, and the two thresholds apart: a
        hold decided on the filter's level would follow its errors, updating the rate when the level is
        high and the innovations low, and a culture near the threshold would read a falling rate."""
        count, mean = self._mean_reading.get(channel, (0.0, 0.0))
        count = min(count + 1.0, HOLD_MEMORY_READINGS)
        mean += (y - mean) / count
        self._mean_reading[channel] = (count, mean)
        held = self._held.get(channel, True)
        if held and mean > RELEASE_ABOVE_FLOOR * math.sqrt(abs_var):
            held = False
        elif not held and mean < HOLD_BELOW_FLOOR * math.sqrt(abs_var):
            held = True
        self._held[channel] = held
        return held

    def _match_two_noises(self, channel: str, sample: float, y_hat: float, beta: float) -> None:
        """Covariance matching of a channel with a noise floor: the reading's noise variance ``V = A + B·ŷ²``
        (A absolute, B relative) has the sample ``v²`` (the clipped squared innovation less the prediction's
        share ``ŷ²·P_ℓℓ``), and each part moves by the EM step for two independent Gaussian variance components
        seen through their sum (Dempster, Laird & Rubin, *JRSS B* 39(1):1, 1977; Searle, Casella & McCulloch,
        *Variance Components*, Wiley 1992, §8.3): ``E[v₁² | v] = A + (A/V)²·(v² − V)``, averaged with weight
        β = 1/``noise_adaptation_readings``. Without a floor (A = 0) this is the relative rule of
        :meth:`update`; each part's share of the excess follows its share of V, so the floor is learned where
        the level is near 0 and the relative noise where the culture is far above it. B stays at least
        ``min_obs_rel_std²``."""
        a, b = self.obs_abs_var[channel], self.obs_rel_var[channel]
        y2 = y_hat * y_hat
        total = a + b * y2
        excess = sample - total
        self.obs_abs_var[channel] = max(a + beta * (a / total) ** 2 * excess, 0.0)
        self.obs_rel_var[channel] = max(b + beta * (b * y2 / total) ** 2 * excess / y2, self.s.min_obs_rel_std**2)

    def _reanchor_level(self, observations: Mapping[str, float]) -> None:
        """Take the level from ``observations`` (:meth:`level_of`), as the filter's first reading does; without
        a reading that gives one the level waits for the next one."""
        level = self.level_of(observations)
        if level is None:
            self._reanchor = True
            return
        self.x[L] = level[0]
        self.P[L, :] = self.P[:, L] = 0.0
        self.P[L, L] = level[1]
        self._reanchor = False

    def level_of(self, observations: Mapping[str, float], base_variance: float | None = None) -> tuple[float, float] | None:
        """``(ℓ, variance)`` of a level taken from one reading ``{channel: nOD}`` alone (the filter's first
        reading, a re-anchoring), or None when no finite reading of a known channel gives one.

        Without a noise floor: the mean log of the positive readings, variance ``base_variance`` (default: the
        largest relative noise variance; as before the floor existed). A channel with a floor (``A > 0``) reads near 0 as well, so
        its value is ``ln(max(y, √A))`` (a reading at or below the floor says only that the level is there or
        below), and the variance is at least its delta-method variance ``B + A/max(y, √A)²`` (the variance
        of ``ln y`` to first order: Casella & Berger, *Statistical Inference*, 2nd ed., §5.5.4)."""
        logs: list[float] = []
        variance = max(self.obs_rel_var.values()) if base_variance is None else float(base_variance)
        for channel, y in observations.items():
            channel = str(channel)
            if channel not in self.obs_rel_var or y is None or not math.isfinite(y):
                continue
            floor = math.sqrt(self.obs_abs_var.get(channel, 0.0))
            if floor > 0:
                value = max(float(y), floor)
                variance = max(variance, self.obs_rel_var[channel] + (floor / value) ** 2)
                logs.append(math.log(value))
            elif y > 0:
                logs.append(math.log(float(y)))
        if not logs:
            return None
        return sum(logs) / len(logs), variance

    def _replay_after_step(self, first_t: float) -> Estimate:
        """A step in the signal without a dosing event began at the reading of ``first_t``: process the
        readings since then again as after a dose of unknown size (the level re-anchors, the rate stays)."""
        dose = Dose(first_t - 1e-6, first_t - 1e-6, None, 0.0, self._next_key)
        self._next_key += 1
        self._doses.append(dose)
        self._doses.sort(key=lambda d: d.window_start)
        start = next(i for i, (rt, _, _) in enumerate(self._history) if rt >= first_t)
        entries = list(self._history)[start:]
        self._restore(entries[0][2])
        for _ in range(len(entries)):
            self._history.pop()
        self._replaying = True
        try:
            replayed = [self.update(rt, observations) for rt, observations, _ in entries]
        finally:
            self._replaying = False
        replayed[-1].level_shift = True
        return replayed[-1]

    def estimate(self, **extra: Any) -> Estimate:
        """The current posterior as an :class:`Estimate` (growth rate = r; dose response = −s)."""
        import numpy as np  # on first use: the job is ready before numpy is imported
        reported = np.array(REPORTED)
        state = reported @ self.x
        covariance = reported @ self.P @ reported.T
        return Estimate(
            timestamp=self.t,
            growth_rate=float(state[1]),
            growth_rate_std=math.sqrt(max(float(covariance[1, 1]), 0.0)),
            od_filtered=math.exp(min(max(float(self.x[L]), -MAX_ABS_LOG_OD), MAX_ABS_LOG_OD)),
            log_od_std=math.sqrt(max(float(self.P[L, L]), 0.0)),
            state=[float(v) for v in state],
            covariance=[[float(v) for v in row] for row in covariance],
            dose_response=float(-self.x[SL]),
            **extra,
        )

    # ------------------------------------------------------------ restart
    def carry_over(self) -> dict[str, Any]:
        """What a restarted job needs to resume (JSON-able): time, rate, drift, slope
        and their covariance, each channel's noise estimate, until when (epoch s) the
        last doses couple the rate to the biomass and until when the last step without
        a dosing event keeps a falling drift from growing (None: none yet). The level is
        not carried over: doses may have happened while the job was down."""
        coupled = self._coupled_until if math.isfinite(self._coupled_until) else None
        stepped = self._stepped_until if math.isfinite(self._stepped_until) else None
        return {"t": self.t, "x": [float(v) for v in self.x[1:]],
                "P": [[float(v) for v in row[1:]] for row in self.P[1:]],
                "obs_rel_var": dict(self.obs_rel_var), "obs_abs_var": dict(self.obs_abs_var),
                "coupled_until": coupled, "stepped_until": stepped}

    def _use_prior(self, prior: Mapping[str, Any]) -> None:
        """Start from a :meth:`carry_over`, its covariance grown by the process noise of the time since."""
        import numpy as np  # on first use: the job is ready before numpy is imported
        x = [float(v) for v in prior["x"]]
        P = np.array(prior["P"], dtype=float)
        n = N_STATES - 1
        if len(x) != n or P.shape != (n, n) or not np.all(np.isfinite(P)) or not all(map(math.isfinite, x)):
            raise ValueError(f"a carried-over filter state needs {n} values and a {n}×{n} covariance")
        self.x[1:] = x
        self.P[1:, 1:] = P
        self.P[0, 1:] = self.P[1:, 0] = 0.0
        gap_h = max(self.t - float(prior.get("t", self.t)), 0.0) / SECONDS_PER_HOUR
        if gap_h > 0:  # the time the job was down: the state moved on and grew uncertain
            level, level_var = self.x[L], self.P[L, L]
            self._bridge(gap_h)
            self.x[L] = level
            self.P[L, :] = self.P[:, L] = 0.0
            self.P[L, L] = level_var
        if prior.get("coupled_until") is not None:  # the gap itself is predicted uncoupled (doses unknown)
            self._coupled_until = float(prior["coupled_until"])
        if prior.get("stepped_until") is not None:  # absent from a state cached before the drift's growth
            self._stepped_until = float(prior["stepped_until"])
        floor = self.s.min_obs_rel_std**2
        for channel, value in (prior.get("obs_rel_var") or {}).items():
            if str(channel) in self.obs_rel_var and float(value) > 0:
                self.obs_rel_var[str(channel)] = max(float(value), floor)
        for channel, value in (prior.get("obs_abs_var") or {}).items():  # absent from a state cached before the floor
            if str(channel) in self.obs_abs_var and float(value) >= 0 and math.isfinite(float(value)):
                self.obs_abs_var[str(channel)] = float(value)


class Normalization(Record, frozen=False, kw_only=False):
    """Per-channel baseline (median OD of the warm-up), initial relative noise variance and absolute noise
    variance (nOD², the noise floor; 0 or absent: none; module docstring, *Readings near zero*).

    Cached per experiment by the job (``od_normalization_mean`` /
    ``od_normalization_variance``, the relative variances) so that a restart reuses it; the absolute
    variances follow the filter's carried-over state (:meth:`GrowthRateEKF.carry_over`).
    """

    factors: dict[str, float]
    rel_variances: dict[str, float]
    abs_variances: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"factors": dict(self.factors), "rel_variances": dict(self.rel_variances),
                "abs_variances": dict(self.abs_variances)}


def robust_log_residual_var(times_s: list[float], values: list[float], floor_std: float) -> float:
    """Relative noise variance of warm-up readings.

    Fits a straight line to ``(t, ln y)`` (positive readings only) robustly —
    Theil–Sen slope (the median of the pairwise slopes; Sen, *JASA* 63:1379,
    1968; a few lines of numpy: the job does not import scipy, which would slow
    its start), intercept the median residual — and returns
    ``(1.4826·MAD(residuals))²``, at least ``floor_std²``. A least-squares line
    would be tilted by a spike among the few warm-up readings and inflate every
    residual (a −22 % spike in 10 readings of 1.5 % noise read as 5 % noise, so
    that spike and the next ones were not flagged).
    """
    pairs = [(t, math.log(v)) for t, v in zip(times_s, values) if v > 0]
    if len(pairs) < 3:
        return floor_std**2
    return max(_robust_residual_sd([p[0] for p in pairs], [p[1] for p in pairs]), floor_std) ** 2


def _robust_residual_sd(times_s: list[float], values: list[float]) -> float:
    """1.4826·MAD of the residuals of ``values`` around their Theil–Sen line in time (see
    :func:`robust_log_residual_var`); 0 for fewer than 3 values."""
    import numpy as np  # on first use: the job is ready before numpy is imported
    if len(values) < 3:
        return 0.0
    t = np.array(times_s, dtype=float)
    y = np.array(values, dtype=float)
    t = t - t.mean()
    i, j = np.triu_indices(len(t), k=1)
    dt = t[j] - t[i]
    pairwise = (y[j] - y[i])[dt != 0] / dt[dt != 0]
    slope = float(np.median(pairwise)) if pairwise.size else 0.0
    residuals = y - slope * t
    residuals = residuals - np.median(residuals)
    mad = float(np.median(np.abs(residuals)))
    return MAD_TO_SD * mad


def compute_normalization(readings: list[tuple[float, dict[str, float]]], floor_std: float,
                          max_rel_std: float = math.inf) -> Normalization:
    """Baselines and noise from warm-up ``readings`` ``[(t, {channel: od}), …]``.

    Channels whose median is not positive are left out (they cannot be normalised). Each channel's
    relative noise variance is :func:`robust_log_residual_var` of its normalised readings (≥ ``floor_std²``).
    Its absolute noise variance (the noise floor, nOD²) is what the robust residual variance of the
    normalised readings themselves, ``V`` (:func:`_robust_residual_sd` in linear space, at the level 1),
    holds beyond ``max_rel_std²`` (the largest relative noise a culture's readings are taken to have:
    ``FilterSettings.max_rel_noise``): ``A = V − max_rel_std²`` and the relative variance at most
    ``max_rel_std²`` when ``V > max_rel_std²``, else ``A = 0`` (module docstring, *Readings near zero*).
    The default, ``inf``, never gives a floor.

    Raises:
        ValueError: no channel has a positive median.
    """
    import numpy as np  # on first use: the job is ready before numpy is imported
    channels: dict[str, list[tuple[float, float]]] = {}
    for t, ods in readings:
        for channel, od in ods.items():
            if od is not None and math.isfinite(od):
                channels.setdefault(str(channel), []).append((t, float(od)))
    factors: dict[str, float] = {}
    variances: dict[str, float] = {}
    floors: dict[str, float] = {}
    for channel, pairs in channels.items():
        median = float(np.median([v for _, v in pairs]))
        if median <= 0:
            continue
        factors[channel] = median
        times, normalised = [t for t, _ in pairs], [v / median for _, v in pairs]
        variances[channel] = robust_log_residual_var(times, normalised, floor_std)
        if math.isfinite(max_rel_std):
            total = _robust_residual_sd(times, normalised) ** 2
            if total > max_rel_std**2:
                floors[channel] = total - max_rel_std**2
                variances[channel] = max(min(variances[channel], max_rel_std**2), floor_std**2)
    if not factors:
        raise ValueError("no channel has a positive median OD during the warm-up; is the culture (or blank) in place?")
    return Normalization(factors, variances, floors)


class GrowthRateCalculator:
    """Warm-up, normalisation and filtering of a stream of OD readings.

    Feed it every OD message (``on_od``) and every dosing event (``on_dosing``);
    it returns an :class:`Estimate` per reading once warmed up.

    Args:
        settings: Filter tuning.
        samples_for_od_statistics: Warm-up readings (default 10).
        skip_first: OD messages ignored at start (default 5).
        normalization: A cached :class:`Normalization` (skips the warm-up).
        initial_rate, initial_rate_std: Prior growth rate (h⁻¹) and SD, e.g. from a cache.

    Attributes:
        normalization: Set once the warm-up is done (the job caches it).
        outlier_count, reading_count: Statistics since start.
    """

    def __init__(
        self,
        settings: FilterSettings | None = None,
        *,
        samples_for_od_statistics: int = 10,
        skip_first: int = 5,
        normalization: Normalization | None = None,
        initial_rate: float | None = None,
        initial_rate_std: float | None = None,
        prior: Mapping[str, Any] | None = None,
    ) -> None:
        if samples_for_od_statistics < 3:
            raise ValueError(f"samples_for_od_statistics must be ≥ 3, got {samples_for_od_statistics}")
        self.settings = settings or FilterSettings()
        self.samples_for_od_statistics = int(samples_for_od_statistics)
        self._to_skip = max(int(skip_first), 0)
        self.normalization = normalization
        self.initial_rate = initial_rate
        self.initial_rate_std = initial_rate_std
        self.prior = prior
        self.ekf: GrowthRateEKF | None = None
        self._warmup: list[tuple[float, dict[str, float]]] = []
        self._pending_dilution = False
        self.outlier_count = 0
        self.reading_count = 0

    @property
    def warming_up(self) -> bool:
        return self.ekf is None

    def on_dosing(self, timestamp: float | None = None, *, volume_change_ml: float | None = None,
                  event: str | None = None, vial_volume_ml: float | None = None) -> list[Estimate]:
        """A dosing event (``add_media``, ``add_alt_media``, ``remove_waste``) at epoch second ``timestamp``.

        During the warm-up it restarts the warm-up from the first reading after ``timestamp``
        (readings after it that arrived before the event count; without a timestamp, from the
        next reading). Afterwards an addition of
        ``volume_change_ml`` to a vial holding ``vial_volume_ml`` (mL, before the
        addition) is a known dilution (:meth:`GrowthRateEKF.mark_dilution`); waste
        removal with known volumes changes nothing (concentration is unchanged);
        an event without volumes re-anchors the level. Returns the estimates of
        readings processed again (see :meth:`GrowthRateEKF.mark_dilution`).
        """
        known = volume_change_ml is not None and vial_volume_ml is not None
        if self.ekf is None:
            if self.normalization is None:  # readings after the dose (an event that arrived late) stay
                self._warmup = [r for r in self._warmup if timestamp is not None and r[0] > timestamp]
            elif not (known and event == WASTE_EVENT):
                self._pending_dilution = True
            return []
        if known and event == WASTE_EVENT:
            return []
        if known and (volume_change_ml <= 0 or vial_volume_ml <= 0):  # a correction event, or nothing moved
            return []
        replayed = self.ekf.mark_dilution(timestamp, volume_change_ml if known else None,
                                          vial_volume_ml if known else None)
        for estimate in replayed:
            self.outlier_count += len(estimate.outliers) > 0
        return replayed

    def normalize(self, ods: Mapping[str, float]) -> dict[str, float]:
        """``{channel: od / baseline}`` for the channels with a baseline."""
        assert self.normalization is not None
        factors = self.normalization.factors
        return {str(c): float(v) / factors[str(c)] for c, v in ods.items() if str(c) in factors and v is not None}

    def _start_filter(self, t0: float, first: Mapping[str, float]) -> None:
        """Start the filter at epoch second ``t0``, its level from the normalised reading ``first``
        (:meth:`GrowthRateEKF.level_of`; 0 when it gives none)."""
        assert self.normalization is not None
        rate_var = None if self.initial_rate_std is None else self.initial_rate_std**2
        variance = max(self.normalization.rel_variances.values())
        args = (self.settings, t0, 0.0, variance, self.normalization.rel_variances)
        kwargs = dict(rate=self.initial_rate, rate_var=rate_var, obs_abs_var=self.normalization.abs_variances)
        try:
            self.ekf = GrowthRateEKF(*args, prior=self.prior, **kwargs)
        except (ValueError, KeyError, TypeError):  # an unusable carried-over state: start from the rate prior
            self.ekf = GrowthRateEKF(*args, **kwargs)
        level = self.ekf.level_of(first, variance)
        if level is not None:
            self.ekf.x[L], self.ekf.P[L, L] = level

    def on_od(self, timestamp: float, ods: Mapping[str, float]) -> Estimate | None:
        """One OD reading ``{channel: od}`` at epoch second ``timestamp``; None while warming up.

        Readings older than the filter's time are ignored (None). The warm-up is the last
        ``samples_for_od_statistics`` readings: while no channel's median of them is positive (a blank, or a
        blank-subtracted OD, at 0) each reading raises and the warm-up slides on to the next ones.

        Raises:
            ValueError: the warm-up's readings give no channel a positive median (:func:`compute_normalization`).
        """
        if self._to_skip > 0:
            self._to_skip -= 1
            return None
        clean = {str(c): float(v) for c, v in ods.items() if v is not None and math.isfinite(float(v))}
        if not clean:
            return None
        if self.ekf is None:
            if self.normalization is None:
                self._warmup.append((timestamp, clean))
                if len(self._warmup) < self.samples_for_od_statistics:
                    return None
                # the last samples_for_od_statistics readings: while their median is not positive (a blank at 0)
                # the warm-up slides on instead of growing without bound
                del self._warmup[:-self.samples_for_od_statistics]
                self.normalization = compute_normalization(self._warmup, self.settings.min_obs_rel_std,
                                                           self.settings.max_rel_noise)
                return self._run_warmup_through_filter()
            obs = self.normalize(clean)
            if not obs:
                return None
            self._start_filter(timestamp, obs)
            if self._pending_dilution:
                self.ekf.mark_dilution()  # type: ignore[union-attr]
                self._pending_dilution = False
            return self._count(self.ekf.update(timestamp, obs))  # type: ignore[union-attr]
        if timestamp < self.ekf.t:
            return None
        obs = self.normalize(clean)
        if not obs:
            return None
        return self._count(self.ekf.update(timestamp, obs))

    def _run_warmup_through_filter(self) -> Estimate:
        """Start the filter at the first warm-up reading and assimilate the warm-up (faster convergence)."""
        t0, first = self._warmup[0]
        self._start_filter(t0, self.normalize(first))
        estimate: Estimate | None = None
        for t, ods in self._warmup:
            estimate = self._count(self.ekf.update(t, self.normalize(ods)))  # type: ignore[union-attr]
        self._warmup.clear()
        assert estimate is not None
        return estimate

    def _count(self, estimate: Estimate) -> Estimate:
        self.reading_count += 1
        self.outlier_count += len(estimate.outliers) > 0
        return estimate
