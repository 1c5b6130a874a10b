"""System: the API server (``pio serve``), plugins, system commands, the state folder, archives, uploads,
USB drives, the local access point and the hardware check (built-in plugin)."""

from reactorkit.plugin import yields

from .descriptors import CLI_COMMANDS, ROUTES

register_routes = yields(*ROUTES)
register_cli_commands = yields(*CLI_COMMANDS)
