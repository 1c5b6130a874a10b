"""Plugin install/uninstall tasks of the API (domain facts §9): the framework's
:mod:`reactorkit.core.plugin_packages` (pip, default config, listing), then the
``pio serve`` master gets SIGHUP so fresh workers load the new plugin set
(descriptors and routes) and the CLI index is rebuilt.
"""

from __future__ import annotations

from typing import Any

from reactorkit.plugin import install_package, installed_plugins, uninstall_package

__all__ = ["fan_out_long", "install_plugin", "installed_plugins", "uninstall_plugin"]


def _after_change() -> bool:
    from .commands import reload_web_server

    try:
        from reactorkit.plugin import rebuild_cli_index as get_index

        get_index()  # rebuild the CLI index now that the plugin set changed
    except Exception:
        pass
    return reload_web_server()


def install_plugin(name: str, source: str | None = None) -> dict[str, Any]:
    """:func:`~reactorkit.core.plugin_packages.install_package`, then reload the API's workers.

    Returns:
        Its result plus ``"web_server_reloaded": bool``.

    Raises:
        TaskFailed: bad name or source, or pip failed.
    """
    result = install_package(name, source)
    result["web_server_reloaded"] = _after_change()
    return result


def uninstall_plugin(name: str) -> dict[str, Any]:
    """:func:`~reactorkit.core.plugin_packages.uninstall_package`, then reload the API's workers.

    Raises:
        TaskFailed: nothing of that name is installed, or pip failed.
    """
    result = uninstall_package(name)
    result["web_server_reloaded"] = _after_change()
    return result


def fan_out_long(method: str, units: list[str], path: str, json_body: Any = None,
                 json_per_unit: dict[str, Any] | None = None, poll_minutes: float = 15.0) -> dict[str, Any]:
    """A leader fan-out whose unit tasks may take minutes (pip): polls each unit's task up to ``poll_minutes``."""
    from reactorkit.plugin import fanout

    poll_max = int(poll_minutes * 60 / fanout.POLL_INTERVAL_S)
    return fanout.fan_out(method, units, path, json_body, json_per_unit=json_per_unit, poll_max=poll_max,
                          timeout=30.0)
