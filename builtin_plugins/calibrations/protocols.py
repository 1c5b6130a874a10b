"""Which calibration protocols this unit offers, and a session engine over them.

Protocols come from every plugin's ``register_calibration_protocols`` hook
(:class:`~reactorkit.core.descriptors.CalibrationProtocolDescriptor`, whose
``session_class`` is the step machine). The registry is built once per process
from the installed plugins; :func:`use_registry` replaces it (the API app and
tests pass their own).
"""

from __future__ import annotations

import threading
from typing import Any

from reactorkit.plugin import CalibrationProtocolDescriptor, resolve_reference as resolve

_registry: Any = None
_lock = threading.Lock()


def use_registry(registry: Any) -> None:
    """Use ``registry`` (a :class:`reactorkit.core.plugins.Registry`) instead of the installed plugins; None resets."""
    global _registry
    with _lock:
        _registry = registry


def registry() -> Any:
    """The plugin registry protocols are read from (installed plugins unless :func:`use_registry` was called)."""
    global _registry
    with _lock:
        if _registry is None:
            from reactorkit.plugin import Registry

            _registry = Registry.installed()
        return _registry


def descriptors() -> list[CalibrationProtocolDescriptor]:
    """Protocol descriptors sorted by (target_device, priority, title)."""
    found = list(registry().calibration_protocols.values())
    return sorted(found, key=lambda d: (d.target_device, d.priority, d.title))


def _fill(text: str, device: str) -> str:
    return text.replace("{device}", device.replace("_", " "))


def protocol_dict(descriptor: CalibrationProtocolDescriptor) -> dict[str, Any]:
    """The contract's JSON: ``{id, target_device, protocol_name, priority, title, description, requirements}``
    with ``{device}`` in the texts replaced by the device's name (underscores as spaces)."""
    device = descriptor.target_device
    return {
        "id": descriptor.id,
        "target_device": device,
        "protocol_name": descriptor.protocol_name,
        "priority": descriptor.priority,
        "title": _fill(descriptor.title, device),
        "description": _fill(descriptor.description, device),
        "requirements": [_fill(r, device) for r in descriptor.requirements],
    }


def protocol_dicts() -> list[dict[str, Any]]:
    """Every protocol as :func:`protocol_dict`, sorted by (target_device, priority, title)."""
    return [protocol_dict(d) for d in descriptors()]


def factories() -> dict[tuple[str, str], Any]:
    """``{(target_device, protocol_name): device -> protocol}`` for the session engine."""
    out: dict[tuple[str, str], Any] = {}
    for d in descriptors():
        if d.session_class is None:
            continue
        out[(d.target_device, d.protocol_name)] = (lambda cls: lambda device: resolve(cls)(device))(d.session_class)
    return out


def make_engine(*, unit: str | None = None, config: Any = None, runner: Any = None) -> Any:
    """A :class:`~reactorkit.core.calibration_sessions.SessionEngine` for this unit.

    Args:
        unit: Unit name (default ``$HOSTNAME``). config: Merged config.
        runner: Action runner (default :class:`~.actions.ActionRunner` per ``[calibrations] action_runner``).
    """
    from reactorkit.builtin_plugins.calibrations.actions import ActionRunner
    from reactorkit.plugin import SessionEngine
    from reactorkit.plugin import get_config, get_unit_name

    config = config or get_config()
    unit = unit or get_unit_name()
    runner = runner or ActionRunner(unit=unit, config=config)
    return SessionEngine(factories(), runner=runner, unit=unit, config=config)
