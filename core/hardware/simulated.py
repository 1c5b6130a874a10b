"""The simulated backend: every job process of a unit shares one vessel model.

The model's state lives in ``$DOT_PIOREACTOR/storage/simulated_vessel_{unit}.json``;
each operation takes a file lock, loads the state, integrates it up to the
clock's "now", applies the operation and writes the state back atomically (without
``fsync``: a simulation need not survive a power cut, and an fsync per photodiode
reading would take much of a reading's wall-time budget under a speed-up). So
the stirrer, the photodiodes, pumps and the heater — driven by separate processes — act on one
physical culture, and simulated time may run faster than wall time.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from reactorkit.core.clock import Clock, get_clock
from reactorkit.core.config import Config, led_channel_of
from reactorkit.core.hardware.base import ADC_CHANNELS, LED_CHANNELS, PWM_CHANNELS, Hardware, HardwareError, check_duty_cycle
from reactorkit.core.hardware.vessel import Vessel, VesselParameters, VesselState
from reactorkit.core.paths import atomic_write, storage_dir


def parameters_from_config(config: Config) -> VesselParameters:
    """Read ``[simulation]``, ``[bioreactor]`` and ``[PWM]`` into :class:`VesselParameters`."""
    sim = config["simulation"] if config.has_section("simulation") else {}
    return VesselParameters(
        mu_max_per_hour=float(sim.get("mu_max_per_hour", 0.6)),
        ks=float(sim.get("monod_ks", 0.3)),
        substrate_in=float(sim.get("substrate_in", 2.0)),
        alt_media_inhibition=float(sim.get("alt_media_inhibition", 0.8)),
        pump_ml_per_second=float(sim.get("pump_ml_per_second", 0.5)),
        efflux_tube_volume_ml=config.getfloat("bioreactor", "efflux_tube_volume_ml", fallback=14.0),
        ambient_temperature_c=float(sim.get("ambient_temperature_c", 22.0)),
        noise_fraction=float(sim.get("noise_fraction", 0.01)),
        seed=int(os.environ.get("REACTORKIT_SEED") or sim.get("seed", 0)),
        pwm_devices=dict(config.items("PWM")) if config.has_section("PWM") else {},
    )


class VesselLock:
    """The vessel file's lock: an exclusive ``flock`` on ``path`` (``…json.lock``), taken by one thread at a time
    and re-entrant within it; the file stays in place (a ``filelock.FileLock`` on the same path, as the
    simulation's calibration helpers take, excludes and is excluded by it).

    Plain ``fcntl`` rather than ``filelock``, whose import (~20 modules) was a tenth of a job's start.

    The lock file's folder is created when missing (as ``filelock`` did; a process's hardware outlives a state
    folder replaced by an import, whose ``storage`` may be missing).

    Raises:
        OSError: the lock file or its folder cannot be created or opened (not writable).
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._thread_lock = threading.RLock()
        self._depth = 0
        self._fd: int | None = None

    def __enter__(self) -> "VesselLock":
        self._thread_lock.acquire()
        try:
            if self._depth == 0:
                try:
                    fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
                except FileNotFoundError:
                    # its folder is gone (the state folder replaced): made again, as filelock and the vessel's
                    # write (atomic_write) make it
                    os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
                    fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                except BaseException:
                    os.close(fd)
                    raise
                self._fd = fd
            self._depth += 1
        except BaseException:
            self._thread_lock.release()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            self._depth -= 1
            if self._depth == 0 and self._fd is not None:
                fd, self._fd = self._fd, None
                try:
                    fcntl.flock(fd, fcntl.LOCK_UN)
                finally:
                    os.close(fd)
        finally:
            self._thread_lock.release()


CLOCK_RESTART_S = 60.0
"""Simulated seconds the vessel's last time may be ahead of the clock before it counts as another clock's: the
processes of one cluster share a clock, and each advances the vessel under its lock, so theirs never lag it."""


class SimulatedHardware(Hardware):
    """Hardware backed by the shared :class:`Vessel` model of ``unit``.

    Args:
        config: Merged config (``[simulation]``, ``[PWM]``, ``[leds]``, ``[od_config.photodiode_channel]``).
        unit: Unit name; each unit has its own vessel file.
        clock: Time source (default: the process-wide clock).
        path: State file (default under ``$DOT_PIOREACTOR/storage``).

    PWM channels keep their duty cycle in the state file, so one left on by a
    process that died stays on until switched off (``pwm_survives_power_loss``;
    see :mod:`reactorkit.core.hardware.leases`).
    """

    pwm_survives_power_loss = True

    def faults(self) -> dict[str, Any]:
        """Simulated sensor faults: ``$DOT_PIOREACTOR/storage/simulated_faults_{unit}.json``, e.g.
        ``{"temperature_sensor": true}`` (the sensor does not answer); ``{}`` without the file."""
        try:
            return json.loads(self.path.with_name(f"simulated_faults_{self.unit}.json").read_text())
        except (FileNotFoundError, ValueError):
            return {}

    def __init__(self, config: Config, unit: str, clock: Clock | None = None, path: Path | None = None) -> None:
        self.config = config
        self.unit = unit
        self.clock = clock or get_clock(config)
        self.params = parameters_from_config(config)
        self.path = path or storage_dir() / f"simulated_vessel_{unit}.json"
        self._lock = VesselLock(str(self.path) + ".lock")

    def _initial_state(self) -> VesselState:
        sim = self.config["simulation"] if self.config.has_section("simulation") else {}
        od = float(sim.get("initial_od", 0.05))
        return VesselState(
            t=self.clock.now(),
            od=od,
            substrate=max(self.params.substrate_in - od, 0.0),
            volume_ml=self.config.getfloat("bioreactor", "initial_volume_ml", fallback=14.0),
            temperature_c=self.params.ambient_temperature_c,
        )

    @contextmanager
    def vessel(self, write: bool = True) -> Iterator[Vessel]:
        """Lock, load, advance to now; yields the :class:`Vessel`; saves on exit."""
        with self._lock:
            try:
                state = VesselState.from_dict(json.loads(self.path.read_text()))
            except (FileNotFoundError, ValueError, TypeError):
                state = self._initial_state()
            now = self.clock.now()
            if state.t > now + CLOCK_RESTART_S:
                # the vessel's last time is ahead of this clock: the cluster started again with a new clock origin
                # (simulated time runs ahead of the wall's, and starts from the wall's again): the culture carries
                # on from now, with its timed channels' ends moved along, instead of pumps waiting for the new clock
                # to catch up with the old one
                shift = state.t - now
                state.t = now
                state.pwm_off_at = {channel: at - shift for channel, at in state.pwm_off_at.items()}
            vessel = Vessel(self.params, state)
            vessel.advance(now)
            yield vessel
            if write:
                atomic_write(self.path, json.dumps(vessel.s.to_dict()), durable=False)

    HARDWARE_FIELDS = ("pwm", "pwm_off_at", "leds", "rpm", "pumped_ml", "readings")
    """State of the unit rather than of the vial: a vial change (:meth:`reset`) leaves it as it is."""

    def reset(self, **state: Any) -> None:
        """Start a fresh culture in the vial, as a vial change does (optionally overriding state fields such as
        ``od``).

        The culture (OD, substrate, volume, temperature, cumulative volumes) starts afresh; what belongs to the
        unit (:attr:`HARDWARE_FIELDS`: PWM duty cycles and their timers, LEDs, the stirrer's speed, the pump
        heads' volumes, the sensors' reading count) carries on: a vial change in the middle of an OD reading
        must not switch its IR LED off.
        """
        with self._lock:
            fresh = self._initial_state()
            try:
                current = VesselState.from_dict(json.loads(self.path.read_text()))
            except (FileNotFoundError, ValueError, TypeError):
                current = None
            if current is not None:
                for key in self.HARDWARE_FIELDS:
                    setattr(fresh, key, getattr(current, key))
            for key, value in state.items():
                setattr(fresh, key, value)
            atomic_write(self.path, json.dumps(fresh.to_dict()), durable=False)

    # ----------------------------------------------------------- actuators
    def set_pwm(self, channel: int, duty_cycle: float) -> float:
        """As :meth:`Hardware.set_pwm`; returns the vessel's clock time at which the change took effect."""
        if int(channel) not in PWM_CHANNELS:
            raise HardwareError(f"PWM channel must be one of {PWM_CHANNELS}, got {channel}")
        duty_cycle = check_duty_cycle(duty_cycle)
        with self.vessel() as v:
            v.s.pwm[str(int(channel))] = duty_cycle
            v.s.pwm_off_at.pop(str(int(channel)), None)
            return v.s.t

    def set_pwm_for(self, channel: int, duty_cycle: float, seconds: float) -> float:
        """On for exactly ``seconds`` of simulated time from now (the vessel turns it off); returns the start time."""
        if int(channel) not in PWM_CHANNELS:
            raise HardwareError(f"PWM channel must be one of {PWM_CHANNELS}, got {channel}")
        duty_cycle = check_duty_cycle(duty_cycle)
        with self.vessel() as v:
            v.s.pwm[str(int(channel))] = duty_cycle
            v.s.pwm_off_at[str(int(channel))] = v.s.t + max(0.0, float(seconds))
            started = v.s.t
        return started

    def get_pwm(self, channel: int) -> float:
        with self.vessel(write=False) as v:
            return v.s.pwm.get(str(int(channel)), 0.0)

    def set_led(self, channel: str, intensity: float) -> None:
        if channel not in LED_CHANNELS:
            raise HardwareError(f"LED channel must be one of {LED_CHANNELS}, got {channel!r}")
        intensity = check_duty_cycle(intensity)
        with self.vessel() as v:
            v.s.leds[channel] = intensity

    def get_leds(self) -> dict[str, float]:
        with self.vessel(write=False) as v:
            return dict(v.s.leds)

    # -------------------------------------------------------------- sensors
    def read_photodiodes(self, channels: tuple[int, ...] = ADC_CHANNELS) -> dict[int, float]:
        angles = {
            int(k): v for k, v in self.config.items("od_config.photodiode_channel") if v and int(k) in channels
        } if self.config.has_section("od_config.photodiode_channel") else {}
        ir = led_channel_of(self.config, "IR") or "A"
        with self.vessel() as v:
            intensity = v.s.leds.get(ir, 0.0)
            voltages = v.photodiode_voltages(angles, intensity)
        return {c: voltages.get(c, 0.0) for c in channels}

    def read_temperature(self) -> float:
        if self.faults().get("temperature_sensor"):
            raise HardwareError("simulated fault: the temperature sensor does not answer")
        with self.vessel() as v:
            return v.temperature_reading()

    def measure_rpm(self, duration_s: float = 2.0) -> float:
        self.clock.sleep(duration_s)
        with self.vessel() as v:
            return v.tachometer_rpm()

    def ground_truth(self) -> dict[str, Any]:
        with self.vessel(write=False) as v:
            return v.ground_truth()
