"""Calibrations: stored curves and estimators, protocols run as sessions, their API and CLI (built-in plugin).

Protocols themselves are contributed by the plugins that own the devices
(dosing: pumps, od_reading: OD and fused OD, stirring) through
``register_calibration_protocols``; this plugin runs them.
"""

from reactorkit.plugin import hookimpl

from .descriptors import CLI_COMMANDS, ROUTES


@hookimpl
def register_routes():
    yield from ROUTES


@hookimpl
def register_cli_commands():
    yield from CLI_COMMANDS
