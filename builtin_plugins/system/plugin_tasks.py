"""Plugin install/uninstall tasks of the API (domain facts §9): the framework's
:mod:`reactorkit.core.plugin_packages` (pip, default config, listing), then the
unit's running processes are told (:func:`reactorkit.plugin.after_plugin_change`: the CLI index is
rebuilt, the ``pio serve`` master gets SIGHUP so fresh workers load the new plugin set, and the
unit's jobs, such as the ingestion, load its tables and topic mappings), as ``pio plugins install`` does.
"""

from __future__ import annotations

from typing import Any

from reactorkit.plugin import install_package, installed_plugins, uninstall_package

__all__ = ["fan_out_long", "install_plugin", "installed_plugins", "uninstall_plugin"]


def _after_change(result: dict[str, Any]) -> dict[str, Any]:
    from reactorkit.plugin import after_plugin_change

    return {**result, **after_plugin_change()}


def install_plugin(name: str, source: str | None = None) -> dict[str, Any]:
    """:func:`~reactorkit.core.plugin_packages.install_package`, then reload the API's workers.

    Returns:
        Its result plus ``"web_server_reloaded"`` and ``"jobs_told"`` (bools).

    Raises:
        TaskFailed: bad name or source, or pip failed.
    """
    return _after_change(install_package(name, source))


def uninstall_plugin(name: str) -> dict[str, Any]:
    """:func:`~reactorkit.core.plugin_packages.uninstall_package`, then reload the API's workers.

    Raises:
        TaskFailed: nothing of that name is installed, or pip failed.
    """
    return _after_change(uninstall_package(name))


def fan_out_long(method: str, units: list[str], path: str, json_body: Any = None,
                 json_per_unit: dict[str, Any] | None = None, poll_minutes: float = 15.0) -> dict[str, Any]:
    """A leader fan-out whose unit tasks may take minutes (pip): polls each unit's task up to ``poll_minutes``."""
    from reactorkit.plugin import fanout

    poll_max = int(poll_minutes * 60 / fanout.POLL_INTERVAL_S)
    return fanout.fan_out(method, units, path, json_body, json_per_unit=json_per_unit, poll_max=poll_max,
                          timeout=30.0)
