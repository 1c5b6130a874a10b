"""System: the API server (``pio serve``), plugins, system commands, the state folder, archives, uploads,
USB drives, the local access point, the hardware check and each unit's ``monitor`` job (built-in plugin)."""

from reactorkit.plugin import yields

from .descriptors import CLI_COMMANDS, MONITOR, ROUTES

register_jobs = yields(MONITOR)
register_routes = yields(*ROUTES)
register_cli_commands = yields(*CLI_COMMANDS)
