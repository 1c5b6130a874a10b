"""How long Ctrl-C takes to stop `pio demo` (target: under 5 s).

For each run: start ``pio demo`` (no web UI) under a temporary root, wait until its
experiment profile runs jobs on the workers (and, with ``--settle``, a few seconds more so
dosing automations are up), send SIGINT to its process group as a terminal does on Ctrl-C,
and time until ``pio demo`` exits and until no process of the cluster is left. Prints both
per run and their medians.

Usage:
    python benchmarks/demo_stop.py [--runs 3] [--settle 10]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from reactorkit.core.testing import pio_command, processes_under


def one_run(settle_s: float) -> tuple[float, float]:
    with tempfile.TemporaryDirectory(prefix="rk-demo-stop-") as tmp:
        env = {**os.environ, "DOT_PIOREACTOR": tmp, "REACTORKIT_UI_INSTALL": "0"}
        proc = subprocess.Popen(pio_command("demo", "--hours", "24", "--minutes", "4"), env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                stdin=subprocess.DEVNULL, start_new_session=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # as in a terminal
        for line in proc.stdout:
            if line.startswith("Profile started"):
                break
        time.sleep(settle_s)
        sent = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)
        proc.stdout.read()
        proc.wait()
        exited = time.monotonic() - sent
        while processes_under(Path(tmp)) and time.monotonic() - sent < 60:
            time.sleep(0.02)
        return exited, time.monotonic() - sent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--settle", type=float, default=10.0, help="seconds between the profile's start and Ctrl-C")
    args = parser.parse_args()
    exits, gones = [], []
    for i in range(args.runs):
        exited, gone = one_run(args.settle)
        exits.append(exited)
        gones.append(gone)
        print(f"run {i + 1}: pio demo exited {exited:.2f} s after Ctrl-C; last process gone after {gone:.2f} s")
    print(f"median: exit {statistics.median(exits):.2f} s, all gone {statistics.median(gones):.2f} s "
          f"(target < 5 s; load average {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
