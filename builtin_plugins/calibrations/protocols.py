"""Which calibration protocols this unit offers, and a session engine over them.

Protocols come from every plugin's ``register_calibration_protocols`` hook
(:class:`~reactorkit.core.descriptors.CalibrationProtocolDescriptor`, whose
``session_class`` is the step machine), read from the plugin registry the caller
passes: a route's ``context.registry`` (the app's), the CLI's registry of the
command being run (:func:`reactorkit.builtin_plugins.calibrations.cli.registry`).
Nothing here keeps a registry of its own.
"""

from __future__ import annotations

from typing import Any

from reactorkit.plugin import CalibrationProtocolDescriptor, resolve_reference as resolve


def descriptors(registry: Any) -> list[CalibrationProtocolDescriptor]:
    """Protocol descriptors of ``registry`` (a :class:`~reactorkit.plugin.Registry`), sorted by
    (target_device, priority, title)."""
    found = list(registry.calibration_protocols.values())
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


def protocol_dicts(registry: Any) -> list[dict[str, Any]]:
    """Every protocol of ``registry`` as :func:`protocol_dict`, sorted by (target_device, priority, title)."""
    return [protocol_dict(d) for d in descriptors(registry)]


def factories(registry: Any) -> dict[tuple[str, str], Any]:
    """``{(target_device, protocol_name): device -> protocol}`` of ``registry``'s protocols, for the session
    engine."""
    out: dict[tuple[str, str], Any] = {}
    for d in descriptors(registry):
        if d.session_class is None:
            continue
        out[(d.target_device, d.protocol_name)] = (lambda cls: lambda device: resolve(cls)(device))(d.session_class)
    return out


def make_engine(registry: Any, *, unit: str | None = None, config: Any = None, runner: Any = None) -> Any:
    """A :class:`~reactorkit.core.calibration_sessions.SessionEngine` for this unit over ``registry``'s protocols.

    Args:
        registry: The plugin registry whose protocols the engine runs.
        unit: Unit name (default ``$HOSTNAME``). config: Merged config (default this unit's).
        runner: Action runner (default :class:`~.actions.ActionRunner` per ``[calibrations] action_runner``).
    """
    from reactorkit.builtin_plugins.calibrations.actions import ActionRunner
    from reactorkit.plugin import SessionEngine
    from reactorkit.plugin import get_config, get_unit_name

    config = config or get_config()
    unit = unit or get_unit_name()
    runner = runner or ActionRunner(unit=unit, config=config)
    return SessionEngine(factories(registry), runner=runner, unit=unit, config=config)
