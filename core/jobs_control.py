"""Stop running jobs of this unit through the registry (``pio kill``, ``/unit_api/jobs/stop``)."""

from __future__ import annotations

import os
import signal
import time

from reactorkit.core.job_registry import JobRecord, JobRegistry, pid_alive

DEFAULT_STOP_PRIORITY = 50


def stop_priorities() -> dict[str, int]:
    """``job_name -> stop_priority`` from the jobs' descriptors (through the CLI index; lower stops first)."""
    from reactorkit.core.cli.index import get_index

    try:
        jobs = get_index()["jobs"]
    except Exception:  # stopping must work even when the plugin index cannot be built
        return {}
    return {name: int(entry.get("stop_priority", DEFAULT_STOP_PRIORITY)) for name, entry in jobs.items()}


def stop_jobs(
    *,
    job_name: str | None = None,
    experiment: str | None = None,
    job_id: int | None = None,
    job_source: str | None = None,
    all_jobs: bool = False,
    wait_s: float = 5.0,
    registry: JobRegistry | None = None,
) -> list[JobRecord]:
    """Send SIGINT to the matching jobs and wait (up to ``wait_s`` s each) for them to exit.

    ``all_jobs`` matches every job that is not long-running. Returns the jobs signalled.

    Raises:
        ValueError: no filter given and not ``all_jobs``.
    """
    if not (all_jobs or any(v is not None for v in (job_name, experiment, job_id, job_source))):
        raise ValueError("give at least one of job_name, experiment, job_id, job_source, or all_jobs")
    registry = registry or JobRegistry()
    rows = registry.running(job_name=job_name, experiment=experiment, job_id=job_id, job_source=job_source)
    if all_jobs and job_name is None and job_id is None:
        rows = [r for r in rows if not r.is_long_running_job]
    if len(rows) > 1:
        priority = stop_priorities()
        rows.sort(key=lambda r: priority.get(r.job_name, DEFAULT_STOP_PRIORITY))
    for record in rows:
        if record.pid == os.getpid():
            continue
        try:
            os.kill(record.pid, signal.SIGINT)
        except ProcessLookupError:
            registry.remove(record.job_id)
    deadline = time.monotonic() + wait_s
    for record in rows:
        while pid_alive(record.pid) and time.monotonic() < deadline:
            time.sleep(0.02)
    return rows
