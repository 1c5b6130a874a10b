"""Job start and stop latency, and the memory of an idle job process.

For each of N runs: spawn ``pio run <job>`` on the simulated vessel, time until
``$state`` = ``ready`` arrives over MQTT, send SIGTERM, time until
``disconnected`` arrives and until the process exits. Prints medians, and the
peak RSS (VmHWM) of the idle job.

Targets: under 100 ms to ready, under 150 ms SIGTERM → exit, peak RSS under
40 MB (reference, the Pioreactor software 26.11.1 on this machine class:
177 ms to ready for stirring, 254 ms for od_reading, 1.12 s to exit).

Needs mosquitto on 127.0.0.1:1883. Usage:
    python benchmarks/job_start.py [--runs 10] [--job stirring] [--job od_reading]
"""

from __future__ import annotations

import argparse
import signal
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from reactorkit.core.testing import MQTTRecorder, UnitEnv, pio_command


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def one_run(job: str, unit: UnitEnv, recorder: MQTTRecorder) -> tuple[float, float, float, float]:
    state = unit.topic(job, "$state")
    t0 = time.monotonic()
    proc = subprocess.Popen(pio_command("run", job), env=unit.env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    recorder.wait_for(state, lambda p: p == b"ready", timeout=30, since=t0)
    ready = time.monotonic() - t0
    time.sleep(0.3)  # idle
    rss = peak_rss_mb(proc.pid)
    t1 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    recorder.wait_for(state, lambda p: p == b"disconnected", timeout=30, since=t1)
    disconnected = time.monotonic() - t1
    proc.wait(30)
    exited = time.monotonic() - t1
    return ready * 1000, disconnected * 1000, exited * 1000, rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--job", action="append", help="job to measure (repeatable; default stirring and od_reading)")
    args = parser.parse_args()
    jobs = args.job or ["stirring", "od_reading"]
    unit = UnitEnv(root=Path(tempfile.mkdtemp(prefix="rk-bench-")))
    recorder = MQTTRecorder(unit.prefix)
    subprocess.run(pio_command("run", "--help"), env=unit.env(), stdout=subprocess.DEVNULL, check=True)  # build the CLI index
    print(f"{'job':<14} {'→ ready ms':>11} {'→ disconnected ms':>18} {'→ exit ms':>10} {'peak RSS MB':>12}   (median of {args.runs})")
    try:
        for job in jobs:
            rows = [one_run(job, unit, recorder) for _ in range(args.runs)]
            ready, disc, exit_, rss = (statistics.median(col) for col in zip(*rows))
            print(f"{job:<14} {ready:>11.1f} {disc:>18.1f} {exit_:>10.1f} {max(r[3] for r in rows):>12.1f}")
        print("targets: ready < 100 ms, exit < 150 ms, peak RSS < 40 MB")
    finally:
        recorder.close()


if __name__ == "__main__":
    main()
