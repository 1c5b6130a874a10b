"""What the durable web UI install costs: ``install_ui`` from a wheel on disk, with its fsyncs and without.

:func:`reactorkit.core.webui.build.install_ui` flushes every extracted file and folder to disk before the
build's rename, and the folder after it. This script installs the same build ``--rounds`` times each way,
alternating, into fresh folders under ``--dir`` (on the disk to measure: a tmpfs syncs for free), and prints the
median and spread of each in milliseconds, and the difference. "Without" replaces ``os.fsync`` with a function
that does nothing (the install's work otherwise unchanged), so it also skips the 2 fsyncs the install made before
it synced the build (the record's file and folder, :func:`~reactorkit.core.paths.atomic_write`); the download
(``pip download``) is not measured.

The build is taken from ``--build`` (a folder holding ``index.html``, e.g. an installed
``$DOT_PIOREACTOR/ui/<version>``), packed into a wheel-shaped zip as the ``pioreactor`` wheel holds it
(``pioreactor/web/static/…``, deflated). ``pioreactor`` 26.11.1's build: 193 files in 4 folders, 3.5 MB on disk.

Usage: ``python benchmarks/ui_install.py --build ~/.pioreactor/ui/26.11.1 [--rounds 10] [--dir DIR]``
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from machine import conditions  # noqa: E402 (benchmarks/ is the script's folder)


def pack(build: Path, folder: Path, version: str = "0.0.0") -> Path:
    """A wheel-shaped zip of the build folder ``build`` (under ``pioreactor/web/static/``) in ``folder``."""
    wheel = folder / f"pioreactor-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(build.rglob("*")):
            if path.is_file():
                archive.write(path, "pioreactor/web/static/" + path.relative_to(build).as_posix())
    return wheel


def install_ms(wheel: Path, base: Path, durable: bool) -> float:
    """Milliseconds of one ``install_ui(wheel=…)`` into a fresh ``$DOT_PIOREACTOR`` under ``base`` (removed after)."""
    from reactorkit.core.webui import build

    dot = Path(tempfile.mkdtemp(prefix="dot-", dir=base))
    os.environ["DOT_PIOREACTOR"] = str(dot)
    real_fsync = os.fsync
    if not durable:
        os.fsync = lambda fd: None  # type: ignore[assignment]
    try:
        started = time.perf_counter()
        build.install_ui(wheel=wheel)
        return (time.perf_counter() - started) * 1000
    finally:
        os.fsync = real_fsync
        shutil.rmtree(dot, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", type=Path, required=True, help="a UI build folder (holding index.html)")
    parser.add_argument("--rounds", type=int, default=10, help="installs each way")
    parser.add_argument("--dir", type=Path, default=None, help="where to install (default: the system's temporary folder)")
    args = parser.parse_args()
    if not (args.build / "index.html").is_file():
        sys.exit(f"{args.build} holds no index.html")
    base = Path(tempfile.mkdtemp(prefix="rk-bench-ui-", dir=args.dir))
    try:
        wheel = pack(args.build, base)
        files = sum(1 for p in args.build.rglob("*") if p.is_file())
        folders = 1 + sum(1 for p in args.build.rglob("*") if p.is_dir())
        print(f"build: {files} files in {folders} folders, wheel {wheel.stat().st_size / 1e6:.1f} MB; installing into {base}")
        install_ms(wheel, base, True)  # warm-up: imports, page cache of the wheel
        times: dict[bool, list[float]] = {True: [], False: []}
        for _ in range(args.rounds):
            for durable in (False, True):
                times[durable].append(install_ms(wheel, base, durable))
        for durable, label in ((False, "without fsync"), (True, "durable (fsync)")):
            t = sorted(times[durable])
            print(f"  {label:<16} median {statistics.median(t):7.1f} ms  (min {t[0]:.1f}, max {t[-1]:.1f})")
        slower = statistics.median(times[True]) - statistics.median(times[False])
        print(f"  durable install: +{slower:.1f} ms ({statistics.median(times[True]) / statistics.median(times[False]):.1f}×)"
              f"   [{conditions()}]")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
