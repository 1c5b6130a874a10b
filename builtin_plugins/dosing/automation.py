"""The dosing-automation family: the base class every dosing automation extends.

``pio run dosing_automation --automation-name <name> [--<field> value …]``
hosts one automation (built-in or from a plugin's ``register_automations``).
A dosing automation subclasses :class:`DosingAutomationJob`, sets
``automation_name`` and ``pumps`` (the pump actions it needs), declares its
settable parameters in ``published_settings`` and implements ``execute()``,
calling :meth:`DosingAutomationJob.execute_io_action` to dose.

Dose helper (domain facts §3.5, ``[dosing_automation.config]``):

* ``waste_ml`` must be at least ``media_ml + alt_media_ml`` (the volume comes
  back to the efflux level), unless ``keep_volume=False`` (fed batch);
* a dose whose added volume or waste exceeds ``max_subdose`` (1.0 mL) is
  halved recursively (:func:`plan_subdoses`);
* each sub-dose adds alt media then media (``pause_between_subdoses_seconds``,
  5 s, after each), removes ``waste_ml`` and then an extra
  ``waste_removal_multiplier`` (2) × ``waste_ml`` of waste that is not counted
  in the returned volumes (the efflux tube stops it at the efflux level);
* before each sub-dose the projected volume is checked: reaching
  ``[bioreactor] max_volume_to_stop`` logs an error, puts the automation to
  ``sleeping`` and aborts the dose.

Pumps run in this process (:func:`.pumps.pump_action`, each with its own
``$state`` lifecycle). Sleeping or disconnecting stops a running pump at once
and no further sub-dose starts. The automation also follows the retained
``bioreactor/current_volume_ml``: a volume at or above ``max_volume_to_stop``
(from a manual pump or a correction through the API) puts it to sleep.

Start options ``current_volume_ml``, ``efflux_tube_volume_ml`` and
``alt_media_fraction`` (as the web UI sends them) set the vial's bookkeeping
before the first run, published as any other change of it.

Safety pauses (:mod:`.safety`): before every dose and every
``safety_check_interval_seconds`` (10 s) the automation checks that its OD
readings are fresh (automations with ``watches_od``), that its broker
connection is up and that the vial bookkeeping is certain (no pump left on by
a dead process, no interrupted dilution). While one fails no dose starts; the
reason is logged and published as ``safety_pause`` (``{"reason", "message",
"since"}``, or empty), and dosing resumes by itself at the next regular
opportunity, without catching up. A dilution interrupted by a crash or a power
cut is completed by the books when the automation runs again (:mod:`.dilution`).

Start-up fails with a clear error (logged, job disconnected) when a pump it
needs has no ``[PWM]`` channel or no active calibration, or a start value is out of bounds.
"""

from __future__ import annotations

import threading
from typing import Any, ClassVar

from reactorkit.builtin_plugins.dosing.bioreactor import BioreactorStore, InvalidBioreactorValue, publish_values
from reactorkit.builtin_plugins.dosing.calibration import MissingCalibration, missing_calibration_message, pump_rate
from reactorkit.builtin_plugins.dosing.pumps import (
    OverVolume,
    PumpError,
    pump_action,
    pwm_channel_for,
    reaches,
    volume_limits,
)
from reactorkit.builtin_plugins.dosing.dilution import DilutionJournal, complete_interrupted
from reactorkit.builtin_plugins.dosing.safety import DEFAULT_CHECK_INTERVAL_S, DoseGuard
from reactorkit.plugin import AutomationEvent, AutomationJob, ErrorOccurred, RepeatedTimer
from reactorkit.plugin import get_clock, get_config
from reactorkit.plugin import QOS_AT_LEAST_ONCE, job_topic

CONFIG_SECTION = "dosing_automation.config"
SEEDED_VARIABLES = ("current_volume_ml", "efflux_tube_volume_ml", "alt_media_fraction")  # optional start options
SUBDOSE_EPSILON_ML = 1e-9
STOP_JOIN_TIMEOUT_S = 15.0  # wall seconds to wait for a running pump to stop at disconnect


def positive(name: str, value: Any) -> float:
    """``value`` as a float, checked > 0 (automation parameters: mL, minutes, h⁻¹ …).

    Raises:
        ValueError: not a number, or ≤ 0 (the message names the parameter).
    """
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not number > 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return number


def exchange_volume(name: str, value: Any, config: Any = None) -> float:
    """An exchange / dose volume (mL): a number > 0 and at most ``[pump_limits] max_exchange_volume_ml``
    (default: vial capacity − efflux level, 6 mL on a 20 mL vial; see :mod:`.limits`).

    Raises:
        ValueError: not a number, ≤ 0, or above the bound (the message names the parameter and the key).
    """
    from reactorkit.builtin_plugins.dosing.limits import check_exchange_volume

    return check_exchange_volume(name, positive(name, value), config or get_config())


def plan_subdoses(media_ml: float, alt_media_ml: float, waste_ml: float,
                  max_subdose: float) -> list[tuple[float, float, float]]:
    """Split a dose into equal halves until every part is small enough.

    A part is small enough when ``media_ml + alt_media_ml ≤ max_subdose`` and
    ``waste_ml ≤ max_subdose``.

    Returns:
        ``[(media_ml, alt_media_ml, waste_ml), …]`` summing to the request.

    Raises:
        ValueError: a negative volume or ``max_subdose`` ≤ 0.
    """
    if min(media_ml, alt_media_ml, waste_ml) < 0:
        raise ValueError("volumes must be ≥ 0 mL")
    if not max_subdose > 0:
        raise ValueError(f"max_subdose must be > 0 mL, got {max_subdose}")
    if media_ml + alt_media_ml > max_subdose + SUBDOSE_EPSILON_ML or waste_ml > max_subdose + SUBDOSE_EPSILON_ML:
        half = plan_subdoses(media_ml / 2, alt_media_ml / 2, waste_ml / 2, max_subdose)
        return half + half
    return [(media_ml, alt_media_ml, waste_ml)]


class DosingAutomationJob(AutomationJob):
    """Base class of dosing automations (job ``dosing_automation``).

    Class attributes:
        automation_name: snake_case name given as ``--automation-name``.
        pumps: Pump actions the automation uses, checked at start
            (``add_media``, ``add_alt_media``, ``remove_waste``).
        watches_od: The automation doses on OD-like readings (its :meth:`subscribe_inputs`
            topics): stale readings pause it (``[dosing_automation.config] max_od_age_seconds``).

    Args:
        unit, experiment, duration, skip_first_run: As :class:`AutomationJob`
            (``duration`` in minutes; None/0 for event-driven automations).

    Raises:
        PumpError: a pump in ``pumps`` has no ``[PWM]`` channel.
        MissingCalibration: a pump in ``pumps`` has no active calibration.
    """

    job_name = "dosing_automation"
    automation_type = "dosing"
    pumps: ClassVar[tuple[str, ...]] = ()
    watches_od: ClassVar[bool] = False
    published_settings: ClassVar[dict[str, dict[str, Any]]] = {
        "safety_pause": {"datatype": "json", "settable": False},
    }

    def __init__(self, unit: str, experiment: str, **kwargs: Any) -> None:
        # the vial's state given at start (the web UI sends it), applied once the job is up
        seeds = {key: kwargs.pop(key) for key in SEEDED_VARIABLES if key in kwargs}
        seeds = {key: value for key, value in seeds.items() if value not in (None, "")}
        # everything MQTT callbacks use is set before the client connects (in super().__init__)
        cfg = kwargs.get("config") or get_config()
        self._run_lock = threading.Lock()
        self._stop_dosing = threading.Event()
        self._active_stops: set[threading.Event] = set()
        self._stops_lock = threading.Lock()
        self._rates: dict[str, Any] = {}
        self.max_volume_to_warn, self.max_volume_to_stop = volume_limits(cfg)
        self.pause_between_subdoses_s = cfg.getfloat(CONFIG_SECTION, "pause_between_subdoses_seconds", fallback=5.0)
        self.waste_removal_multiplier = cfg.getfloat(CONFIG_SECTION, "waste_removal_multiplier", fallback=2.0)
        self.max_subdose = cfg.getfloat(CONFIG_SECTION, "max_subdose", fallback=1.0)
        self.bioreactor = BioreactorStore(cfg)
        self._volume_topic = job_topic(unit, experiment, "bioreactor", "current_volume_ml", config=cfg)
        self._guard = DoseGuard(cfg, kwargs.get("clock") or get_clock(cfg), watches_od=self.watches_od, unit=unit,
                                experiment=experiment)
        self._safety_lock = threading.Lock()
        self._pause_key: tuple[str, ...] = ()
        self.safety_check_interval_s = cfg.getfloat(CONFIG_SECTION, "safety_check_interval_seconds",
                                                    fallback=DEFAULT_CHECK_INTERVAL_S)
        self._safety_timer: RepeatedTimer | None = None
        super().__init__(unit, experiment, **kwargs)
        self.safety_pause = None
        self.source_of_event = f"dosing_automation:{self.automation_name}"
        try:
            self._check_pumps()
            if seeds:
                self._seed_vial(seeds)
        except (PumpError, MissingCalibration, InvalidBioreactorValue) as exc:
            self.logger.error("%s cannot start: %s", self.automation_name, exc)
            self.clean_up()
            raise

    def _seed_vial(self, seeds: dict[str, Any]) -> None:
        """Set the vial's ``current_volume_ml`` / ``efflux_tube_volume_ml`` / ``alt_media_fraction`` (mL, mL,
        fraction) given as start options, and publish them (retained) as every change of the bookkeeping is.

        Raises:
            InvalidBioreactorValue: a value is not a number or out of its bounds; nothing is written.
        """
        values = self.bioreactor.update(self.experiment, seeds)
        publish_values(self.mqtt, self.unit, self.experiment, values, seeds.keys(), self.config)
        self.logger.info("vial set at start: %s", ", ".join(f"{k}={values[k]:g}" for k in seeds))

    def _check_pumps(self) -> None:
        for action in self.pumps:
            pwm_channel_for(self.config, action)
            rate = pump_rate(action)
            if not rate.is_calibrated:
                raise MissingCalibration(missing_calibration_message(rate.device))

    # ------------------------------------------------------------ MQTT input
    def on_mqtt_connect(self, client: Any) -> None:
        client.subscribe(self._volume_topic, qos=QOS_AT_LEAST_ONCE)
        self.subscribe_inputs(client)

    def subscribe_inputs(self, client: Any) -> None:
        """Override to subscribe to the automation's inputs (called on every (re)connect)."""

    def on_message(self, message: Any) -> None:
        if not message.payload:  # a job clearing its retained settings as it stops
            return
        if message.topic == self._volume_topic:
            self._check_volume_message(message.payload)
            return
        if self.watches_od and not message.retain:
            if not self._guard.fresh(message.payload):
                self.logger.debug("ignored a reading older than max_od_age_seconds on %s", message.topic)
                return
            if self._pause_key:  # a fresh reading may end an od_stale pause before it is dosed on
                self._safe_to_dose(holding_run_lock=False)  # (never a pump run on the network thread)
        self.on_input(message)

    def on_input(self, message: Any) -> None:
        """Override to handle messages of :meth:`subscribe_inputs`."""

    def _check_volume_message(self, payload: bytes) -> None:
        try:
            volume = float(payload)
        except ValueError:
            return
        if reaches(volume, self.max_volume_to_stop) and self.state == "ready":
            self.logger.error(
                "The vial holds %.2f mL, at or above [bioreactor] max_volume_to_stop = %g mL; pausing %s.",
                volume, self.max_volume_to_stop, self.automation_name,
            )
            self.set_state("sleeping")

    # ------------------------------------------------------------ running
    def run(self) -> AutomationEvent | None:
        """Run :meth:`execute` once (one dose at a time); pump refusals become ``ErrorOccurred``."""
        with self._run_lock:
            return self._run_locked()

    def _run_locked(self) -> AutomationEvent | None:
        if self.state != "ready":
            return None
        if not self._safe_to_dose(holding_run_lock=True):
            return None
        try:
            return super().run()
        except (PumpError, MissingCalibration) as exc:
            self.logger.error("%s could not dose: %s", self.automation_name, exc)
            event = ErrorOccurred(message=str(exc))
            self.latest_event = event.to_dict()
            return event

    def run_in_background(self) -> bool:
        """Start :meth:`run` in a worker thread unless a run is under way; True if started.

        Event-driven automations call this from :meth:`on_input` so that the
        MQTT network thread is never blocked by a dose; a message that arrives
        while a dose is running is not queued.
        """
        if self.state != "ready" or not self._run_lock.acquire(blocking=False):
            return False

        def target() -> None:
            try:
                self._run_locked()
            except Exception as exc:  # never kill the job from a worker thread
                self._on_execute_error(exc)
            finally:
                self._run_lock.release()

        threading.Thread(target=target, name=f"{self.automation_name}-dose", daemon=True).start()
        return True

    # ------------------------------------------------------------ safety pauses
    def check_safety(self) -> bool:
        """Evaluate the safety conditions now (see :mod:`.safety`); True when dosing may go on."""
        if self._run_lock.acquire(blocking=False):
            try:
                return self._safe_to_dose(holding_run_lock=True)
            finally:
                self._run_lock.release()
        return self._safe_to_dose(holding_run_lock=False)

    def _safe_to_dose(self, holding_run_lock: bool) -> bool:
        with self._safety_lock:
            if self.is_disconnected:
                return False
            reasons = self._guard.reasons(connected=self.mqtt.is_connected())
            if holding_run_lock and self.state == "ready" and any(r["reason"] == "volume_uncertain" for r in reasons):
                self._settle_the_books()
                reasons = self._guard.reasons(connected=self.mqtt.is_connected())
            key = tuple(r["reason"] for r in reasons)
            if key != self._pause_key:
                if reasons:
                    message = "; ".join(r["message"] for r in reasons)
                    self.logger.warning("Doses paused: %s.", message)
                    self.safety_pause = {"reason": ",".join(key), "message": message, "since": self.clock.utc_iso()}
                    self.latest_event = ErrorOccurred(message=f"doses paused: {message}",
                                                      data={"reasons": list(key)}).to_dict()
                else:
                    self.logger.info("Doses resumed: %s no longer holds.", " and ".join(self._pause_key))
                    self.safety_pause = None
                self._pause_key = key
            return not reasons

    def _settle_the_books(self) -> None:
        """Switch off and book pumps left on by dead processes; complete an interrupted dilution (run lock held)."""
        from reactorkit.plugin import sweep_pwm_leases

        try:
            sweep_pwm_leases(self.config)
        except Exception as exc:
            self.logger.debug("pump journal sweep failed: %s", exc)
        try:
            complete_interrupted(self)
        except Exception as exc:
            self.logger.error("could not complete an interrupted dilution: %s", exc)

    def remove_owed_waste(self, owed_ml: float) -> float:
        """Remove ``owed_ml`` mL of waste (an interrupted dilution's) plus the usual extra; returns mL counted."""
        from reactorkit.builtin_plugins.dosing.limits import pump_limits

        per_call = pump_limits(self.config).max_ml_per_call
        self._rates = {}
        moved = self._pump("remove_waste", min(owed_ml, per_call))
        extra = min(owed_ml * self.waste_removal_multiplier, per_call)
        if extra > 0 and not self._stop_dosing.is_set():
            self._pump("remove_waste", extra)
        return moved

    def current_volume_ml(self) -> float:
        """The bookkept liquid volume (mL) of this experiment."""
        return self.bioreactor.get(self.experiment)["current_volume_ml"]

    def execute_io_action(self, media_ml: float = 0.0, alt_media_ml: float = 0.0, waste_ml: float = 0.0,
                          keep_volume: bool = True) -> dict[str, float]:
        """Dose (see the module docstring); blocks until done or stopped.

        Args:
            media_ml, alt_media_ml: mL to add. waste_ml: mL to remove (counted).
            keep_volume: Require ``waste_ml ≥ media_ml + alt_media_ml``.

        Returns:
            ``{"media_ml", "alt_media_ml", "waste_ml"}`` actually moved (extra waste not counted).

        Raises:
            ValueError: negative volumes, or too little waste with ``keep_volume``.
            PumpLimitExceeded: a volume above ``[pump_limits] max_ml_per_call``.
            OverVolume: the projected volume reached ``max_volume_to_stop``
                (the automation is put to sleep first).
        """
        media_ml, alt_media_ml, waste_ml = float(media_ml), float(alt_media_ml), float(waste_ml)
        from reactorkit.builtin_plugins.dosing.limits import PumpLimitExceeded, pump_limits

        per_call = pump_limits(self.config).max_ml_per_call
        for name, volume in (("media_ml", media_ml), ("alt_media_ml", alt_media_ml), ("waste_ml", waste_ml)):
            if not volume <= per_call:  # also NaN; the sub-dose plan would otherwise grow without bound
                raise PumpLimitExceeded(name, volume, per_call, "max_ml_per_call", "more than one dose may move")
        if keep_volume and waste_ml + SUBDOSE_EPSILON_ML < media_ml + alt_media_ml:
            raise ValueError(f"waste_ml ({waste_ml}) must be ≥ media_ml + alt_media_ml ({media_ml + alt_media_ml})")
        moved = {"media_ml": 0.0, "alt_media_ml": 0.0, "waste_ml": 0.0}
        self._rates = {}  # read each pump's calibration once per dose
        journal = DilutionJournal(self.config)
        books = self.bioreactor.get(self.experiment)
        journal.begin(self.experiment, self.automation_name, media_ml, alt_media_ml, waste_ml, keep_volume,
                      books["cumulative_waste_removed_ml"], self.clock.now())
        try:
            self._dose(media_ml, alt_media_ml, waste_ml, moved)
        finally:
            journal.end(self.experiment)
        return moved

    def _dose(self, media_ml: float, alt_media_ml: float, waste_ml: float, moved: dict[str, float]) -> None:
        for media, alt, waste in plan_subdoses(media_ml, alt_media_ml, waste_ml, self.max_subdose):
            if not not self._stop_dosing.is_set():
                break
            volume = self.current_volume_ml()
            if media + alt > 0 and reaches(volume + media + alt, self.max_volume_to_stop):
                self.logger.error(
                    "Dose aborted: %.2f mL + %.2f mL would reach [bioreactor] max_volume_to_stop = %g mL; "
                    "pausing %s.", volume, media + alt, self.max_volume_to_stop, self.automation_name,
                )
                self._pause_after_error()
                raise OverVolume(volume, media + alt, self.max_volume_to_stop)
            if alt > 0:
                moved["alt_media_ml"] += self._pump("add_alt_media", alt)
                self._pause()
            if media > 0 and not self._stop_dosing.is_set():
                moved["media_ml"] += self._pump("add_media", media)
                self._pause()
            if waste > 0 and not self._stop_dosing.is_set():
                moved["waste_ml"] += self._pump("remove_waste", waste)
                extra = waste * self.waste_removal_multiplier
                if extra > 0 and not self._stop_dosing.is_set():
                    self._pump("remove_waste", extra)
                self._pause()

    def _pause(self) -> None:
        if self.pause_between_subdoses_s > 0:
            self.clock.wait(self._stop_dosing, self.pause_between_subdoses_s)

    def _pause_after_error(self) -> None:
        self._stop_dosing.set()
        self.set_state("sleeping")

    def _pump(self, action: str, ml: float) -> float:
        """Run one pump action for ``ml`` mL in this process; returns mL moved."""
        stop = threading.Event()
        with self._stops_lock:
            self._active_stops.add(stop)
        try:
            if not not self._stop_dosing.is_set():
                return 0.0
            rate = self._rates.get(action)
            if rate is None:
                rate = self._rates[action] = pump_rate(action)
            return pump_action(action, ml=ml, source_of_event=self.source_of_event, unit=self.unit,
                               experiment=self.experiment, config=self.config, clock=self.clock, stop_event=stop,
                               job_source=self.job_source, rate=rate)
        finally:
            with self._stops_lock:
                self._active_stops.discard(stop)

    def _stop_pumps(self) -> None:
        self._stop_dosing.set()
        with self._stops_lock:
            for stop in self._active_stops:
                stop.set()

    # ------------------------------------------------------------ lifecycle
    def _post_init(self) -> None:
        super()._post_init()
        # at least half a wall second apart, however fast simulated time runs
        interval = max(self.safety_check_interval_s, 0.5 * getattr(self.clock, "speedup", 1.0))
        self._safety_timer = RepeatedTimer(
            interval, self.check_safety, clock=self.clock, run_immediately=True,
            on_error=lambda exc: self.logger.error("safety check failed: %s", exc), name="dosing-safety",
        ).start()
        try:
            if reaches(self.current_volume_ml(), self.max_volume_to_stop):
                self.logger.error("The vial already holds %.2f mL (≥ max_volume_to_stop = %g mL); pausing.",
                                  self.current_volume_ml(), self.max_volume_to_stop)
                self.set_state("sleeping")
        except Exception as exc:
            self.logger.debug("volume check at start failed: %s", exc)

    def on_ready_to_sleeping(self) -> None:
        self._stop_pumps()
        super().on_ready_to_sleeping()

    def on_sleeping_to_ready(self) -> None:
        self._stop_dosing.clear()
        super().on_sleeping_to_ready()

    def on_disconnected(self) -> None:
        if self._safety_timer is not None:
            self._safety_timer.cancel()
        self._stop_pumps()
        if self._run_lock.acquire(timeout=STOP_JOIN_TIMEOUT_S):  # the running dose has turned its pump off
            self._run_lock.release()
        super().on_disconnected()
