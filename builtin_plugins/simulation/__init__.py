"""Simulation: ``pio cluster`` (a local cluster of simulated units) and ``pio demo`` (a real experiment
run on one through the leader's API) (built-in plugin)."""

from reactorkit.plugin import yields

from .descriptors import CLI_COMMANDS

register_cli_commands = yields(*CLI_COMMANDS)
