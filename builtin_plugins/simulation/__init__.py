"""Simulation: ``pio cluster`` (a local cluster of simulated units) and ``pio demo`` (a real experiment
run on one through the leader's API) (built-in plugin)."""

from reactorkit.plugin import hookimpl

from .descriptors import CLI_COMMANDS


@hookimpl
def register_cli_commands():
    yield from CLI_COMMANDS
