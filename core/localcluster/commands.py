"""A local simulated cluster in the background: start, wait until healthy, stop (``pio cluster`` is the
simulation plugin's command over these)."""

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


def wait_until_healthy(layout: ClusterLayout, timeout_s: float = 180.0) -> None:
    """Block until every unit answers ``/unit_api/health``.

    ``timeout_s`` (seconds) is generous: on a slow board, or a machine busy with other work, starting
    every unit's API at once has taken over a minute.

    Raises:
        TimeoutError: a unit did not answer in time (names it and its log).
    """
    from reactorkit.core.cluster import wait_until_answering

    deadline = time.monotonic() + timeout_s
    for unit in layout.units:
        if not wait_until_answering(layout.url(unit), deadline):
            raise TimeoutError(f"{unit}'s API did not answer; see {layout.root / 'logs' / (unit + '-api.log')}")


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
    from contextlib import closing

    from reactorkit.core.sqlite import open_sqlite

    pids: list[int] = []
    for unit in layout.units:
        path = layout.unit_dir(unit) / REGISTRY_FILE
        if not path.exists():
            continue
        with closing(open_sqlite(path, read_only=True)) as conn:
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
