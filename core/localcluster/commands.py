"""``pio cluster up|status|down``: a local simulated cluster in the background."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from typing import Callable

import click

from reactorkit.core.localcluster import supervisor
from reactorkit.core.localcluster.layout import ClusterLayout
from reactorkit.core.paths import dot_pioreactor

REGISTRY_FILE = Path("storage") / "local_intermittent_pioreactor_metadata.sqlite"
SIMULATED_MODEL = {"model_name": "pioreactor_20ml", "model_version": "1.5"}  # a 20 mL vessel, as simulated


def default_root() -> Path:
    """``$DOT_PIOREACTOR/localcluster`` (``~/.pioreactor/localcluster`` by default)."""
    return dot_pioreactor() / "localcluster"


root_option = click.option(
    "--root", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="Folder of the cluster's state (default $DOT_PIOREACTOR/localcluster).",
)


ui_option = click.option(
    "--ui/--no-ui", default=True, show_default=True, envvar="REACTORKIT_UI_INSTALL",
    help="Install the web UI build from the package index when missing (env REACTORKIT_UI_INSTALL=0 turns it off).",
)


def echo_addresses(layout: ClusterLayout, echo: Callable[[str], None] = click.echo) -> None:
    """Print where the web UI, the API and the broker of ``layout`` are, and how to use the admin token."""
    token = layout.admin_token()
    if layout.ui_dir:
        echo(f"Web UI:     {layout.url()}/login#token={token}  (open it in a browser; it logs you in)")
    else:
        echo(f"Web UI:     not installed (install it with `pio ui install`, then start the cluster again)")
    echo(f"Leader API: {layout.url()}  (docs at {layout.url()}/api/docs)")
    echo(f"API token:  admin, kept in {layout.admin_token_file}; try:")
    echo(f"            curl -H \"Authorization: Bearer $(cat {layout.admin_token_file})\" {layout.url()}/api/workers")
    if layout.own_broker:
        echo(f"MQTT:       127.0.0.1:{layout.mqtt_port}, WebSocket ws://127.0.0.1:{layout.mqtt_ws_port}/mqtt")


def wait_until_healthy(layout: ClusterLayout, timeout_s: float = 60.0) -> None:
    """Block until every unit answers ``/unit_api/health``.

    Raises:
        TimeoutError: a unit did not answer in time (names it and its log).
    """
    import httpx

    deadline = time.monotonic() + timeout_s
    for unit in layout.units:
        while True:
            try:
                if httpx.get(f"{layout.url(unit)}/unit_api/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{unit}'s API did not answer; see {layout.root / 'logs' / (unit + '-api.log')}")
            time.sleep(0.2)


def start_cluster(root: Path, *, workers: int = 2, speedup: float = 60.0,
                  replay: dict[str, str] | None = None, ui: bool = False,
                  echo: Callable[[str], None] = click.echo) -> ClusterLayout:
    """Set up the cluster under ``root`` and start its processes; returns its layout.

    ``replay`` maps units to recorded OD files they replay instead of simulating a vessel.
    With ``ui``, the web UI build is installed first when missing (:func:`ensure_ui`; an
    unreachable package index is reported through ``echo`` and the cluster starts without it).

    Raises:
        click.ClickException: it is already running.
    """
    root = root.resolve()
    if (root / "cluster.json").exists():
        old = ClusterLayout.load(root)
        if supervisor.is_running(old):
            raise click.ClickException(f"a cluster is already running under {root}; stop it with: pio cluster down --root {root}")
    layout = ClusterLayout.new(root, workers=[f"worker{i + 1}" for i in range(workers)], speedup=speedup, replay=replay)
    if ui:
        from reactorkit.core.webui.build import ensure_ui

        build = ensure_ui(echo=echo)
        layout.ui_dir = str(build) if build is not None else ""
    layout.write()
    layout.provision_tokens()
    supervisor.start(layout)
    try:
        if layout.own_broker:
            from reactorkit.core.localcluster.broker import wait_for_port

            wait_for_port(layout.mqtt_port)
        wait_until_healthy(layout)
        _register_workers(layout)
    except Exception:
        stop_cluster(layout)
        raise
    return layout


def _register_workers(layout: ClusterLayout) -> None:
    """Put the simulated workers in the leader's inventory, as the model the simulated vessel follows."""
    import httpx

    for worker in layout.workers:
        response = httpx.put(f"{layout.url()}/api/workers", json={"pioreactor_unit": worker, **SIMULATED_MODEL},
                             headers=layout.headers(), timeout=10)
        if response.status_code >= 400 and response.status_code != 409:
            raise click.ClickException(f"could not add {worker} to the inventory: {response.text}")


def _running_job_pids(layout: ClusterLayout, exclude: set[int]) -> list[int]:
    import sqlite3

    pids: list[int] = []
    for unit in layout.units:
        path = layout.unit_dir(unit) / REGISTRY_FILE
        if not path.exists():
            continue
        with sqlite3.connect(path, timeout=15) as conn:
            pids += [row[0] for row in conn.execute("SELECT pid FROM pio_job_metadata WHERE is_running = 1")
                     if row[0] not in exclude]
    return pids


def _signal_jobs(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGINT)
        except OSError:
            pass


def _wait_jobs(pids: list[int], deadline: float) -> None:
    from reactorkit.core.job_registry import pid_alive

    for pid in pids:
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if pid_alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


def processes_under(root: Path) -> list[int]:
    """Pids of live processes whose ``$DOT_PIOREACTOR`` lies under ``root`` (a unit's jobs, registered or not)."""
    import psutil

    found = []
    for proc in psutil.process_iter(["pid", "environ"]):
        try:
            if (proc.info["environ"] or {}).get("DOT_PIOREACTOR", "").startswith(str(root)):
                found.append(proc.pid)
        except (psutil.Error, AttributeError):
            continue
    return found


def stop_cluster(layout: ClusterLayout, timeout_s: float = 20.0) -> int:
    """Stop the cluster; returns how many jobs were stopped.

    The registered jobs get SIGINT while supervisord stops its programs (API, task workers,
    ingestion) all at once; then whatever job a task worker started meanwhile gets SIGINT too;
    the broker goes last (so jobs still publish their last state), then supervisord. Every
    process winds down in parallel, so stopping takes about as long as the slowest one, not
    their sum. A job still alive after ``timeout_s`` is killed.
    """
    root = layout.root.resolve()
    keep = supervisor.program_pids(layout) | {os.getpid(), supervisor.supervisord_pid(layout) or 0}
    jobs = _running_job_pids(layout, exclude=keep)
    _signal_jobs(jobs)
    supervisor.stop_programs(layout, timeout_s=timeout_s)
    keep |= supervisor.program_pids(layout)  # the broker, still running
    strays = [pid for pid in processes_under(root) if pid not in keep and pid not in jobs]
    _signal_jobs(strays)
    _wait_jobs(jobs + strays, time.monotonic() + timeout_s)
    supervisor.stop(layout)
    return len(jobs) + len(strays)


@click.group("cluster", context_settings={"help_option_names": ["-h", "--help"]})
def cluster() -> None:
    """A local simulated cluster (a leader and workers on this machine)."""


@cluster.command("up")
@root_option
@click.option("--workers", type=click.IntRange(1, 8), default=2, show_default=True, help="Number of simulated workers.")
@click.option("--speedup", type=float, default=60.0, show_default=True, help="Simulated seconds per wall second.")
@ui_option
def up(root: Path | None, workers: int, speedup: float, ui: bool) -> None:
    """Start the cluster in the background and print the addresses of the web UI and the leader's API."""
    layout = start_cluster(root or default_root(), workers=workers, speedup=speedup, ui=ui)
    click.echo(f"Cluster up under {layout.root}: leader {layout.leader}, workers {', '.join(layout.workers)}, "
               f"{layout.speedup:g}× simulated time.")
    echo_addresses(layout)


@cluster.command("status")
@root_option
def status(root: Path | None) -> None:
    """Show each unit, its address and each supervised process."""
    root = (root or default_root()).resolve()
    try:
        layout = ClusterLayout.load(root)
    except FileNotFoundError:
        raise click.ClickException(f"no cluster under {root}; start one with: pio cluster up")
    if not supervisor.is_running(layout):
        click.echo(f"Cluster under {root} is stopped.")
        return
    broker = (f"own broker on 127.0.0.1:{layout.mqtt_port}, ws {layout.mqtt_ws_port}" if layout.own_broker
              else f"MQTT prefix {layout.prefix}")
    click.echo(f"Cluster under {root} ({layout.speedup:g}× simulated time, {broker})")
    for unit in layout.units:
        role = "leader" if unit == layout.leader else "worker"
        click.echo(f"  {unit:<10} {role:<7} {layout.url(unit)}")
    for name, state in sorted(supervisor.status(layout).items()):
        click.echo(f"  {name:<24} {state}")


@cluster.command("down")
@root_option
def down(root: Path | None) -> None:
    """Stop every job and process of the cluster."""
    root = (root or default_root()).resolve()
    try:
        layout = ClusterLayout.load(root)
    except FileNotFoundError:
        raise click.ClickException(f"no cluster under {root}")
    stopped = stop_cluster(layout)
    click.echo(f"Cluster under {root} stopped ({stopped} job(s) stopped).")


@cluster.command("broker-config")
@click.option("--tcp-port", type=int, default=1883, show_default=True, help="MQTT over TCP (jobs, mqtt_to_db).")
@click.option("--ws-port", type=int, default=9001, show_default=True, help="MQTT over WebSocket (the web UI).")
def broker_config(tcp_port: int, ws_port: int) -> None:
    """Print a leader's mosquitto.conf: MQTT on TCP and over WebSocket (path /mqtt) for the web UI.

    On a real leader: pio cluster broker-config | sudo tee /etc/mosquitto/conf.d/reactorkit.conf
    """
    from reactorkit.core.localcluster.broker import mosquitto_config

    click.echo(mosquitto_config(tcp_port=tcp_port, ws_port=ws_port), nl=False)
