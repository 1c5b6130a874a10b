"""The simulation plugin's records: its two ``pio`` commands (imported only when invoked)."""

from reactorkit.plugin import CliCommandDescriptor

CLI_COMMANDS = (
    CliCommandDescriptor(
        name="demo",
        help="The main job: a simulated cluster running a real experiment.",
        command="reactorkit.builtin_plugins.simulation.demo_command:demo",
    ),
    CliCommandDescriptor(
        name="cluster",
        help="A local simulated cluster: up, status, down.",
        command="reactorkit.builtin_plugins.simulation.cluster_command:cluster",
    ),
)
