"""``pio cluster up|status|down|broker-config``: a local simulated cluster in the background
(the cluster itself: :func:`reactorkit.plugin.start_cluster` and its neighbours)."""

from __future__ import annotations

from pathlib import Path

import click

from reactorkit.plugin import ClusterLayout, cluster_supervisor, default_cluster_root, echo_addresses, start_cluster
from reactorkit.plugin import stop_cluster

root_option = click.option(
    "--root", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="Folder of the cluster's state (default $DOT_PIOREACTOR/localcluster).",
)


@click.group("cluster", context_settings={"help_option_names": ["-h", "--help"]})
def cluster() -> None:
    """A local simulated cluster (a leader and workers on this machine)."""


@cluster.command("up")
@root_option
@click.option("--workers", type=click.IntRange(1, 8), default=2, show_default=True, help="Number of simulated workers.")
@click.option("--speedup", type=float, default=60.0, show_default=True, help="Simulated seconds per wall second.")
@click.option("--ui/--no-ui", default=True, show_default=True, envvar="REACTORKIT_UI_INSTALL",
              help="Install the web UI build from the package index when missing (env REACTORKIT_UI_INSTALL=0 "
                   "turns it off).")
def up(root: Path | None, workers: int, speedup: float, ui: bool) -> None:
    """Start the cluster in the background and print the addresses of the web UI and the leader's API."""
    layout = start_cluster(root or default_cluster_root(), workers=workers, speedup=speedup, ui=ui)
    click.echo(f"Cluster up under {layout.root}: leader {layout.leader}, workers {', '.join(layout.workers)}, "
               f"{layout.speedup:g}× simulated time.")
    echo_addresses(layout)


def _layout(root: Path | None, hint: str = "") -> tuple[Path, ClusterLayout]:
    """The folder and layout of the cluster under ``root`` (default folder when None).

    Raises:
        click.ClickException: no cluster was ever started there.
    """
    root = (root or default_cluster_root()).resolve()
    try:
        return root, ClusterLayout.load(root)
    except FileNotFoundError:
        raise click.ClickException(f"no cluster under {root}{hint}") from None


@cluster.command("status")
@root_option
def status(root: Path | None) -> None:
    """Show each unit, its address and each supervised process."""
    root, layout = _layout(root, "; start one with: pio cluster up")
    if not cluster_supervisor.is_running(layout):
        click.echo(f"Cluster under {root} is stopped.")
        return
    broker = (f"own broker on 127.0.0.1:{layout.mqtt_port}, ws {layout.mqtt_ws_port}" if layout.own_broker
              else f"MQTT prefix {layout.prefix}")
    click.echo(f"Cluster under {root} ({layout.speedup:g}× simulated time, {broker})")
    for unit in layout.units:
        role = "leader" if unit == layout.leader else "worker"
        click.echo(f"  {unit:<10} {role:<7} {layout.url(unit)}")
    for name, state in sorted(cluster_supervisor.status(layout).items()):
        click.echo(f"  {name:<24} {state}")


@cluster.command("down")
@root_option
def down(root: Path | None) -> None:
    """Stop every job and process of the cluster."""
    root, layout = _layout(root)
    stopped = stop_cluster(layout)
    click.echo(f"Cluster under {root} stopped ({stopped} job(s) stopped).")


@cluster.command("broker-config")
@click.option("--tcp-port", type=int, default=1883, show_default=True, help="MQTT over TCP (jobs, mqtt_to_db).")
@click.option("--ws-port", type=int, default=9001, show_default=True, help="MQTT over WebSocket (the web UI).")
def broker_config(tcp_port: int, ws_port: int) -> None:
    """Print a leader's mosquitto.conf: MQTT on TCP and over WebSocket (path /mqtt) for the web UI.

    On a real leader: pio cluster broker-config | sudo tee /etc/mosquitto/conf.d/reactorkit.conf
    """
    from reactorkit.plugin import mosquitto_config

    click.echo(mosquitto_config(tcp_port=tcp_port, ws_port=ws_port), nl=False)
