"""Size of the unit's outbox WAL (``storage/outbox.sqlite-wal``) over repeated starts and clean stops of jobs.

Every job process of a unit keeps its messages on stored topics in the unit's outbox (SQLite, WAL mode). Starts
``--runs`` times each ``--job`` (``pio run``, no launcher, or ``--mode launcher``), SIGTERM once ``ready``, and
prints after each stop the sizes of the outbox's ``-wal`` and ``-shm`` files (KB; ``-`` for no file) and the
stop's SIGTERM → exit (ms). A WAL left by the last process to close the file is read back (its index rebuilt)
by the next process to open it: ~0.45 ms of that start at 1 MB, ~2 ms near 4 MB (SQLite's automatic checkpoint,
1000 pages).

Needs mosquitto. Usage:
    python benchmarks/outbox_wal.py [--runs 20] [--job stirring …] [--mode spawn|launcher]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import time

from job_start import PIO, Unit, cli_args, JOBS  # noqa: E402 (benchmarks/ is the script's folder)


def size_kb(path: os.PathLike) -> str:
    try:
        return f"{os.path.getsize(path) / 1024:.0f}"
    except OSError:
        return "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--job", action="append", choices=sorted(JOBS))
    parser.add_argument("--mode", choices=("spawn", "launcher"), default="spawn")
    args = parser.parse_args()
    jobs = args.job or ["stirring", "od_reading"]
    unit = Unit()
    try:
        unit.start_services([args.mode])
        storage = unit.env_.root / "storage"
        wal, shm = storage / "outbox.sqlite-wal", storage / "outbox.sqlite-shm"
        exits: list[float] = []
        print(f"{'run':>4} {'job':<12} {'-wal KB':>8} {'-shm KB':>8} {'→ exit ms':>9}")
        for i in range(args.runs):
            for job in jobs:
                experiment = unit.env_.experiment
                state = "/".join((f"{unit.env_.prefix}pioreactor", unit.env_.unit, experiment, job, "$state"))
                t0 = time.monotonic()
                proc = subprocess.Popen([*PIO, "run", job, *cli_args(JOBS[job])], env=unit.env(args.mode),
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                unit.recorder.wait_for(state, lambda p: p == b"ready", timeout=30, since=t0)
                time.sleep(0.3)
                t1 = time.monotonic()
                os.kill(proc.pid, signal.SIGTERM)
                proc.wait()  # (blocking waitpid: wait(timeout) polls, in steps up to 50 ms)
                exits.append((time.monotonic() - t1) * 1000)
                print(f"{i + 1:>4} {job:<12} {size_kb(wal):>8} {size_kb(shm):>8} {exits[-1]:>9.1f}", flush=True)
        print(f"SIGTERM → exit median {statistics.median(exits):.1f} ms; -wal after the last stop: {size_kb(wal)} KB")
    finally:
        unit.close()


if __name__ == "__main__":
    main()
