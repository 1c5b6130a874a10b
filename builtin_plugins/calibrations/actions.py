"""Hardware and saving actions that calibration steps run (domain facts §6.5).

Each action is a plain function ``action(config, unit, **payload) -> dict``
(JSON-serializable result), registered in :data:`ACTIONS` under the contract's
names (``pump``, ``od_standards_measure``, ``od_fusion_standard_observation``,
``stirring_calibration``, ``read_aux_voltage``, ``save_calibration``,
``save_estimator``) plus ``place_standard_vial``: a no-op on real hardware
(the person puts the vial in), which on the simulated backend replaces the
simulated culture with a non-growing standard of the given OD600.

:class:`ActionRunner` runs them either in this process (``inline``) or as tasks
on the unit's rq queue (``queue``, waiting up to 300 s for the result);
``auto`` queues when an rq worker is listening on this unit's queue, else runs
inline. Choose with ``[calibrations] action_runner`` (default ``auto``).
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

from reactorkit.plugin import Config, get_config, get_unit_name, led_channel_of, pwm_channel_of
from reactorkit.plugin import check_duty_cycle

logger = logging.getLogger("reactorkit.calibrations")

ACTION_TIMEOUT_S = 300
PUMP_DEVICES = {"media_pump": "media", "alt_media_pump": "alt_media", "waste_pump": "waste"}


class ActionError(RuntimeError):
    """An action cannot run (missing channel, bad payload, hardware error)."""


def _hardware(config: Config, unit: str) -> Any:
    from reactorkit.plugin import get_hardware

    return get_hardware(config, unit)


def _clock(config: Config) -> Any:
    from reactorkit.plugin import get_clock

    return get_clock(config)


def pwm_device_of_pump(device: str) -> str:
    """``media_pump`` → ``media`` (the ``[PWM]`` name). Raises ActionError for non-pumps."""
    try:
        return PUMP_DEVICES[device]
    except KeyError:
        raise ActionError(f"{device!r} is not a pump; use one of {', '.join(PUMP_DEVICES)}") from None


# ------------------------------------------------------------------------ pumps


def pump(config: Config, unit: str, *, device: str, duration_s: float, dc: float = 100.0, hz: float = 250.0) -> dict[str, Any]:
    """Run the pump ``device`` at ``dc`` % for ``duration_s`` (simulated) seconds.

    The pump's ``[PWM]`` channel is set to the duty cycle, the clock sleeps,
    then the channel is switched off (also on error). ``hz`` is recorded only
    (the hardware layer has a fixed PWM frequency).

    Returns:
        ``{"device", "duration_s", "actual_duration_s", "dc"}``: ``actual_duration_s``
        is the time between the "on" and "off" commands by the clock (a late
        wake-up from sleep makes it longer than asked; calibrations record it).
        On the simulated backend the vessel model switches the pump off itself
        after ``duration_s`` of its own time, so a sped-up clock's scheduling
        delays (a busy machine) do not lengthen the run.

    Raises:
        ActionError: not a pump, pump not in ``[PWM]``, duration ≤ 0 or > 600 s.
    """
    name = pwm_device_of_pump(device)
    channel = pwm_channel_of(config, name)
    if channel is None:
        raise ActionError(f"no [PWM] channel is assigned to {name!r}; add e.g. '2 = {name}' to [PWM]")
    duration_s = float(duration_s)
    if not 0 < duration_s <= 600:
        raise ActionError(f"pump duration must be within (0, 600] s, got {duration_s}")
    hw, clock = _hardware(config, unit), _clock(config)
    vessel = getattr(hw, "vessel", None)  # the simulated backend's model, which keeps its own time
    started = stopped = clock.now()
    try:
        # timed from the moment the "on" command is issued, so the latencies of
        # the "on" and "off" commands cancel instead of lengthening the run
        if vessel is not None:
            with vessel() as v:  # the model switches the pump off itself after duration_s of its time
                v.s.pwm[str(channel)] = check_duty_cycle(dc)
                started = v.s.t
                v.s.pwm_off_at[str(channel)] = started + duration_s
        else:
            hw.set_pwm(channel, float(dc))
        clock.sleep(max(0.0, started + duration_s - clock.now()))
        stopped = clock.now()
    finally:
        if vessel is not None:
            with vessel() as v:
                if v.s.pwm_off_at.pop(str(channel), None) is None and not v.s.pwm.get(str(channel)):
                    stopped = started + duration_s  # the model ended the run on time
                else:  # ended early (an error or an interruption)
                    v.s.pwm[str(channel)] = 0.0
                    stopped = v.s.t
        else:
            hw.set_pwm(channel, 0.0)
    return {"device": device, "duration_s": duration_s, "actual_duration_s": round(stopped - started, 4),
            "dc": float(dc)}


# --------------------------------------------------------------------------- OD


def photodiode_angles(config: Config) -> dict[int, str]:
    """``{channel: angle}`` of ``[od_config.photodiode_channel]`` without REF and empty entries."""
    if not config.has_section("od_config.photodiode_channel"):
        return {}
    out = {}
    for key, value in config.items("od_config.photodiode_channel"):
        if value and value != "REF" and key.isdigit():
            out[int(key)] = value
    return out


def place_standard_vial(config: Config, unit: str, *, od600: float) -> dict[str, Any]:
    """The person places a vial holding a standard of ``od600``.

    Real hardware: nothing to do. Simulated backend: the simulated culture is
    replaced by a non-growing sample (substrate 0) at ``od600``, which is what
    the photodiodes then see.

    Returns:
        ``{"simulated": bool, "od600"}``.
    """
    from reactorkit.plugin import backend_name

    simulated = backend_name(config) == "simulated"
    if simulated:
        hw = _hardware(config, unit)
        hw.reset(od=float(od600), substrate=0.0)
    return {"simulated": simulated, "od600": float(od600)}


def _read_with_ir(config: Config, unit: str, ir_led_intensity: float, samples: int,
                  channels: tuple[int, ...], spacing_s: float = 0.5) -> dict[int, list[float]]:
    ir = led_channel_of(config, "IR")
    if ir is None:
        raise ActionError("no [leds] channel is labelled IR; add e.g. 'A = IR' to [leds]")
    if not channels:
        raise ActionError("no photodiode angle is configured in [od_config.photodiode_channel]")
    intensity = float(ir_led_intensity)
    if not 0 < intensity <= 100:
        raise ActionError(f"ir_led_intensity must be within (0, 100] %, got {intensity}")
    hw, clock = _hardware(config, unit), _clock(config)
    readings: dict[int, list[float]] = {c: [] for c in channels}
    before = hw.get_leds()
    try:
        for led in ("A", "B", "C", "D"):
            hw.set_led(led, intensity if led == ir else 0.0)
        clock.sleep(0.1)
        for i in range(max(1, int(samples))):
            if i:
                clock.sleep(spacing_s)
            values = hw.read_photodiodes(channels)
            for c in channels:
                readings[c].append(float(values[c]))
    finally:
        for led in ("A", "B", "C", "D"):
            try:
                hw.set_led(led, float(before.get(led, 0.0)) if led != ir else 0.0)
            except Exception:  # restoring LEDs must not hide the reading's error
                logger.warning("could not restore LED %s", led)
    return readings


def od_standards_measure(config: Config, unit: str, *, ir_led_intensity: float, channels: list[int] | None = None,
                         samples: int = 5) -> dict[str, Any]:
    """Read the photodiodes ``samples`` times with the IR LED at ``ir_led_intensity`` %.

    Other LEDs are off during the reading; the IR LED is switched off after.

    Returns:
        ``{"readings": {channel: [volts…]}, "means": {channel: volts}, "angles": {channel: angle}}``
        (channels as strings, for JSON).

    Raises:
        ActionError: no IR LED, no configured angle, intensity outside (0, 100].
    """
    angles = photodiode_angles(config)
    chosen = tuple(int(c) for c in channels) if channels else tuple(sorted(angles))
    readings = _read_with_ir(config, unit, ir_led_intensity, samples, chosen)
    return {
        "readings": {str(c): v for c, v in readings.items()},
        "means": {str(c): sum(v) / len(v) for c, v in readings.items()},
        "angles": {str(c): angles.get(c, "") for c in chosen},
    }


def od_fusion_standard_observation(config: Config, unit: str, *, ir_led_intensity: float,
                                   samples: int = 5) -> dict[str, Any]:
    """All configured angles read ``samples`` times at ``ir_led_intensity``.

    Returns:
        ``{"by_angle": {angle: [volts…]}}``.
    """
    angles = photodiode_angles(config)
    readings = _read_with_ir(config, unit, ir_led_intensity, samples, tuple(sorted(angles)))
    return {"by_angle": {angles[c]: v for c, v in readings.items()}}


# --------------------------------------------------------------------- stirring


def stirring_dc_points(initial_dc: float, n_points: int = 15) -> list[float]:
    """Duty cycles for the DC-based stirring sweep (§6.4): down, up, down within 0.66–1.33 × ``initial_dc``.

    Returns:
        ``n_points`` values (%), clamped to 0–100, rounded to 3 decimals.
    """
    hi, lo = 1.33 * initial_dc, 0.66 * initial_dc
    per = max(2, n_points // 3)
    extra = n_points - 3 * per

    def line(a: float, b: float, n: int) -> list[float]:
        return [a + (b - a) * i / (n - 1) for i in range(n)]

    points = line(hi, lo, per + extra) + line(lo, hi, per) + line(hi, lo, per)
    return [round(min(max(p, 0.0), 100.0), 3) for p in points]


def stirring_calibration(config: Config, unit: str, *, initial_dc: float | None = None, n_points: int = 15,
                         settle_s: float = 3.0, measure_s: float = 2.0) -> dict[str, Any]:
    """Sweep the stirring duty cycle and measure RPM at each point.

    Args:
        initial_dc: Centre of the sweep (%); default ``[stirring.config] initial_duty_cycle`` (30).
        n_points: Number of duty cycles (15).
        settle_s, measure_s: Seconds to wait after each change, and to measure.

    Returns:
        ``{"dcs": [...], "rpms": [...]}`` with zero-RPM points dropped (§6.4).

    Raises:
        ActionError: no ``stirring`` channel in ``[PWM]``.
    """
    channel = pwm_channel_of(config, "stirring")
    if channel is None:
        raise ActionError("no [PWM] channel is assigned to 'stirring'")
    if initial_dc is None:
        initial_dc = config.getfloat("stirring.config", "initial_duty_cycle", fallback=30.0)
    hw, clock = _hardware(config, unit), _clock(config)
    dcs, rpms = [], []
    try:
        for dc in stirring_dc_points(float(initial_dc), int(n_points)):
            hw.set_pwm(channel, dc)
            clock.sleep(settle_s)
            rpm = float(hw.measure_rpm(measure_s))
            if rpm > 0:
                dcs.append(dc)
                rpms.append(rpm)
    finally:
        hw.set_pwm(channel, 0.0)
    return {"dcs": dcs, "rpms": rpms}


def read_aux_voltage(config: Config, unit: str) -> dict[str, Any]:
    """The supply voltage of the pumps/stirrer when the hardware can read it, else ``-1.0``."""
    reader = getattr(_hardware(config, unit), "read_aux_voltage", None)
    return {"voltage": float(reader()) if callable(reader) else -1.0}


# ----------------------------------------------------------------------- saving


def save_calibration(config: Config, unit: str, *, device: str, record: dict[str, Any],
                     set_active: bool = True) -> dict[str, Any]:
    """Store a calibration (and make it active). Returns ``{"path", "device", "calibration_name"}``."""
    from reactorkit.plugin import save_calibration as store

    path = store(device, record, set_active=set_active)
    return {"path": str(path), "device": device, "calibration_name": record["calibration_name"]}


def save_estimator(config: Config, unit: str, *, device: str, record: dict[str, Any],
                   set_active: bool = True) -> dict[str, Any]:
    """Store an estimator (and make it active). Returns ``{"path", "device", "estimator_name"}``."""
    from reactorkit.plugin import save_estimator as store

    path = store(device, record, set_active=set_active)
    return {"path": str(path), "device": device, "estimator_name": record["estimator_name"]}


ACTIONS: dict[str, Callable[..., dict[str, Any]]] = {
    "pump": pump,
    "place_standard_vial": place_standard_vial,
    "od_standards_measure": od_standards_measure,
    "od_fusion_standard_observation": od_fusion_standard_observation,
    "stirring_calibration": stirring_calibration,
    "read_aux_voltage": read_aux_voltage,
    "save_calibration": save_calibration,
    "save_estimator": save_estimator,
}


def run_action(name: str, payload: dict[str, Any], unit: str | None = None) -> dict[str, Any]:
    """Run action ``name`` in this process with this unit's config (what a queued task executes).

    Raises:
        ActionError: unknown action or the action's own error.
    """
    action = ACTIONS.get(name)
    if action is None:
        raise ActionError(f"unknown calibration action {name!r}; known: {', '.join(ACTIONS)}")
    return action(get_config(), unit or get_unit_name(), **payload)


# ----------------------------------------------------------------------- runner


class ActionRunner:
    """Runs actions inline or through the unit's rq queue.

    Args:
        mode: ``inline``, ``queue`` or ``auto`` (default: ``[calibrations]
            action_runner``, else ``auto``).
        unit: This unit (default ``$HOSTNAME``).
        config: Merged config (inline actions use it).
    """

    def __init__(self, mode: str | None = None, unit: str | None = None, config: Config | None = None) -> None:
        self.config = config or get_config()
        self.unit = unit or get_unit_name()
        self.mode = (mode or self.config.get("calibrations", "action_runner", fallback="auto")).strip().lower()
        if self.mode not in ("inline", "queue", "auto"):
            raise ValueError(f"[calibrations] action_runner must be inline, queue or auto; got {self.mode!r}")

    def _queue_has_worker(self) -> bool:
        try:
            from rq import Worker

            from reactorkit.plugin import get_queue

            queue = get_queue(self.unit, self.config)
            return bool(Worker.all(queue=queue))
        except Exception:
            return False

    def run(self, name: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Run ``name(**payload)``; returns its result dict.

        Raises:
            ActionError: unknown action, the action failed, or a queued one did
                not finish within 300 s.
        """
        if name not in ACTIONS:
            raise ActionError(f"unknown calibration action {name!r}")
        queued = self.mode == "queue" or (self.mode == "auto" and self._queue_has_worker())
        if not queued:
            return ACTIONS[name](self.config, self.unit, **payload)
        return self._run_queued(name, payload)

    def _run_queued(self, name: str, payload: dict[str, Any]) -> dict[str, Any]:
        from rq.job import Job

        from reactorkit.plugin import get_queue

        queue = get_queue(self.unit, self.config)
        job = queue.enqueue("reactorkit.builtin_plugins.calibrations.actions.run_action", name, payload, self.unit,
                            job_timeout=ACTION_TIMEOUT_S, result_ttl=3600, failure_ttl=3600)
        deadline = time.monotonic() + ACTION_TIMEOUT_S
        while time.monotonic() < deadline:
            job = Job.fetch(job.id, connection=queue.connection)
            status = job.get_status()
            if status == "finished":
                return job.return_value()
            if status in ("failed", "stopped", "canceled"):
                info = (job.latest_result().exc_string if job.latest_result() else "") or ""
                last = info.strip().splitlines()[-1] if info.strip() else f"task {status}"
                raise ActionError(last)
            time.sleep(0.1)
        raise ActionError(f"action {name!r} did not finish within {ACTION_TIMEOUT_S} s")
