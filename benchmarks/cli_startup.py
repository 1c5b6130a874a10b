"""Wall time of ``pio --help`` and ``pio run --help`` (median of N runs).

Targets: under 50 ms for ``pio --help`` and under 80 ms for ``pio run --help``
(reference, the Pioreactor software 26.11.1 on this machine class: 156 ms and
196 ms; a bare ``python -c pass`` is about 13 ms).

Usage: python benchmarks/cli_startup.py [--runs 15]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def measure(cmd: list[str], runs: int, env: dict[str, str]) -> list[float]:
    times = []
    subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, check=True)  # warm the OS caches
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, check=True)
        times.append((time.perf_counter() - t0) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    pio = shutil.which("pio", path=os.path.dirname(sys.executable)) or shutil.which("pio")
    if pio is None:
        sys.exit("pio is not installed in this environment (pip install -e .)")
    env = {**os.environ, "DOT_PIOREACTOR": tempfile.mkdtemp(prefix="rk-bench-")}
    rows = [
        ("python -c pass", [sys.executable, "-c", "pass"], None),
        ("pio --help", [pio, "--help"], 50.0),
        ("pio run --help", [pio, "run", "--help"], 80.0),
        ("pio run stirring --help", [pio, "run", "stirring", "--help"], None),
    ]
    print(f"{'command':<26} {'median ms':>10} {'min ms':>8} {'max ms':>8}  target")
    for name, cmd, target in rows:
        t = measure(cmd, args.runs, env)
        verdict = "" if target is None else (f"< {target:.0f} ms " + ("met" if statistics.median(t) < target else "MISSED"))
        print(f"{name:<26} {statistics.median(t):>10.1f} {min(t):>8.1f} {max(t):>8.1f}  {verdict}")


if __name__ == "__main__":
    main()
