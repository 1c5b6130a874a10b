"""``pio demo``: stir a simulated vessel and watch the readings arrive over MQTT.

Starts ``pio run stirring`` on a simulated unit (its own ``$DOT_PIOREACTOR``
under ``--root``), prints each published setting as it arrives, updating in
place, changes the target RPM half-way through, and stops the job cleanly.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click

from reactorkit.core.testing import MQTTRecorder, UnitEnv, pio_command, stop_process


@click.command("demo", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--root", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="State folder of the simulated unit (default: a new temporary folder).")
@click.option("--seconds", type=float, default=20.0, show_default=True, help="Wall-clock length of the demo.")
@click.option("--speedup", type=float, default=30.0, show_default=True, help="Simulated seconds per wall second.")
def demo(root: Path | None, seconds: float, speedup: float) -> None:
    """Run stirring on a simulated vessel and show its readings live."""
    root = root or Path(tempfile.mkdtemp(prefix="reactorkit-demo-"))
    root.mkdir(parents=True, exist_ok=True)
    unit = UnitEnv(root=root, unit="demo-unit", experiment="demo", prefix="demo/", speedup=speedup)
    recorder = MQTTRecorder(unit.prefix)
    click.echo(f"Simulated unit {unit.unit!r} in {root} at {speedup:g}× speed. Ctrl-C stops it.")
    proc = subprocess.Popen(pio_command("run", "stirring", "--target-rpm", "400"), env=unit.env(),
                            stdout=subprocess.DEVNULL, stderr=open(root / "stirring.log", "wb"))
    try:
        recorder.wait_for(unit.topic("stirring", "$state"), lambda p: p == b"ready", timeout=30)
        start = time.monotonic()
        changed = False
        while time.monotonic() - start < seconds:
            if not changed and time.monotonic() - start > seconds / 2:
                recorder.publish(unit.topic("stirring", "target_rpm", "set"), "600")
                changed = True
            rpm = recorder.json_values(unit.topic("stirring", "measured_rpm"))
            target = recorder.values(unit.topic("stirring", "target_rpm"))
            duty = recorder.values(unit.topic("stirring", "duty_cycle"))
            line = (f"\rsimulated {((time.monotonic() - start) * speedup) / 60:6.1f} min | target "
                    f"{(target[-1].decode() if target else '?'):>6} RPM | measured "
                    f"{(str(rpm[-1]['measured_rpm']) if rpm else '…'):>6} RPM | duty {float(duty[-1] or 0) if duty else 0:5.1f} %")
            sys.stdout.write(line)
            sys.stdout.flush()
            time.sleep(0.25)
        sys.stdout.write("\n")
    except KeyboardInterrupt:
        sys.stdout.write("\n")
    finally:
        code = stop_process(proc, signal.SIGTERM)
        recorder.close()
    click.echo(f"Stopped cleanly (exit {code}). Logs: {root / 'logs' / 'pioreactor.log'}")
