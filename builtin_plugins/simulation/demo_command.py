"""``pio demo``: the main job — a simulated cluster running a real experiment through the API."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import click


def _interrupt(signum: int, frame: object) -> None:
    """SIGTERM behaves like Ctrl-C: the cluster is stopped cleanly either way."""
    raise KeyboardInterrupt


@click.command("demo", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--root", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder of the cluster's state (default $DOT_PIOREACTOR/demo).")
@click.option("--hours", type=click.FloatRange(min=0.5), default=24.0, show_default=True,
              help="Simulated length of the experiment, in hours.")
@click.option("--minutes", type=click.FloatRange(min=0.5), default=4.0, show_default=True,
              help="Wall-clock time the experiment should take, in minutes (sets the speed-up).")
@click.option("--workers", type=click.IntRange(1, 4), default=2, show_default=True,
              help="Simulated workers: the first runs a turbidostat, the second a chemostat.")
@click.option("--replay", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Feed a recorded OD file (CSV, .gz ok) through the last worker instead of a simulated vessel.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where the export zip and the plot are written (default: the root folder).")
@click.option("--keep-running", is_flag=True, default=False,
              help="After the results, keep the cluster up (to explore the API and the web UI) until Ctrl-C.")
@click.option("--ui/--no-ui", default=True, show_default=True, envvar="REACTORKIT_UI_INSTALL",
              help="Install the web UI build from the package index when missing (env REACTORKIT_UI_INSTALL=0 turns it off).")
def demo(root: Path | None, hours: float, minutes: float, workers: int, replay: Path | None, out_dir: Path | None,
         keep_running: bool, ui: bool) -> None:
    """Run a simulated cluster (a leader and workers) through a real experiment.

    Everything goes through the leader's REST API: create an experiment, assign
    the workers, calibrate their pumps and OD photodiodes with calibration sessions, start an
    experiment profile (stirring, od_reading, growth_rate_calculating, a
    turbidostat and a chemostat), show progress, then export the data and plot it.
    It stops every process and exits 0 once the results are written (with
    --keep-running, only at Ctrl-C). Ctrl-C at any time stops everything.
    Each run names a new experiment (and its calibrations) in the same state folder.
    """
    from reactorkit.plugin import dot_pioreactor

    from .experiment import DemoError, run_experiment

    root = (root or dot_pioreactor() / "demo").resolve()
    interactive = sys.stdout.isatty()

    def wait_for_ctrl_c(result: object) -> None:
        click.echo("The cluster keeps running: press Ctrl-C to stop it.")
        try:
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            pass

    signal.signal(signal.SIGTERM, _interrupt)
    try:
        run_experiment(root, hours=hours, minutes=minutes, workers=workers, out_dir=out_dir, replay=replay,
                       echo=click.echo, live=interactive, keep_running=wait_for_ctrl_c if keep_running else None,
                       ui=ui)
    except KeyboardInterrupt:
        click.echo("Interrupted; the cluster was stopped.")
        sys.exit(130)
    except DemoError as exc:
        raise click.ClickException(f"{exc}\nLogs: {root / 'logs'}") from exc
