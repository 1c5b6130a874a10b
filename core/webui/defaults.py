"""The sections of ``config.ini`` the web UI reads, with the defaults a fresh leader writes.

The UI parses the leader's ``config.ini`` itself (``GET /api/config/shared``) and reads:

* ``[ui.overview.charts]``: ``chart_key = 1|0``, which charts the Overview draws. Every
  chart key the installed plugins register (``register_charts``) is switched on, so a
  plugin's chart appears with no manual editing;
* ``[ui.overview.cards]``: ``dosings``, ``event_logs``, ``profiles`` cards (1 shows);
* ``[ui.overview.settings]``: lookbacks and ``time_display_mode`` (``hours`` or ``clock_time``);
* ``[mqtt]``: ``broker_address``, ``broker_ws_port``, ``ws_protocol`` (``ws``/``wss``),
  ``username``/``password``: where it opens MQTT over WebSocket;
* ``[logging] ui_log_level``: the lowest level of the logs it shows (its pages fail without it).

The UI's INI reader ends a section at the first blank line, so sections written here
have none inside them.
"""

from __future__ import annotations

from typing import Iterable, Mapping

OVERVIEW_CARDS = {"dosings": "1", "event_logs": "1", "profiles": "1"}
LOGGING = {"ui_log_level": "INFO", "console_log_level": "INFO"}
OVERVIEW_SETTINGS = {"filtered_od_lookback_hours": "50000", "raw_od_lookback_hours": "50000",
                     "time_display_mode": "hours"}


def section(name: str, values: Mapping[str, object], comment: str = "") -> str:
    """One INI section without blank lines inside (``key = value`` per line)."""
    lines = [f"[{name}]"] + ([f"# {comment}"] if comment else [])
    lines += [f"{key} = {'' if value is None else value}" for key, value in values.items()]
    return "\n".join(lines) + "\n"


def overview_charts(chart_keys: Iterable[str]) -> dict[str, str]:
    """``{chart_key: "1"}`` for every chart key (sorted), i.e. every chart switched on."""
    return {key: "1" for key in sorted(set(chart_keys))}


def installed_chart_keys() -> list[str]:
    """Chart keys of the installed plugins (built-in and third-party), from ``register_charts``."""
    from reactorkit.core.plugins import Registry

    return list(Registry.installed().charts)


def ui_sections(chart_keys: Iterable[str] | None = None) -> str:
    """The ``[logging]`` and ``[ui.overview.*]`` sections of a fresh leader's ``config.ini``.

    Args:
        chart_keys: Charts to switch on; default every chart the installed plugins register.
    """
    keys = installed_chart_keys() if chart_keys is None else chart_keys
    return "\n".join([
        section("logging", LOGGING, "log levels: DEBUG, INFO, NOTICE, WARNING, ERROR"),
        section("ui.overview.settings", OVERVIEW_SETTINGS, "x-axis: hours or clock_time; lookbacks in hours"),
        section("ui.overview.charts", overview_charts(keys), "charts of the Overview page: 1 shows, 0 hides"),
        section("ui.overview.cards", OVERVIEW_CARDS, "cards of the Overview page: 1 shows, 0 hides"),
    ])


def mqtt_section(*, broker_address: str, broker_port: int, broker_ws_port: int, ws_protocol: str = "ws",
                 topic_prefix: str = "", username: str = "", password: str = "") -> str:
    """The ``[mqtt]`` section: the jobs' broker (``broker_address:broker_port``) and, for the UI,
    its WebSocket listener (``ws_protocol://broker_address:broker_ws_port/mqtt``)."""
    return section("mqtt", {"broker_address": broker_address, "broker_port": broker_port,
                            "broker_ws_port": broker_ws_port, "ws_protocol": ws_protocol,
                            "username": username, "password": password, "topic_prefix": topic_prefix})
