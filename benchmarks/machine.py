"""What every benchmark prints beside its figures: how busy the machine was when they were taken.

The interpreter floor is the median wall time of ``python -c pass`` with this
interpreter (ms): on an idle 2-core machine about 25 ms, and it grows with the
load, so a figure and the floor measured next to it can be compared across runs.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time


def interpreter_floor_ms(runs: int = 5) -> float:
    """Median wall time (ms) of ``runs`` × ``python -c pass`` with this interpreter."""
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def load_average() -> str:
    """``load average 1.23 0.98 0.75``: the 1-, 5- and 15-minute load averages now."""
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def conditions() -> str:
    """``floor … ms, load …``: the interpreter floor and the 1-minute load average, measured now."""
    return f"floor {interpreter_floor_ms():.0f} ms, load {os.getloadavg()[0]:.1f}"
