"""A physically coupled model of one bioreactor vessel (pure; no I/O).

State variables and units:

* ``od``: biomass as OD600 (dimensionless), ``substrate``: limiting nutrient in
  OD600-equivalents (yield 1), so ``od + substrate`` is what a batch can reach.
* ``volume_ml``: liquid volume (mL); ``alt_media_fraction`` (0–1).
* ``temperature_c`` (°C); ``rpm`` (RPM).
* cumulative media / alt-media added and waste removed (mL).

Dynamics, with pump flows q (mL/s) from the PWM duty cycles of the ``[PWM]``
channels ``media``, ``alt_media``, ``waste`` and dilution rate D = q_in / V:

* Monod growth (Monod 1949, *Annu. Rev. Microbiol.* 3:371):
  μ = μmax · S / (Ks + S) · (1 − inhibition · alt_media_fraction) (h⁻¹);
  dX/dt = (μ − D)·X; dS/dt = D·(S_in − S) − μ·X (alt media carries the same nutrient).
  At steady state in a chemostat μ = D; in a turbidostat X is held by dilution.
* Waste: the efflux tube sits at ``efflux_tube_volume_ml``; the waste pump only
  removes liquid above it.
* Heater (Newton's law of cooling): dT/dt = g·heater% − (T − T_ambient)/τ,
  τ = 600 s, g = 50 °C / (100 % · τ), so full power holds ambient + 50 °C.
* Stirrer: first-order lag (τ = 1 s) towards RPM = 25 · (duty% − 8) (0 below 8 %).
* Photodiodes: with the IR LED at I %, angle sensors read
  V = (I / 80) · (v0 + gain_angle · OD / (1 + 0.15·OD)) and the 180° sensor
  V = (I / 80) · 1.2 · exp(−0.7·OD); REF reads 0.25 · I / 80. Gaussian noise
  with SD ``noise_fraction`` · V + 0.2 mV, drawn from a generator seeded by
  (seed, reading counter) so a run is deterministic under a seed.

Constants are chosen to mimic the scale of a 20 mL Pioreactor, not fitted to one.
"""

from __future__ import annotations

import math
import random
from typing import Any

from reactorkit.core.records import Record, asdict, field

ANGLE_GAIN = {"45": 0.35, "90": 0.5, "135": 0.25}
THERMAL_TAU_S = 600.0
HEATER_GAIN_C_PER_S = 50.0 / (100.0 * THERMAL_TAU_S)
STIR_TAU_S = 1.0
RPM_PER_DUTY = 25.0
STIR_DEADBAND_DUTY = 8.0


class VesselParameters(Record, frozen=False, kw_only=False):
    """Model constants (``[simulation]`` config section).

    Attributes:
        mu_max_per_hour: μmax (h⁻¹). ks: Monod half-saturation (OD600-equivalents).
        substrate_in: Substrate of fresh media (OD600-equivalents).
        alt_media_inhibition: Fractional growth reduction in pure alt media.
        pump_ml_per_second: Flow of a pump at 100 % duty (mL/s).
        efflux_tube_volume_ml: Level of the waste tube (mL).
        ambient_temperature_c: °C. noise_fraction: relative photodiode noise.
        seed: Noise seed.
        pwm_devices: ``channel -> device`` from ``[PWM]``.
    """

    mu_max_per_hour: float = 0.6
    ks: float = 0.3
    substrate_in: float = 2.0
    alt_media_inhibition: float = 0.8
    pump_ml_per_second: float = 0.5
    efflux_tube_volume_ml: float = 14.0
    ambient_temperature_c: float = 22.0
    noise_fraction: float = 0.01
    seed: int = 0
    pwm_devices: dict[str, str] = field(default_factory=lambda: {"1": "stirring", "2": "media", "3": "alt_media", "4": "waste", "5": "heating"})


class VesselState(Record, frozen=False, kw_only=False):
    """The model's state at simulated epoch time ``t`` (seconds)."""

    t: float
    od: float = 0.05
    substrate: float = 1.95
    volume_ml: float = 14.0
    alt_media_fraction: float = 0.0
    temperature_c: float = 22.0
    rpm: float = 0.0
    cumulative_media_ml: float = 0.0
    cumulative_alt_media_ml: float = 0.0
    cumulative_waste_ml: float = 0.0
    pwm: dict[str, float] = field(default_factory=dict)
    leds: dict[str, float] = field(default_factory=lambda: {"A": 0.0, "B": 0.0, "C": 0.0, "D": 0.0})
    readings: int = 0
    pwm_off_at: dict[str, float] = field(default_factory=dict)  # channel -> epoch s at which it turns itself off
    pumped_ml: dict[str, float] = field(default_factory=dict)  # device -> mL its pump head moved (what a scale under a calibration beaker sees)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "VesselState":
        return cls(**data)


class Vessel:
    """Integrates a :class:`VesselState` forward in time under :class:`VesselParameters`."""

    def __init__(self, params: VesselParameters, state: VesselState) -> None:
        self.p = params
        self.s = state

    # --------------------------------------------------------------- helpers
    def _duty(self, device: str) -> float:
        for channel, name in self.p.pwm_devices.items():
            if name == device:
                return self.s.pwm.get(str(channel), 0.0)
        return 0.0

    def flow_ml_per_s(self, device: str) -> float:
        """Flow of the pump ``device`` (``media``, ``alt_media``, ``waste``) now, in mL/s."""
        return self.p.pump_ml_per_second * self._duty(device) / 100.0

    def growth_rate_per_hour(self) -> float:
        """μ now (h⁻¹), the quantity a growth-rate estimator should recover."""
        s = max(self.s.substrate, 0.0)
        return self.p.mu_max_per_hour * s / (self.p.ks + s) * (1.0 - self.p.alt_media_inhibition * self.s.alt_media_fraction)

    # ------------------------------------------------------------- dynamics
    def advance(self, to_t: float) -> None:
        """Integrate from ``state.t`` to ``to_t`` (no-op if ``to_t`` is not later)."""
        remaining = to_t - self.s.t
        while remaining > 1e-9:
            pumping = any(self.flow_ml_per_s(d) > 0 for d in ("media", "alt_media", "waste"))
            h = min(remaining, 0.05 if pumping else 30.0)
            for off_at in self.s.pwm_off_at.values():  # never step past a timed channel's end
                if self.s.t < off_at < self.s.t + h:
                    h = off_at - self.s.t
            self._step(h)
            remaining -= h
            self._apply_timed_stops()
        self.s.t = max(self.s.t, to_t)
        self._apply_timed_stops()

    def _apply_timed_stops(self) -> None:
        """Turn off channels whose timed run (``pwm_off_at``) has ended."""
        for channel, off_at in list(self.s.pwm_off_at.items()):
            if self.s.t >= off_at - 1e-9:
                self.s.pwm[channel] = 0.0
                del self.s.pwm_off_at[channel]

    def _step(self, h: float) -> None:
        s = self.s
        q_media, q_alt, q_waste = (self.flow_ml_per_s(d) for d in ("media", "alt_media", "waste"))
        q_in = q_media + q_alt
        for device, q in (("media", q_media), ("alt_media", q_alt), ("waste", q_waste)):
            if q > 0:
                s.pumped_ml[device] = s.pumped_ml.get(device, 0.0) + q * h
        mu = self.growth_rate_per_hour() / 3600.0
        # growth (exact for constant μ over the step), consuming substrate
        grown = s.od * (math.exp(mu * h) - 1.0)
        grown = min(grown, max(s.substrate, 0.0))
        s.od += grown
        s.substrate -= grown
        # inflow: mix fresh liquid into the vessel
        if q_in > 0:
            added = q_in * h
            v_new = s.volume_ml + added
            fresh_substrate = self.p.substrate_in  # media and alt media carry the same nutrient
            s.od = s.od * s.volume_ml / v_new
            s.substrate = (s.substrate * s.volume_ml + fresh_substrate * added) / v_new
            s.alt_media_fraction = (s.alt_media_fraction * s.volume_ml + q_alt * h) / v_new
            s.volume_ml = v_new
            s.cumulative_media_ml += q_media * h
            s.cumulative_alt_media_ml += q_alt * h
        # outflow through the efflux tube: only liquid above its level
        if q_waste > 0:
            removable = max(0.0, s.volume_ml - self.p.efflux_tube_volume_ml)
            removed = min(q_waste * h, removable)
            s.volume_ml -= removed
            s.cumulative_waste_ml += removed
        # heater against ambient loss (exact solution of the linear ODE)
        heater = self._duty("heating")
        t_eq = self.p.ambient_temperature_c + HEATER_GAIN_C_PER_S * heater * THERMAL_TAU_S
        s.temperature_c = t_eq + (s.temperature_c - t_eq) * math.exp(-h / THERMAL_TAU_S)
        # stirrer
        duty = self._duty("stirring")
        rpm_eq = max(0.0, RPM_PER_DUTY * (duty - STIR_DEADBAND_DUTY))
        s.rpm = rpm_eq + (s.rpm - rpm_eq) * math.exp(-h / STIR_TAU_S)
        s.t += h

    # -------------------------------------------------------------- sensors
    def _rng(self) -> random.Random:
        self.s.readings += 1
        return random.Random(self.p.seed * 1_000_003 + self.s.readings)

    def photodiode_voltages(self, angles: dict[int, str], ir_intensity: float) -> dict[int, float]:
        """Noisy voltages of the photodiodes ``channel -> angle`` (``"90"``, ``"REF"`` …)."""
        rng = self._rng()
        scale = ir_intensity / 80.0
        od = max(self.s.od, 0.0)
        out: dict[int, float] = {}
        for channel, angle in angles.items():
            if angle == "REF":
                v = 0.25 * scale
            elif angle == "180":
                v = scale * 1.2 * math.exp(-0.7 * od)
            else:
                v = scale * (0.002 + ANGLE_GAIN.get(angle, 0.4) * od / (1.0 + 0.15 * od))
            noise = rng.gauss(0.0, self.p.noise_fraction * abs(v) + 0.0002)
            out[channel] = max(0.0, v + noise)
        return out

    def tachometer_rpm(self) -> float:
        rng = self._rng()
        return max(0.0, self.s.rpm + rng.gauss(0.0, 3.0)) if self.s.rpm > 1 else 0.0

    def temperature_reading(self) -> float:
        rng = self._rng()
        return self.s.temperature_c + rng.gauss(0.0, 0.05)

    def ground_truth(self) -> dict[str, Any]:
        """True state: ``od`` (OD600), ``growth_rate`` (h⁻¹), ``volume_ml``, ``temperature_c``,
        ``rpm``, ``alt_media_fraction``, cumulative volumes (mL), ``pumped_ml`` (mL each pump
        head moved, efflux or not) and ``t`` (epoch s)."""
        s = self.s
        return {
            "t": s.t,
            "od": s.od,
            "growth_rate": self.growth_rate_per_hour(),
            "substrate": s.substrate,
            "volume_ml": s.volume_ml,
            "alt_media_fraction": s.alt_media_fraction,
            "temperature_c": s.temperature_c,
            "rpm": s.rpm,
            "cumulative_media_ml": s.cumulative_media_ml,
            "cumulative_alt_media_ml": s.cumulative_alt_media_ml,
            "cumulative_waste_ml": s.cumulative_waste_ml,
            "pumped_ml": dict(s.pumped_ml),
            "pwm": dict(s.pwm),
            "leds": dict(s.leds),
        }
