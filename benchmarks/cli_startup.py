"""Wall time of ``pio --help`` and ``pio run --help`` (median of N runs), beside the interpreter floor.

Target: ``pio --help`` within 2× the interpreter floor (``python -c pass``, run
just before each command, so that both see the same load); reference, the
Pioreactor software 26.11.1 on this machine class: 332 ms with a floor of 33–38 ms.

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


def measure(cmd: list[str], runs: int, env: dict[str, str], warm: bool = True) -> list[float]:
    times = []
    if warm:
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
        ("pio --help", [pio, "--help"], 2.0),
        ("pio run --help", [pio, "run", "--help"], None),
        ("pio run stirring --help", [pio, "run", "stirring", "--help"], None),
    ]
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; median of {args.runs} runs, "
          "× floor = median of the ratios to a `python -c pass` run just before")
    print(f"{'command':<26} {'median ms':>10} {'min ms':>8} {'max ms':>8} {'× floor':>8}  target")
    floor_cmd = [sys.executable, "-c", "pass"]
    for name, cmd, target in rows:
        pairs = [(measure(floor_cmd, 1, env, warm=False)[0], measure(cmd, 1, env, warm=False)[0]) for _ in range(args.runs)]
        t = [b for _, b in pairs]
        ratio = statistics.median(b / a for a, b in pairs)
        verdict = "" if target is None else (f"within {target:.0f}× floor " + ("met" if ratio <= target else "MISSED"))
        print(f"{name:<26} {statistics.median(t):>10.1f} {min(t):>8.1f} {max(t):>8.1f} {ratio:>8.2f}  {verdict}")


if __name__ == "__main__":
    main()
