"""The ``growth_rate_calculating`` job: OD readings in, growth rate and filtered OD out."""

from __future__ import annotations

import functools
import json
import math
import os
from collections import OrderedDict
from typing import Any

from reactorkit.builtin_plugins.growth_rate.estimator import (
    Estimate,
    FilterSettings,
    GrowthRateCalculator,
    Normalization,
)
from reactorkit.plugin import mqtt as mq
from reactorkit.plugin import parse_iso
from reactorkit.plugin import BackgroundJob

SECTION = "growth_rate_calculating.config"
MEAN_CACHE = "od_normalization_mean"
VARIANCE_CACHE = "od_normalization_variance"
STATE_CACHE = "growth_rate_filter_state"
FUSED_CHANNEL = "fused"
MIN_PRIOR_RATE_STD = 0.1  # h⁻¹
DEFAULT_VOLUME_ML = 14.0  # [bioreactor] initial_volume_ml and efflux_tube_volume_ml fallbacks (domain facts §3.8)
VOLUME_VARIABLES = ("current_volume_ml", "efflux_tube_volume_ml")
SEEN_EVENTS = 4096
"""Dosing events without the outbox's numbering remembered to recognise a copy (:meth:`GrowthRateCalculating.first_copy`):
a dose makes a handful of messages, so the original of a copy is among the last 4096 even at a few doses a wall
second (a simulated turbidostat at 480×)."""


class GrowthRateCalculating(BackgroundJob):
    """Turn ``od_reading`` readings into a filtered normalised OD and a growth rate (h⁻¹).

    Subscribes to ``od_reading/ods`` (or ``od_reading/od_fused`` on ``_XR``
    models with an active ``od_fused`` estimator) and ``dosing_events`` of this
    unit and experiment; retained messages are ignored. The estimator
    (:mod:`.estimator`, an extended Kalman filter on ``[ln nOD, growth rate,
    drift]``) skips the first 5 readings, gathers ``samples_for_od_statistics``
    readings to set each channel's baseline (median) and noise, and from then
    on publishes, for every reading and with the reading's timestamp:

    * ``growth_rate``: ``{growth_rate, timestamp}`` in h⁻¹;
    * ``od_filtered``: ``{od_filtered, timestamp}`` (normalised OD, > 0);
    * ``kalman_filter_outputs``: ``{state, covariance_matrix, timestamp}``.

    Baselines are cached per experiment (persistent caches
    ``od_normalization_mean`` and ``od_normalization_variance``) so a restart
    skips the warm-up; the filter's rate, drift, dose response and noise
    estimates are kept (``growth_rate_filter_state``, every 60 readings and at
    exit) and resumed by the next start. A dosing event restarts the warm-up,
    or tells the filter the known dilution: the job follows the vial volume
    (retained ``bioreactor/current_volume_ml`` and ``efflux_tube_volume_ml``,
    else ``[bioreactor] initial_volume_ml`` / ``efflux_tube_volume_ml``, 14 mL)
    and applies each event to it as the unit's bookkeeping does.

    Each dosing event and volume message is handled once: a copy of one
    already handled — the unit's outbox sends a message again when the leader
    has not stored it within 30 s (:mod:`reactorkit.core.outbox`) — is ignored
    by the job framework (:class:`~reactorkit.core.job.BackgroundJob` drops a
    message whose outbox numbering it has seen), and a dosing event without
    the numbering that repeats one already handled, to the byte, is ignored
    here (:meth:`first_copy`). A copy of a dosing event would dilute the
    culture a second time in the filter, and a late copy of
    ``current_volume_ml`` would put back a volume of before the last doses.
    (A copy of a reading is older than the filter's time by then, and the
    estimator ignores it.)

    When an ``od{angle}`` calibration is active, ``od_reading`` publishes OD600
    in ``ods``, so the growth rate is that of calibrated OD (proportional to
    biomass), not of the photodiode signal.

    Config ``[growth_rate_calculating.config]``: ``samples_for_od_statistics``
    (10), ``ekf_outlier_std_threshold`` (5.0, > 2); optional tuning
    ``log_od_process_std``, ``rate_process_std``, ``drift_process_std``
    (see :class:`FilterSettings`).

    Args:
        unit, experiment: Whose readings to follow.
        ignore_cache: Recompute the baselines even if cached.

    Raises:
        ValueError: invalid config values (named in the message).
    """

    job_name = "growth_rate_calculating"
    published_settings = {
        "growth_rate": {"datatype": "json", "settable": False, "unit": "h⁻¹"},
        "od_filtered": {"datatype": "json", "settable": False},
        "kalman_filter_outputs": {"datatype": "json", "settable": False},
    }

    def __init__(self, unit: str, experiment: str, *, ignore_cache: bool = False, **kwargs: Any) -> None:
        super().__init__(unit, experiment, **kwargs)
        try:
            self._setup(ignore_cache)
        except Exception:
            self.clean_up()  # registered and connected already: leave nothing behind
            raise

    def _setup(self, ignore_cache: bool) -> None:
        cfg = self.config
        settings = FilterSettings(
            outlier_std_threshold=cfg.getfloat(SECTION, "ekf_outlier_std_threshold", fallback=5.0),
            **{key: cfg.getfloat(SECTION, key) for key in ("log_od_process_std", "rate_process_std", "drift_process_std")
               if cfg.has_option(SECTION, key)},
        )
        samples = cfg.getint(SECTION, "samples_for_od_statistics", fallback=10)
        normalization = None if ignore_cache else self._cached_normalization()
        prior = None if ignore_cache else self._cached_state()
        self.calculator = GrowthRateCalculator(
            settings,
            samples_for_od_statistics=samples,
            normalization=normalization,
            initial_rate=prior[0] if prior else None,
            initial_rate_std=prior[1] if prior else None,
            prior=prior[2] if prior else None,
        )
        if normalization is not None:
            self.logger.info("Using the cached OD baselines of %s: %s", self.experiment, normalization.factors)
        else:
            self.logger.info("Computing OD normalization metrics from %d readings. This may take a few minutes.", samples)
        self._level_shift_logged_at: float | None = None
        self._warmup_waiting = False  # the warm-up's median was not positive, and that was logged
        self._seen: OrderedDict[tuple[str, bytes], None] = OrderedDict()
        cfg = self.config
        self.vial_volume_ml = cfg.getfloat("bioreactor", "initial_volume_ml", fallback=DEFAULT_VOLUME_ML)
        self.efflux_tube_volume_ml = cfg.getfloat("bioreactor", "efflux_tube_volume_ml", fallback=DEFAULT_VOLUME_ML)
        self.growth_rate = None
        self.od_filtered = None
        self.kalman_filter_outputs = None

    # ----------------------------------------------------------------- caches
    def _cache(self, name: str) -> Any:
        try:
            from reactorkit.plugin import PersistentCache

            return PersistentCache(name)
        except Exception as exc:
            self.logger.debug("no persistent cache %s: %s", name, exc)
            return None

    def _cached_normalization(self) -> Normalization | None:
        means, variances = self._cache(MEAN_CACHE), self._cache(VARIANCE_CACHE)
        if means is None or variances is None:
            return None
        try:
            factors = means.get(self.experiment)
            rel = variances.get(self.experiment)
            if not factors or not rel:
                return None
            factors = {str(k): float(v) for k, v in factors.items()}
            rel = {str(k): float(v) for k, v in rel.items()}
            if set(factors) != set(rel) or any(v <= 0 for v in (*factors.values(), *rel.values())):
                return None
            return Normalization(factors, rel)
        except Exception as exc:
            self.logger.warning("ignoring unreadable cached OD baselines: %s", exc)
            return None

    def _cached_state(self) -> tuple[float, float, dict[str, Any] | None] | None:
        """The last growth rate of this experiment (SD at least 0.1 h⁻¹: the culture may have changed) and,
        when stored, the filter's carried-over state (:meth:`GrowthRateEKF.carry_over`)."""
        cache = self._cache(STATE_CACHE)
        try:
            state = cache.get(self.experiment) if cache is not None else None
            if not state:
                return None
            carried = state.get("filter")
            return (float(state["growth_rate"]), max(float(state.get("growth_rate_std") or 0.0), MIN_PRIOR_RATE_STD),
                    carried if isinstance(carried, dict) else None)
        except Exception as exc:
            self.logger.debug("ignoring the cached filter state: %s", exc)
            return None

    def _store_normalization(self, normalization: Normalization) -> None:
        means, variances = self._cache(MEAN_CACHE), self._cache(VARIANCE_CACHE)
        try:
            if means is not None and variances is not None:
                means.set(self.experiment, normalization.factors)
                variances.set(self.experiment, normalization.rel_variances)
        except Exception as exc:
            self.logger.warning("could not cache the OD baselines: %s", exc)

    @functools.cached_property
    def use_fused(self) -> bool:
        """``_XR`` model (``$MODEL_NAME``) with an active ``od_fused`` estimator → follow ``od_fused``."""
        model = os.environ.get("MODEL_NAME", "") or self.config.get("hardware", "model_name", fallback="")
        if not model.endswith("_XR"):
            return False
        try:
            from reactorkit.plugin import active_estimator

            return active_estimator("od_fused") is not None
        except Exception:
            return False

    # ------------------------------------------------------------------ MQTT
    def _topic(self, *parts: str) -> str:
        return "/".join((mq.root_topic(self.config), self.unit, self.experiment, *parts))

    def on_mqtt_connect(self, client: Any) -> None:
        signal = ("od_reading", "od_fused") if self.use_fused else ("od_reading", "ods")
        client.subscribe(self._topic(*signal), qos=mq.QOS_EXACTLY_ONCE)
        client.subscribe(self._topic("dosing_events"), qos=mq.QOS_EXACTLY_ONCE)
        for variable in VOLUME_VARIABLES:
            client.subscribe(self._topic("bioreactor", variable), qos=mq.QOS_EXACTLY_ONCE)

    def first_copy(self, message: Any) -> bool:
        """False for a copy of a dosing event without the outbox's numbering that this job already handled.

        An event is known by its payload (its timestamp, to the millisecond, volume, kind and source name
        it); the last :data:`SEEN_EVENTS` are remembered. A numbered message (MQTT 5 user properties
        ``rk-stream``/``rk-seq``) is never dropped here: the job framework has dropped its copies already.
        """
        from reactorkit.plugin import sequence_of

        if not message.topic.endswith("/dosing_events") or sequence_of(getattr(message, "properties", None)):
            return True
        key = (message.topic, bytes(message.payload))
        if key in self._seen:
            return False
        self._seen[key] = None
        if len(self._seen) > SEEN_EVENTS:
            self._seen.popitem(last=False)
        return True

    def on_message(self, message: Any) -> None:
        if not message.payload or "calculator" not in self.__dict__:
            return
        if not self.first_copy(message):
            self.logger.debug("ignored a copy of a message already handled on %s", message.topic)
            return
        topic = message.topic
        if "/bioreactor/" in topic:  # retained or live: the vial bookkeeping's latest value
            self._set_volume(topic.rsplit("/", 1)[-1], message.payload)
            return
        if message.retain:
            return
        try:
            data = json.loads(message.payload)
            if not isinstance(data, dict):
                raise ValueError("expected a JSON object")
            if topic.endswith("/dosing_events"):
                self.handle_dosing_event(data)
            elif topic.endswith("/od_reading/ods"):
                ods = {str(c): float(r["od"]) for c, r in (data.get("ods") or {}).items()}
                self.handle_reading(parse_iso(data["timestamp"]), data["timestamp"], ods)
            elif topic.endswith("/od_reading/od_fused"):
                self.handle_reading(parse_iso(data["timestamp"]), data["timestamp"], {FUSED_CHANNEL: float(data["od_fused"])})
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            self.logger.warning("ignored malformed message on %s: %s", topic, exc)

    # ------------------------------------------------------------- handling
    def _set_volume(self, variable: str, payload: bytes) -> None:
        try:
            value = float(payload)
        except ValueError:
            self.logger.warning("ignored malformed bioreactor/%s: %r", variable, payload[:40])
            return
        if not math.isfinite(value) or value <= 0:
            return
        if variable == "current_volume_ml":
            self.vial_volume_ml = value
        elif variable == "efflux_tube_volume_ml":
            self.efflux_tube_volume_ml = value

    def handle_dosing_event(self, event: dict[str, Any]) -> None:
        """A ``dosing_events`` payload ``{volume_change, event, source_of_event, timestamp}``.

        An addition is a known dilution of the vial's volume before it; the volume
        then follows the unit's bookkeeping (add: V + Δ; waste: down to the efflux tube).
        """
        volume = float(event.get("volume_change", 0.0))
        if not math.isfinite(volume) or volume == 0.0 or event.get("source_of_event") == "pump_calibration":
            return
        name = str(event.get("event", ""))
        before = self.vial_volume_ml
        self.calculator.on_dosing(parse_iso(event["timestamp"]) if event.get("timestamp") else None,
                                  volume_change_ml=volume, event=name, vial_volume_ml=before)
        if name in ("add_media", "add_alt_media"):
            self.vial_volume_ml = max(before + volume, 1e-6)
        elif name == "remove_waste" and before > self.efflux_tube_volume_ml:
            self.vial_volume_ml = max(before - volume, self.efflux_tube_volume_ml)
        self.logger.debug("dosing event %s %.3g mL into %.3g mL", name, volume, before)

    def handle_reading(self, t: float, timestamp: str, ods: dict[str, float]) -> Estimate | None:
        """Feed one reading (epoch s, its ISO timestamp, ``{channel: od}``); publishes the outputs.

        While the warm-up's readings give no channel a positive median (a blank at 0) the reading gives
        nothing, and a warning says so once per warm-up.

        Raises:
            ValueError: from the estimator after the warm-up (the message handler logs it).
        """
        if self.state != "ready":
            return None
        was_warming = self.calculator.normalization is None
        try:
            estimate = self.calculator.on_od(t, ods)
        except ValueError as exc:
            if not was_warming:
                raise
            # a blank (or blank-subtracted OD) at 0: the warm-up slides on until its readings' median is positive;
            # said once, not for every reading
            if not self._warmup_waiting:
                self.logger.warning("The OD warm-up waits: %s", exc)
                self._warmup_waiting = True
            return None
        if estimate is None:
            return None
        if was_warming and self.calculator.normalization is not None:
            self._store_normalization(self.calculator.normalization)
            self._warmup_waiting = False
            normalization = self.calculator.normalization
            floors = {k: round(v**0.5, 5) for k, v in normalization.abs_variances.items()}
            self.logger.info("OD baselines: %s; relative noise: %s%s",
                             {k: round(v, 6) for k, v in normalization.factors.items()},
                             {k: round(v**0.5, 5) for k, v in normalization.rel_variances.items()},
                             f"; noise floor (SD, normalised OD): {floors}" if floors else "")
        if estimate.level_shift:
            self.logger.info("A step in the OD signal without a dosing event at %s; re-anchored the level.", timestamp)
        self.growth_rate = {"growth_rate": estimate.growth_rate, "timestamp": timestamp}
        self.od_filtered = {"od_filtered": estimate.od_filtered, "timestamp": timestamp}
        self.kalman_filter_outputs = {"state": estimate.state, "covariance_matrix": estimate.covariance,
                                      "timestamp": timestamp}
        if self.calculator.reading_count % 60 == 0:
            self._store_state(estimate, timestamp)
        return estimate

    def _store_state(self, estimate: Estimate, timestamp: str) -> None:
        cache = self._cache(STATE_CACHE)
        if cache is None:
            return
        try:
            ekf = self.calculator.ekf
            cache.set(self.experiment, {"growth_rate": estimate.growth_rate, "growth_rate_std": estimate.growth_rate_std,
                                        "timestamp": timestamp, "filter": ekf.carry_over() if ekf is not None else None})
        except Exception as exc:
            self.logger.debug("could not cache the filter state: %s", exc)

    def on_disconnected(self) -> None:
        if "calculator" not in self.__dict__:
            return
        ekf = self.calculator.ekf
        if ekf is not None:
            self._store_state(ekf.estimate(), "")
