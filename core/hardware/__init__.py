"""The hardware layer: PWM channels, photodiode ADC, LEDs, temperature, tachometer.

Two real backends plus a replay one, chosen by ``$HARDWARE`` or ``[hardware]
backend`` (``auto | simulated | pi | replay``; ``auto`` picks ``pi`` on a
Raspberry Pi, else ``simulated``). Backends implement :class:`Hardware`; job
code never imports a backend directly.
"""

from __future__ import annotations

import os
from pathlib import Path

from reactorkit.core.config import Config, get_config, get_unit_name
from reactorkit.core.hardware.base import Hardware, HardwareError

__all__ = ["Hardware", "HardwareError", "get_hardware", "backend_name"]

_instances: dict[tuple[str, str], Hardware] = {}


def _on_raspberry_pi() -> bool:
    try:
        return "raspberry pi" in Path("/proc/device-tree/model").read_text(errors="ignore").lower()
    except OSError:
        return False


def backend_name(config: Config | None = None) -> str:
    """The backend this process uses: ``simulated``, ``pi`` or ``replay``."""
    config = config or get_config()
    name = (os.environ.get("HARDWARE") or config.get("hardware", "backend", fallback="auto")).lower()
    if name == "auto":
        return "pi" if _on_raspberry_pi() else "simulated"
    if name not in ("simulated", "pi", "replay"):
        raise HardwareError(f"unknown hardware backend {name!r}; use auto, simulated, pi or replay")
    return name


def get_hardware(config: Config | None = None, unit: str | None = None) -> Hardware:
    """The process-wide hardware of ``unit`` (default: this unit)."""
    config = config or get_config()
    unit = unit or get_unit_name()
    name = backend_name(config)
    key = (name, unit)
    if key not in _instances:
        if name == "pi":
            from reactorkit.core.hardware.pi import PiHardware

            _instances[key] = PiHardware(config)
        elif name == "replay":
            from reactorkit.core.hardware.replay import ReplayHardware

            _instances[key] = ReplayHardware(config, unit)
        else:
            from reactorkit.core.hardware.simulated import SimulatedHardware

            _instances[key] = SimulatedHardware(config, unit)
    return _instances[key]
