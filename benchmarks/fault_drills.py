"""Fault drills with long outages: what a unit published vs what the leader stored.

For each fault, a fresh cluster on a mosquitto of its own (free port, Debian's
settings: persistence on, 1000 queued messages per client): the leader runs
``mqtt_to_db_streaming``, a worker runs od_reading and stirring on the simulated
vessel at ``--speedup``; after a warm-up the fault lasts ``--outage-s`` wall
seconds (600 = the 10-minute outage of the reliability issue), then the
worker's jobs are stopped and, once the leader holds everything, each series
is counted: published (numbered by the worker's outbox as the job publishes),
stored, lost, duplicated. The outbox's defaults are used (resend after 30 s).

Faults: ``broker`` (clean restart), ``broker-crash`` (SIGKILL, nothing saved),
``ingestion`` (SIGKILL of mqtt_to_db_streaming), ``leader`` (ingestion and
broker killed together), ``network`` (the worker's link to the broker cut).

Usage:
    python benchmarks/fault_drills.py [--fault all] [--outage-s 60] [--speedup 60]
"""

from __future__ import annotations

import argparse
import os
import signal
import tempfile
import time
from pathlib import Path

FAULTS = ("broker", "broker-crash", "ingestion", "leader", "network")
SERIES = ((("od_reading", "od2"), "od_readings", "channel = 2"),
          (("stirring", "measured_rpm"), "stirring_rates", "1 = 1"))


def drill(fault: str, outage_s: float, speedup: float, base: Path) -> list[str]:
    from reactorkit.core.fault_drills import DrillCluster, not_yet_stored, wait_until

    cluster = DrillCluster(base / fault, speedup=speedup, link=(fault == "network"))
    lines = []
    with cluster:
        cluster.start_ingestion()
        cluster.start_job("stirring")
        cluster.start_job("od_reading")
        wait_until(lambda: cluster.tally(*SERIES[0]).published >= 10, timeout=120, what="first readings")
        t0 = time.monotonic()
        if fault in ("broker", "broker-crash"):
            cluster.broker.stop(signal.SIGTERM if fault == "broker" else signal.SIGKILL)
        elif fault == "ingestion":
            cluster.stop_ingestion(signal.SIGKILL)
        elif fault == "leader":
            cluster.stop_ingestion(signal.SIGKILL)
            cluster.broker.stop(signal.SIGKILL)
        elif fault == "network":
            cluster.link.cut()
        time.sleep(outage_s)
        waiting = not_yet_stored(cluster.worker_root, cluster.leader_root, cluster.worker_name)
        if fault in ("broker", "broker-crash", "leader"):
            cluster.broker.start()
        if fault in ("ingestion", "leader"):
            cluster.start_ingestion()
        if fault == "network":
            cluster.link.restore()
        recovered = time.monotonic()
        wait_until(lambda: not_yet_stored(cluster.worker_root, cluster.leader_root, cluster.worker_name) == 0,
                   timeout=600, interval=0.5, what="everything stored")
        caught_up = time.monotonic() - recovered
        cluster.stop_jobs()
        wait_until(lambda: not_yet_stored(cluster.worker_root, cluster.leader_root, cluster.worker_name) == 0,
                   timeout=600, interval=0.5, what="everything stored after the stop")
        lines.append(f"{fault}: outage {time.monotonic() - t0 - caught_up:.0f} s wall "
                     f"({outage_s * speedup / 3600:.1f} h simulated); {waiting} message(s) waited in the worker's "
                     f"outbox; all stored {caught_up:.1f} s after the recovery")
        for series in SERIES:
            lines.append("  " + cluster.tally(*series).line())
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fault", choices=(*FAULTS, "all"), default="all")
    parser.add_argument("--outage-s", type=float, default=60.0, help="wall seconds the fault lasts (600 = 10 min)")
    parser.add_argument("--speedup", type=float, default=60.0, help="simulated seconds per wall second")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="rk-drills-"))
    print(f"load average {os.getloadavg()[0]:.2f} ({os.cpu_count()} cores); folder {base}")
    for fault in FAULTS if args.fault == "all" else (args.fault,):
        for line in drill(fault, args.outage_s, args.speedup, base):
            print(line, flush=True)


if __name__ == "__main__":
    main()
