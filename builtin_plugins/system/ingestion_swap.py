"""Replacing the state folder of a running unit: refused while jobs run; ingestion stopped and restarted around it.

A job keeps its files open (the job registry, the outbox, the leader database
for ``mqtt_to_db_streaming``): after the folder is swapped, it would go on
writing into the folder that was replaced and then deleted. So an import is
refused while any job but ingestion runs (stop them first), and the leader's
``mqtt_to_db_streaming`` is stopped before the swap — what it committed is
acknowledged; everything else waits in the broker's
session for it and in the units' outboxes — and started again on the new folder.
"""

from __future__ import annotations

from typing import Any, Callable

INGESTION = "mqtt_to_db_streaming"


def jobs_in_the_way() -> list[str]:
    """Names of running jobs (other than ingestion) that an import would pull the folder from under."""
    from reactorkit.plugin import get_config
    from reactorkit.plugin import JobRegistry

    if not get_config().path("storage", "temporary_cache").exists():
        return []  # no job has ever run here (and asking must not create the registry)
    registry = JobRegistry()
    try:
        return sorted({r.job_name for r in registry.running() if r.job_name != INGESTION})
    finally:
        registry.close()


def refusal(names: list[str]) -> dict[str, str]:
    """The error fields explaining why an import is refused while ``names`` run."""
    return {"error": "Stop the running jobs before importing a state archive.",
            "cause": f"Running on this unit: {', '.join(names)}; they keep files of the folder the import replaces.",
            "remediation": "Stop them (POST /unit_api/jobs/stop/all, or pio kill --all-jobs) and import again."}


def around_ingestion(swap: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run ``swap()`` with ingestion stopped if it was running, then start it again (also when the swap failed).

    Returns:
        ``swap()``'s result plus ``"ingestion": "restarted" | "not running" | "restart failed: …"``.
    """
    from reactorkit.plugin import get_config
    from reactorkit.plugin import JobRegistry
    from reactorkit.plugin import stop_jobs

    if not get_config().path("storage", "temporary_cache").exists():
        return swap() | {"ingestion": "not running"}
    registry = JobRegistry()
    try:
        was_running = bool(registry.running(job_name=INGESTION))
        if was_running:
            stop_jobs(job_name=INGESTION, wait_s=30, registry=registry)
    finally:
        registry.close()
    try:
        result = swap()
    finally:
        status = "not running"
        if was_running:
            from reactorkit.plugin import TaskFailed, start_job

            try:
                start_job(INGESTION)
                status = "restarted"
            except TaskFailed as exc:
                status = f"restart failed: {exc.to_dict().get('cause') or exc}"
    return {**result, "ingestion": status}
