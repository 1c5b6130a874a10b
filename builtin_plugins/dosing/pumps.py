"""Pump actions: ``add_media``, ``add_alt_media``, ``remove_waste``.

Each action runs one peristaltic pump — the ``[PWM]`` channel named
``media``, ``alt_media`` or ``waste`` — at the duty cycle of its active
calibration, for one of:

* ``ml``: a volume (mL), converted to a run time with the calibration's
  y → x (a calibration is required);
* ``duration``: a run time (s); the volume is booked with the calibration's
  x → y, or the default 0.0911 mL/s at 100 % duty cycle without one;
* ``continuously``: until stopped (``$state/set`` ``disconnected``, SIGINT,
  ``pio kill``); an inflow also stops when the vial reaches
  ``[bioreactor] max_volume_to_stop``.

Run time is measured on the core clock (simulated time under a speed-up).
While the pump runs, a dosing event ``{volume_change, event,
source_of_event, timestamp}`` is published (QoS 2, not retained) on
``pioreactor/{unit}/{experiment}/dosing_events`` per chunk of run time
(0.5 s, or 0.05 s of wall time under a speed-up, whichever is longer), and a
final event brings the total to the volume of the time the pump was actually
on (so an early stop publishes a correction, possibly negative; waste volumes
are positive), stamped with the time the pump stopped (which the growth-rate
filter takes as the dose's end). Every event is applied to the vial bookkeeping
(:mod:`.bioreactor`) and the changed variables are published retained on
``bioreactor/<var>``.

Safety (domain facts §3.5, §3.8): an addition whose projected volume reaches
``[bioreactor] max_volume_to_stop`` (default 18 mL) is refused with
:class:`OverVolume`; reaching ``max_volume_to_warn`` (default 17 mL) logs a
warning. Every call is bounded by ``[pump_limits]`` (:mod:`.limits`: mL per
call and per hour, from the vial capacity): a request above them is refused
with :class:`PumpLimitExceeded`, a continuous run stops at them.

A pump left on by a process that died (signal, exception, SIGKILL, power
cut) is switched off: before the pump goes on, the run takes a PWM lease
(:mod:`reactorkit.core.hardware.leases`); the unit's watchdog (``pio worker``)
and every later pump action switch off a channel whose lease holder is gone
and book, by :func:`reconcile_lease`, the volume it moved after its last
dosing event.
"""

from __future__ import annotations

import json
import math
import signal
import threading
import time
from typing import Any, Callable

from reactorkit.builtin_plugins.dosing.bioreactor import BioreactorStore, publish_values
from reactorkit.builtin_plugins.dosing.calibration import (
    ACTION_DEVICES,
    MissingCalibration,
    PumpRate,
    missing_calibration_message,
    pump_rate,
)
from reactorkit.builtin_plugins.dosing.limits import PumpError, PumpLimitExceeded  # noqa: F401 (re-exported)

ACTIONS = tuple(ACTION_DEVICES)
CHUNK_SECONDS = 0.5  # run time per dosing event (domain facts §3.8)
MIN_CHUNK_WALL_SECONDS = 0.05  # under a speed-up, at most ~20 events per wall second
VOLUME_TOLERANCE_ML = 1e-9  # float noise of a volume summed from chunks (14 + 2 mL may add up to 15.999999999999998)


class OverVolume(PumpError):
    """An addition would take the vial to ``max_volume_to_stop`` or above.

    Attributes:
        current_volume_ml, requested_ml, max_volume_ml: The numbers behind the refusal.
    """

    def __init__(self, current_volume_ml: float, requested_ml: float, max_volume_ml: float) -> None:
        self.current_volume_ml = current_volume_ml
        self.requested_ml = requested_ml
        self.max_volume_ml = max_volume_ml
        super().__init__(
            f"Refusing to add {requested_ml:.3g} mL: the vial holds {current_volume_ml:.3g} mL and would reach "
            f"{current_volume_ml + requested_ml:.3g} mL, at or above [bioreactor] max_volume_to_stop = {max_volume_ml:g} mL. "
            f"Remove waste first, or correct current_volume_ml if the bookkeeping is wrong."
        )


def volume_limits(config: Any) -> tuple[float, float]:
    """``([bioreactor] max_volume_to_warn, max_volume_to_stop)`` in mL (defaults 17, 18)."""
    warn = config.getfloat("bioreactor", "max_volume_to_warn", fallback=17.0)
    stop = config.getfloat("bioreactor", "max_volume_to_stop", fallback=18.0)
    return warn, stop


def reaches(volume_ml: float, limit_ml: float) -> bool:
    """True if ``volume_ml`` is at or above ``limit_ml`` (mL), allowing :data:`VOLUME_TOLERANCE_ML` of float
    noise: the bookkept volume is a sum of per-chunk volumes, so a dose that brings the vial exactly to a
    limit can end a few ulps below it."""
    return volume_ml >= limit_ml - VOLUME_TOLERANCE_ML


def pwm_channel_for(config: Any, action: str) -> int:
    """The ``[PWM]`` channel (1–5) of the pump behind ``action``.

    Raises:
        PumpError: no channel is mapped to the pump's device (``media``, ``alt_media``, ``waste``).
    """
    from reactorkit.plugin import pwm_channel_of

    device = ACTION_DEVICES[action][0]
    channel = pwm_channel_of(config, device)
    if channel is None:
        raise PumpError(
            f"No PWM channel drives the {device} pump: add a line '<channel> = {device}' to the [PWM] section of "
            f"config.ini (channels 1-5)."
        )
    return channel


def _check_request(action: str, ml: float | None, duration: float | None, continuously: bool) -> None:
    if action not in ACTION_DEVICES:
        raise PumpError(f"unknown pump action {action!r}; use one of {', '.join(ACTIONS)}")
    given = [name for name, value in (("ml", ml), ("duration", duration)) if value is not None]
    if continuously:
        given.append("continuously")
    if len(given) != 1:
        raise PumpError(f"{action}: give exactly one of --ml, --duration and --continuously (got {', '.join(given) or 'none'})")
    for name, value in (("ml", ml), ("duration", duration)):
        if value is not None and (not math.isfinite(float(value)) or float(value) < 0):
            raise PumpError(f"{action}: --{name} must be a finite number ≥ 0, got {value!r}")


def pump_action(
    action: str,
    *,
    ml: float | None = None,
    duration: float | None = None,
    continuously: bool = False,
    source_of_event: str = "CLI",
    unit: str | None = None,
    experiment: str | None = None,
    config: Any = None,
    clock: Any = None,
    hardware: Any = None,
    stop_event: threading.Event | None = None,
    job_source: str | None = None,
    on_event: Callable[[dict[str, Any], dict[str, float]], None] | None = None,
    rate: PumpRate | None = None,
) -> float:
    """Run one pump and do its bookkeeping; blocks until the pump is off.

    Args:
        action: ``add_media``, ``add_alt_media`` or ``remove_waste``.
        ml: Volume to move (mL); needs an active calibration of the pump.
        duration: Run time (s, simulated under a speed-up).
        continuously: Run until stopped (inflows stop at ``max_volume_to_stop``).
        source_of_event: ``CLI``, ``UI``, ``dosing_automation:<name>``, ``pump_calibration`` …
            (``pump_calibration`` events are not applied to the bookkeeping).
        unit, experiment, config, clock, hardware: Defaults: this unit, its
            experiment, the process-wide config, clock and hardware.
        stop_event: Set it to stop the pump early (it is also set by a
            ``$state/set`` of ``disconnected``).
        job_source: Registry ``job_source`` (default ``$JOB_SOURCE`` or ``user``).
        on_event: Called with each published event and the bookkeeping after it.
        rate: The pump's :class:`PumpRate` if the caller already has it (default: read the active calibration).

    Returns:
        The volume moved (mL) according to the calibration (or the default
        rate), for the time the pump was actually on.

    Raises:
        PumpError: bad arguments or no ``[PWM]`` channel for the pump.
        MissingCalibration: ``ml`` given but the pump has no active calibration.
        OverVolume: the addition would reach ``max_volume_to_stop``.
        JobAlreadyRunning: the same action is already running on this unit.
        ConnectionError: the MQTT broker cannot be reached.
    """
    from reactorkit.plugin import get_clock
    from reactorkit.plugin import get_config, get_experiment, get_unit_name

    _check_request(action, ml, duration, continuously)
    config = config or get_config()
    clock = clock or get_clock(config)
    unit = unit or get_unit_name()
    experiment = experiment or get_experiment()
    channel = pwm_channel_for(config, action)
    rate = rate or pump_rate(action)
    if ml is not None and not rate.is_calibrated:
        raise MissingCalibration(missing_calibration_message(rate.device))
    if ml is not None:
        run_seconds: float | None = rate.seconds_for(float(ml)) if ml > 0 else 0.0
    elif duration is not None:
        run_seconds = float(duration)
    else:
        run_seconds = None
    if run_seconds is not None and run_seconds <= 0:
        return 0.0

    from reactorkit.builtin_plugins.dosing.limits import PumpLedger, allowed_ml, pump_limits
    from reactorkit.plugin import sweep_pwm_leases as sweep

    if hardware is None:
        from reactorkit.plugin import get_hardware

        hardware = get_hardware(config, unit)
    sweep(config, hardware, clock)  # a pump a dead process left on is switched off and booked first
    store = BioreactorStore(config)
    requested_ml = None if run_seconds is None else (float(ml) if ml is not None else rate.ml_for(run_seconds))
    cap_ml = allowed_ml(pump_limits(config), PumpLedger(store.path), action, clock.now(), requested_ml,
                        source_of_event)
    warn_at, stop_at = volume_limits(config)
    is_inflow = action != "remove_waste"
    tracked = source_of_event != "pump_calibration"
    if is_inflow and tracked:
        current = store.get(experiment)["current_volume_ml"]
        if requested_ml is not None:
            if reaches(current + requested_ml, stop_at):
                raise OverVolume(current, requested_ml, stop_at)
        elif reaches(current, stop_at):
            raise OverVolume(current, 0.0, stop_at)

    from reactorkit.builtin_plugins.dosing.lifecycle import ActionLifecycle

    lifecycle = ActionLifecycle(action, unit, experiment, config=config, clock=clock, job_source=job_source,
                                stop_event=stop_event)
    try:
        runner = _PumpRun(action, rate, channel, run_seconds, source_of_event, unit, experiment, config, clock,
                          hardware, store, lifecycle, (warn_at, stop_at) if is_inflow and tracked else None, on_event,
                          cap_ml)
        return runner.run()
    finally:
        lifecycle.close()


class _PumpRun:
    """One run of one pump: PWM on, chunked events, PWM off, final correction."""

    def __init__(self, action: str, rate: PumpRate, channel: int, run_seconds: float | None, source_of_event: str,
                 unit: str, experiment: str, config: Any, clock: Any, hardware: Any, store: BioreactorStore,
                 lifecycle: Any, limits: tuple[float, float] | None,
                 on_event: Callable[[dict[str, Any], dict[str, float]], None] | None,
                 cap_ml: float | None = None) -> None:
        self.action, self.rate, self.channel = action, rate, channel
        self.run_seconds = run_seconds
        self.source_of_event = source_of_event
        self.unit, self.experiment, self.config, self.clock = unit, experiment, config, clock
        self.hardware, self.store, self.lifecycle = hardware, store, lifecycle
        self.limits = limits
        self.on_event = on_event
        self.cap_ml = cap_ml
        self.lease_id: int | None = None
        self.published_ml = 0.0
        self.warned = False
        self.stopped_at_max = False
        from reactorkit.plugin import job_topic

        self.events_topic = job_topic(unit, experiment, "dosing_events", config=config)

    def run(self) -> float:
        clock, stop = self.clock, self.lifecycle.stop_event
        logger = self.lifecycle.logger
        limit_s = self.run_seconds
        if limit_s is None and self.limits is not None:
            # a continuous inflow ends when the bookkeeping reaches max_volume_to_stop
            room = self.limits[1] - self.store.get(self.experiment)["current_volume_ml"]
            limit_s = self._seconds_for_room(room)
        capped = False
        if self.run_seconds is None and self.cap_ml is not None:
            cap_s = self._seconds_for_room(self.cap_ml)
            if limit_s is None or cap_s < limit_s:
                limit_s, capped = cap_s, True
        chunk_s = max(CHUNK_SECONDS, MIN_CHUNK_WALL_SECONDS * clock.speedup)
        t_on = clock.now()
        timed_by_hardware = False
        from reactorkit.plugin import PwmLeases

        leases = PwmLeases(self.config, self.store.path)
        self.lease_id = leases.take(
            self.channel, job_name=self.action, duty_cycle=self.rate.duty_cycle, t_on=t_on,
            until=None,  # set below when the hardware's own timer ends the run
            reconcile="reactorkit.builtin_plugins.dosing.pumps:reconcile_lease",
            details={"action": self.action, "unit": self.unit, "experiment": self.experiment,
                     "source_of_event": self.source_of_event, "published_ml": 0.0},
        )
        set_pwm_for = getattr(self.hardware, "set_pwm_for", None)
        try:
            if limit_s is not None and callable(set_pwm_for):
                # hardware with its own timer stops after exactly limit_s, however late this process wakes up
                started = set_pwm_for(self.channel, self.rate.duty_cycle, limit_s)
                if started is not None:
                    t_on, timed_by_hardware = float(started), True
                    leases.update(self.lease_id, t_on=t_on, until=t_on + limit_s)
            else:
                started = self.hardware.set_pwm(self.channel, self.rate.duty_cycle)
                if isinstance(started, (int, float)):  # the backend says when it went on (the simulated vessel)
                    t_on = float(started)
                    leases.update(self.lease_id, t_on=t_on)
        except BaseException:
            self.hardware.set_pwm(self.channel, 0.0)
            leases.release(self.lease_id)
            raise
        try:
            while not stop.is_set():
                elapsed = clock.now() - t_on
                step = chunk_s if limit_s is None else min(chunk_s, limit_s - elapsed)
                if step <= 0:
                    break
                if clock.wait(stop, step):
                    break
                elapsed = clock.now() - t_on
                if limit_s is not None and elapsed >= limit_s:
                    break
                self._publish(self.rate.ml_for(elapsed) - self.published_ml)
        finally:
            t_off = clock.now()
            took_effect = self.hardware.set_pwm(self.channel, 0.0)
            if isinstance(took_effect, (int, float)):  # when the backend switched it off (the simulated vessel)
                t_off = float(took_effect)
        on_seconds = t_off - t_on
        if timed_by_hardware:
            on_seconds = min(on_seconds, limit_s)
        total = self.rate.ml_for(on_seconds)
        if abs(total - self.published_ml) > 1e-9 or self.published_ml == 0.0:
            # stamped when the pump stopped: a process that wakes late after a run the hardware timed (a busy
            # machine at a speed-up: simulated minutes) must not date the dose by its own wake-up
            self._publish(total - self.published_ml, at=t_on + on_seconds)
        leases.release(self.lease_id)
        if capped and not stop.is_set():
            logger.error("Stopped %s at [pump_limits] (%.4g mL, the most this call may move this hour).",
                         self.action, self.cap_ml)
        elif self.run_seconds is None and self.limits is not None and not stop.is_set():
            logger.error(
                "Stopped %s: the vial reached [bioreactor] max_volume_to_stop = %g mL.", self.action, self.limits[1]
            )
        liquid = ACTION_DEVICES[self.action][2]
        verb = "Removed" if self.action == "remove_waste" else "Added"
        early = " (stopped early)" if stop.is_set() and self.run_seconds is not None else ""
        calibration = self.rate.calibration_name or "default rate 0.0911 mL/s"
        logger.info("%s %.3f mL of %s in %.2f s%s (calibration %s, source %s).", verb, total, liquid, on_seconds,
                    early, calibration, self.source_of_event)
        return total

    def _seconds_for_room(self, room_ml: float) -> float:
        if room_ml <= 0:
            return 0.0
        if self.rate.is_calibrated:
            return self.rate.seconds_for(room_ml)
        return room_ml / 0.0911

    def _book_in_transaction(self, volume_change_ml: float) -> Callable[[Any], None]:
        """What is written with the bookkeeping of one event: the hourly ledger, the lease's booked mL and heartbeat."""
        from reactorkit.builtin_plugins.dosing.limits import PumpLedger

        now = self.clock.now()

        def write(conn: Any) -> None:
            PumpLedger.record(conn, self.action, now, volume_change_ml, self.source_of_event)
            if self.lease_id is not None:
                conn.execute(
                    "UPDATE pwm_leases SET heartbeat = ?, details = json_set(details, '$.published_ml', "
                    "json_extract(details, '$.published_ml') + ?) WHERE lease_id = ?",
                    (now, volume_change_ml, self.lease_id),
                )

        return write

    def _publish(self, volume_change_ml: float, at: float | None = None) -> None:
        """Publish and book one dosing event of ``volume_change_ml`` mL, stamped ``at`` (epoch s; default now)."""
        event = {
            "volume_change": round(volume_change_ml, 6),
            "event": self.action,
            "source_of_event": self.source_of_event,
            "timestamp": self.clock.utc_iso(at) if at is not None else self.clock.utc_iso(),
        }
        self.lifecycle.publish(self.events_topic, json.dumps(event), qos=2, retain=False)
        self.published_ml += volume_change_ml
        before, after = self.store.apply(self.experiment, self.action, volume_change_ml, self.source_of_event,
                                         also=self._book_in_transaction(volume_change_ml))
        changed = [k for k in after if after[k] != before[k]]
        if changed:
            publish_values(self.lifecycle.client, self.unit, self.experiment, after, changed, self.config)
        if self.limits is not None and not self.warned and reaches(after["current_volume_ml"], self.limits[0]):
            self.warned = True
            self.lifecycle.logger.warning(
                "The vial holds %.2f mL, at or above [bioreactor] max_volume_to_warn = %g mL.",
                after["current_volume_ml"], self.limits[0],
            )
        if self.on_event is not None:
            self.on_event(event, after)


def reconcile_lease(lease: Any, t_off: float, config: Any) -> float:
    """Book what a pump moved after its last dosing event, once its dead process's lease was swept.

    The volume is the calibrated volume of ``t_off − t_on`` seconds (clock) minus
    what the run had booked (``details["published_ml"]``, kept in the same
    transaction as each event); it is applied to the vial bookkeeping and the
    hourly ledger, and published as a dosing event (``source_of_event`` of the
    run) with the changed bioreactor variables.

    Returns:
        The mL booked now (may be 0).
    """
    from reactorkit.builtin_plugins.dosing.limits import PumpLedger
    from reactorkit.plugin import mqtt as mq
    from reactorkit.plugin import get_clock

    details = lease.details
    action, experiment, unit = details["action"], details["experiment"], details["unit"]
    source = details.get("source_of_event", "CLI")
    rate = pump_rate(action)
    total = rate.ml_for(max(t_off - lease.t_on, 0.0))
    missing = total - float(details.get("published_ml", 0.0))
    store = BioreactorStore(config)
    clock = get_clock(config)
    client = mq.create_client(config=config, unit=unit)
    from reactorkit.plugin import create_logger

    create_logger(action, unit=unit, experiment=experiment, mqtt_client=client, config=config, clock=clock).warning(
        "%s was left on by a process that ended without switching it off (killed, crashed or a power cut); "
        "switched off after %.1f s; booked %.3f mL moved since its last dosing event.",
        action, t_off - lease.t_on, missing)

    def write(conn: Any) -> None:
        PumpLedger.record(conn, action, t_off, missing, source)
        conn.execute("UPDATE pwm_leases SET details = json_set(details, '$.published_ml', ?) WHERE lease_id = ?",
                     (total, lease.lease_id))

    before, after = store.apply(experiment, action, missing, source, also=write)
    event = {"volume_change": round(missing, 6), "event": action, "source_of_event": source,
             "timestamp": clock.utc_iso(t_off)}
    try:
        info = client.publish(mq.job_topic(unit, experiment, "dosing_events", config=config), json.dumps(event), qos=2)
        changed = [k for k in after if after[k] != before[k]]
        if changed:
            publish_values(client, unit, experiment, after, changed, config)
        info.wait_for_publish(5)
    finally:
        client.disconnect()
        client.loop_stop()
    return missing


def add_media(ml: float | None = None, duration: float | None = None, continuously: bool = False,
              source_of_event: str = "CLI", **kwargs: Any) -> float:
    """Pump fresh media into the vial; see :func:`pump_action`. Returns mL added."""
    return pump_action("add_media", ml=ml, duration=duration, continuously=continuously,
                       source_of_event=source_of_event, **kwargs)


def add_alt_media(ml: float | None = None, duration: float | None = None, continuously: bool = False,
                  source_of_event: str = "CLI", **kwargs: Any) -> float:
    """Pump alternative media into the vial; see :func:`pump_action`. Returns mL added."""
    return pump_action("add_alt_media", ml=ml, duration=duration, continuously=continuously,
                       source_of_event=source_of_event, **kwargs)


def remove_waste(ml: float | None = None, duration: float | None = None, continuously: bool = False,
                 source_of_event: str = "CLI", **kwargs: Any) -> float:
    """Run the waste pump (removes liquid above the efflux tube); see :func:`pump_action`. Returns mL."""
    return pump_action("remove_waste", ml=ml, duration=duration, continuously=continuously,
                       source_of_event=source_of_event, **kwargs)


# --------------------------------------------------------------------- CLI runners
def _run_cli(action: str, *, unit: str, experiment: str, config: Any, ml: float | None = None,
             duration: float | None = None, continuously: bool = False, source_of_event: str = "CLI",
             **extra: Any) -> int:
    """``pio run <action>``: run the pump in this process; SIGINT/SIGTERM stop it cleanly.

    Returns:
        0 on success, 1 when the action was refused (message on stderr).
    """
    from reactorkit.plugin import start_failure

    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, lambda *_: stop.set())
    try:
        pump_action(action, ml=ml, duration=duration, continuously=bool(continuously),
                    source_of_event=source_of_event or "CLI", unit=unit, experiment=experiment, config=config,
                    stop_event=stop)
    except Exception as exc:
        code = start_failure(action, exc, refusals=(PumpError, MissingCalibration, ValueError))
        if code is None:
            raise
        if isinstance(exc, (PumpError, MissingCalibration, ValueError)):
            _log_refusal(action, unit, experiment, config, str(exc))
        return code
    return 0


def _log_refusal(action: str, unit: str, experiment: str, config: Any, message: str) -> None:
    """Best effort: put a refused action's error in the unit's MQTT log and log file too (what the UI shows);
    not on stderr, where :func:`start_failure` has printed it as the command's one ``Error: …`` line."""
    try:
        from reactorkit.plugin import mqtt as mq
        from reactorkit.plugin import create_logger

        client = mq.create_client(config=config)
    except Exception:
        return
    try:
        create_logger(action, unit=unit, experiment=experiment, mqtt_client=client, config=config,
                      console=False).error(message)
        deadline = time.monotonic() + 2.0
        while client.want_write() and time.monotonic() < deadline:  # let the network thread send it
            time.sleep(0.005)
    except Exception:
        pass
    finally:
        client.disconnect()
        client.loop_stop()


def run_add_media(**kwargs: Any) -> int:
    """Runner of ``pio run add_media``."""
    return _run_cli("add_media", **kwargs)


def run_add_alt_media(**kwargs: Any) -> int:
    """Runner of ``pio run add_alt_media``."""
    return _run_cli("add_alt_media", **kwargs)


def run_remove_waste(**kwargs: Any) -> int:
    """Runner of ``pio run remove_waste``."""
    return _run_cli("remove_waste", **kwargs)
