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
broker killed together), ``network`` (the worker's link to the broker cut),
``power`` (every process of the worker killed with SIGKILL; after the outage
its task worker, ``pio worker``, starts and restores the jobs).

With ``--chemostat`` the worker also runs a chemostat (0.5 mL every simulated
minute) and the drill prints the dosing books: media booked by the worker,
stored by the leader (``dosing_events``) and received by the simulated vessel.

Usage:
    python benchmarks/fault_drills.py [--fault all] [--outage-s 60] [--speedup 60] [--chemostat]
"""

from __future__ import annotations

import argparse
import os
import signal
import tempfile
import time
from pathlib import Path

FAULTS = ("broker", "broker-crash", "ingestion", "leader", "network", "power")
SERIES = ((("od_reading", "od2"), "od_readings", "channel = 2"),
          (("stirring", "measured_rpm"), "stirring_rates", "1 = 1"))


def _use_worker(cluster: "object") -> None:
    """Point this process at the worker (its calibrations, bookkeeping and vessel)."""
    from reactorkit.core.config import set_config

    env = cluster.env(cluster.worker_name)
    for key in ("DOT_PIOREACTOR", "HOSTNAME", "EXPERIMENT", "MQTT_TOPIC_PREFIX", "REACTORKIT_SPEEDUP",
                "REACTORKIT_CLOCK_ORIGIN", "HARDWARE"):
        os.environ[key] = env[key]
    set_config(None)


def _calibrate_pumps(cluster: "object") -> None:
    from reactorkit.builtin_plugins.dosing.calibration import pump_calibration_record
    from reactorkit.core.calibration_store import save_calibration

    _use_worker(cluster)
    for device in ("media_pump", "alt_media_pump", "waste_pump"):
        save_calibration(device, pump_calibration_record(device, 0.1, name=f"sim_{device}", unit=cluster.worker_name,
                                                         created_at="2025-01-01T00:00:00.000Z", dc=20.0),
                         set_active=True)


def _vessel_media_ml(cluster: "object") -> float:
    from reactorkit.core.clock import Clock
    from reactorkit.core.config import load_config
    from reactorkit.core.hardware.simulated import SimulatedHardware

    _use_worker(cluster)
    hardware = SimulatedHardware(load_config(), cluster.worker_name, clock=Clock(cluster.speedup, cluster.origin))
    return hardware.ground_truth()["cumulative_media_ml"]


def _dosing_books(cluster: "object") -> str:
    import sqlite3

    from reactorkit.builtin_plugins.dosing.bioreactor import BioreactorStore
    from reactorkit.core.clock import Clock
    from reactorkit.core.config import load_config
    from reactorkit.core.hardware.simulated import SimulatedHardware

    _use_worker(cluster)
    config = load_config()
    vessel = SimulatedHardware(config, cluster.worker_name, clock=Clock(cluster.speedup, cluster.origin)).ground_truth()
    booked = BioreactorStore(config).get(cluster.experiment)["cumulative_media_added_ml"]
    with sqlite3.connect(cluster.leader_root / "storage" / "pioreactor.sqlite") as conn:
        stored = conn.execute("SELECT coalesce(sum(volume_change_ml), 0) FROM dosing_events WHERE event = 'add_media'"
                              " AND pioreactor_unit = ?", (cluster.worker_name,)).fetchone()[0]
    return (f"  media: booked by the worker {booked:.3f} mL / stored by the leader {stored:.3f} mL / received by the "
            f"vessel {vessel['cumulative_media_ml']:.3f} mL; pumps on after the stop: "
            f"{sorted(c for c, dc in vessel['pwm'].items() if dc > 0) or 'none'}")


def drill(fault: str, outage_s: float, speedup: float, base: Path, chemostat: bool = False) -> list[str]:
    import subprocess

    from reactorkit.core.fault_drills import DrillCluster, not_yet_stored, wait_until
    from reactorkit.core.testing import pio_command, stop_process

    config = "[simulation]\npump_ml_per_second = 0.5\n" if chemostat else ""
    cluster = DrillCluster(base / fault, speedup=speedup, link=(fault == "network"), redis=(fault == "power"),
                           worker_config=config)
    lines = []
    worker = None
    with cluster:
        if chemostat:
            _calibrate_pumps(cluster)
        cluster.start_ingestion()
        cluster.start_job("stirring")
        cluster.start_job("od_reading")
        if chemostat:
            cluster.start_job("dosing_automation", "--automation-name", "chemostat", "--exchange-volume-ml", "0.5",
                              "--duration", "1")
        wait_until(lambda: cluster.tally(*SERIES[0]).published >= 10, timeout=120, what="first readings")
        if chemostat:
            wait_until(lambda: _vessel_media_ml(cluster) >= 1.0, timeout=300, what="the chemostat's first doses")
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
        elif fault == "power":
            procs = [*cluster.jobs.values(), cluster.keeper]
            for proc in procs:
                os.kill(proc.pid, signal.SIGKILL)
            for proc in procs:
                proc.wait(10)
            cluster.jobs.clear()
            cluster.keeper = None
        time.sleep(outage_s)
        waiting = not_yet_stored(cluster.worker_root, cluster.leader_root, cluster.worker_name)
        if fault in ("broker", "broker-crash", "leader"):
            cluster.broker.start()
        if fault in ("ingestion", "leader"):
            cluster.start_ingestion()
        if fault == "network":
            cluster.link.restore()
        if fault == "power":  # the unit boots: its task worker restores the jobs
            worker = subprocess.Popen(pio_command("worker"), env=cluster.env(cluster.worker_name),
                                      stdout=open(cluster.worker_root / "worker.log", "wb"), stderr=subprocess.STDOUT)
            cluster.wait_state(cluster.worker_name, cluster.experiment, "od_reading", "ready", timeout=120)
        recovered = time.monotonic()
        wait_until(lambda: not_yet_stored(cluster.worker_root, cluster.leader_root, cluster.worker_name) == 0,
                   timeout=600, interval=0.5, what="everything stored")
        caught_up = time.monotonic() - recovered
        if chemostat:
            media = _vessel_media_ml(cluster)
            wait_until(lambda: _vessel_media_ml(cluster) >= media + 1.0, timeout=300, what="doses after the fault")
        cluster.stop_jobs()
        subprocess.run(pio_command("kill", "--all-jobs"), env=cluster.env(cluster.worker_name), capture_output=True,
                       timeout=60)  # restored jobs are not children of this script
        time.sleep(2)
        if worker is not None:
            stop_process(worker)
        wait_until(lambda: not_yet_stored(cluster.worker_root, cluster.leader_root, cluster.worker_name) == 0,
                   timeout=600, interval=0.5, what="everything stored after the stop")
        lines.append(f"{fault}: outage {recovered - t0:.0f} s wall "
                     f"({outage_s * speedup / 3600:.1f} h simulated); {waiting} message(s) waited in the worker's "
                     f"outbox; all stored {caught_up:.1f} s after the recovery")
        for series in SERIES:
            lines.append("  " + cluster.tally(*series).line())
        if chemostat:
            lines.append(_dosing_books(cluster))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fault", choices=(*FAULTS, "all"), default="all")
    parser.add_argument("--outage-s", type=float, default=60.0, help="wall seconds the fault lasts (600 = 10 min)")
    parser.add_argument("--speedup", type=float, default=60.0, help="simulated seconds per wall second")
    parser.add_argument("--chemostat", action="store_true", help="also dose, and print the dosing books")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="rk-drills-"))
    print(f"load average {os.getloadavg()[0]:.2f} ({os.cpu_count()} cores); folder {base}")
    for fault in FAULTS if args.fault == "all" else (args.fault,):
        for line in drill(fault, args.outage_s, args.speedup, base, chemostat=args.chemostat):
            print(line, flush=True)


if __name__ == "__main__":
    main()
