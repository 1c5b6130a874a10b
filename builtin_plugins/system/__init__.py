"""System: the API server (``pio serve``), plugins, system commands, the state folder, archives, uploads,
USB drives, the local access point and the hardware check (built-in plugin)."""

from reactorkit.plugin import hookimpl

from .descriptors import CLI_COMMANDS, ROUTES


@hookimpl
def register_routes():
    yield from ROUTES


@hookimpl
def register_cli_commands():
    yield from CLI_COMMANDS
