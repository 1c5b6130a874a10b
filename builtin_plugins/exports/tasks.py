"""The export tasks the leader's rq worker runs for ``POST /api/datasets/exportable/export`` and
``…/export-to-usb`` (§11).

One export at a time (a file lock); it needs ≥ 64 MB free disk, ≥ 120 MB of
available memory and a database WAL of at most 512 MB. The archive is written
as ``exports/.<name>.tmp`` and renamed to ``exports/export_<YYYYMMDDHHMMSS UTC>.zip``
under ``$DOT_PIOREACTOR``; ``GET /api/exports/<name>`` serves it. An export to
USB writes the same archive onto the leader's mounted USB drive instead. Progress
(dataset, rows written) is kept in the task's ``meta["progress"]`` while it
runs and in its result at the end.
"""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from reactorkit.plugin import fail_task as fail

MIN_FREE_DISK_BYTES = 64 * 1024 * 1024
MIN_AVAILABLE_MEMORY_BYTES = 120 * 1024 * 1024
MAX_WAL_BYTES = 512 * 1024 * 1024
DOWNLOAD_PREFIX = "/api/exports/"


def exports_dir() -> Path:
    """``$DOT_PIOREACTOR/exports`` (created on demand)."""
    from reactorkit.plugin import dot_pioreactor

    path = dot_pioreactor() / "exports"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _report(progress: dict[str, Any]) -> None:
    try:
        from rq import get_current_job

        job = get_current_job()
        if job is not None:
            job.meta["progress"] = dict(progress)
            job.save_meta()
    except Exception:  # outside a worker there is nowhere to report
        pass


def check_resources(db_path: Path, folder: Path) -> None:
    """Raise a task failure when disk, memory or WAL size would make the export unsafe."""
    import psutil

    free = shutil.disk_usage(folder).free
    if free < MIN_FREE_DISK_BYTES:
        raise fail("Not enough disk space to export.", cause=f"{free // 2**20} MB free; 64 MB are needed.",
                   remediation="Free some space (old exports in $DOT_PIOREACTOR/exports, logs) and try again.")
    available = psutil.virtual_memory().available
    if available < MIN_AVAILABLE_MEMORY_BYTES:
        raise fail("Not enough memory to export.", cause=f"{available // 2**20} MB available; 120 MB are needed.",
                   remediation="Stop some jobs and try again.")
    wal = Path(str(db_path) + "-wal")
    if wal.exists() and wal.stat().st_size > MAX_WAL_BYTES:
        raise fail("The database's write-ahead log is too large to export safely.",
                   cause=f"{wal} is {wal.stat().st_size // 2**20} MB (limit 512 MB).",
                   remediation="Wait for the database to checkpoint (or restart the leader), then try again.")


def export_datasets(datasets: list[str], experiments: list[str] | None = None, partition_by_unit: bool = False,
                    partition_by_experiment: bool = False, start_time: str | None = None,
                    end_time: str | None = None) -> dict[str, Any]:
    """Export ``datasets`` to a zip in ``$DOT_PIOREACTOR/exports`` (served at ``/api/exports/<name>``).

    Args:
        datasets: Dataset names; unknown names are skipped (listed in ``skipped``).
        experiments: Experiments to keep (empty or None: all).
        partition_by_unit, partition_by_experiment: One CSV per unit / experiment.
        start_time, end_time: Inclusive bounds, database format (UTC, ms, ``Z``).

    Returns:
        ``{"result": true, "filename", "msg": "Finished", "download_url_path", "skipped",
        "datasets": [{dataset_name, row_count}], "progress": {…}}``.

    Raises:
        TaskFailed: another export is running, resources are short, or no dataset is known.
    """
    with export_lock():
        out = write_archive(exports_dir(), datasets, experiments, partition_by_unit, partition_by_experiment,
                            start_time, end_time)
    return {"result": True, "filename": out["filename"], "msg": "Finished",
            "download_url_path": DOWNLOAD_PREFIX + out["filename"], **{k: v for k, v in out.items() if k != "filename"}}


def export_datasets_to_usb(datasets: list[str], experiments: list[str] | None = None,
                           partition_by_unit: bool = False, partition_by_experiment: bool = False,
                           start_time: str | None = None, end_time: str | None = None) -> dict[str, Any]:
    """As :func:`export_datasets`, but the zip is written onto this (leader) unit's mounted USB drive.

    The first writable USB drive (by mount point) gets ``export_<YYYYMMDDHHMMSS UTC>.zip`` at its top level,
    written as ``.<name>.tmp`` and renamed, then flushed (``os.sync``) so it may be ejected at once. The USB
    lock is held meanwhile, so the drive is not ejected half-written.

    Returns:
        ``{"result": true, "filename", "msg": "Finished", "drive": mount point, "device", "path": full path,
        "skipped", "datasets", "progress"}``.

    Raises:
        TaskFailed: no writable USB drive is mounted, another export is running, the drive has less than
            64 MB free, or writing failed (nothing is left on the drive then).
    """
    from reactorkit.builtin_plugins.system.usb import acquire_usb_lock, writable_drive

    with export_lock():
        lock = acquire_usb_lock()
        try:
            drive = writable_drive()
            if drive is None:
                raise fail("No writable USB drive is mounted on the leader.",
                           cause="GET /unit_api/usb on the leader lists no mounted drive that is not read-only.",
                           remediation="Plug a USB drive into the leader and mount it "
                                       "(POST /api/units/<leader>/usb/mount), then export again.")
            try:
                out = write_archive(Path(drive.mount_point), datasets, experiments, partition_by_unit,
                                    partition_by_experiment, start_time, end_time)
            except OSError as exc:
                raise fail("Writing the export to the USB drive failed.", cause=f"{type(exc).__name__}: {exc}",
                           remediation="Check that the drive is still plugged in and not full, then try again.") \
                    from None
            os.sync()
        finally:
            lock.release()
    return {"result": True, "filename": out["filename"], "msg": "Finished", "drive": drive.mount_point,
            "device": drive.device, "path": str(Path(drive.mount_point) / out["filename"]),
            **{k: v for k, v in out.items() if k != "filename"}}


@contextmanager
def export_lock() -> Iterator[None]:
    """One export at a time on the leader (a file lock in ``exports/``).

    Raises:
        TaskFailed: another export is running.
    """
    from filelock import FileLock, Timeout

    lock = FileLock(str(exports_dir() / ".export.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise fail("Another export is running.", cause="Exports run one at a time on the leader.",
                   remediation="Wait for it to finish, then try again.") from None
    try:
        yield
    finally:
        lock.release()


def write_archive(folder: Path, datasets: list[str], experiments: list[str] | None, partition_by_unit: bool,
                  partition_by_experiment: bool, start_time: str | None, end_time: str | None) -> dict[str, Any]:
    """Write the export zip into ``folder`` (as ``.<name>.tmp``, then renamed; removed on failure).

    Returns:
        ``{"filename", "skipped", "datasets": [{dataset_name, row_count, error?}], "progress"}``.

    Raises:
        TaskFailed: resources are short or no dataset is known.
    """
    from reactorkit import __version__
    from reactorkit.plugin import get_clock, utc_iso_ms
    from reactorkit.plugin import connect_leader_db as connect, leader_database_path as database_path
    from reactorkit.plugin import Registry, durable_replace

    from .writer import Filters, clock_entry, utc_stamp, write_export

    db_path = database_path()
    check_resources(db_path, folder)
    known = Registry.installed().datasets
    selected = [known[name] for name in datasets if name in known]
    skipped = [name for name in datasets if name not in known]
    if not selected:
        raise fail("None of the requested datasets exist.", cause=f"Unknown: {', '.join(skipped)}.",
                   remediation="Pick names from GET /api/datasets/exportable.")
    clock = get_clock()
    now = clock.now()  # one clock for the whole export: simulated time when simulated
    filename = "export_" + utc_stamp(now) + ".zip"
    final = folder / filename
    suffix = 1
    while final.exists():  # two exports within one second
        final = folder / filename.replace(".zip", f"_{suffix}.zip")
        suffix += 1
    tmp = folder / f".{final.name}.tmp"
    progress: dict[str, Any] = {"datasets_total": len(selected), "datasets_done": 0, "dataset": None,
                                "rows_written": 0}
    _report(progress)
    done_rows: dict[str, int] = {}

    def on_progress(name: str, index: int, rows: int) -> None:
        done_rows[name] = rows
        progress.update(dataset=name, datasets_done=index, rows_written=sum(done_rows.values()))
        _report(progress)

    filters = Filters(experiments=tuple(experiments or ()), start_time=start_time, end_time=end_time,
                      partition_by_unit=bool(partition_by_unit),
                      partition_by_experiment=bool(partition_by_experiment))
    if db_path.exists():
        conn = connect(db_path, read_only=True)
    else:  # no data recorded yet: an export of empty datasets
        import sqlite3

        conn = sqlite3.connect(":memory:")
    try:
        entries = write_export(tmp, conn, selected, filters, version=__version__,
                               created_at=utc_iso_ms(now), selected=list(datasets), progress=on_progress,
                               stamp=utc_stamp(now), clock=clock_entry(clock.speedup, clock.origin, now))
        durable_replace(tmp, final)  # an export survives a power cut once it is announced
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        conn.close()
    progress.update(datasets_done=len(selected), dataset=None)
    _report(progress)
    return {"filename": final.name, "skipped": skipped,
            "datasets": [{"dataset_name": e.dataset_name, "row_count": e.row_count, **({"error": e.error} if e.error else {})}
                         for e in entries],
            "progress": progress}
