"""Task functions the leader's rq worker runs for leader routes (importable by name, no Falcon)."""

from __future__ import annotations

from typing import Any


def delete_experiment(experiment: str, database: str | None = None) -> dict[str, Any]:
    """Stop ``experiment``'s jobs on its workers, unassign them, then delete the experiment.

    Deleting cascades (foreign keys are on for this connection) to its tags,
    labels, assignments and every plugin table that references ``experiments``;
    the assignment history keeps a closed row per worker.

    Args:
        experiment: The experiment's name.
        database: The leader database file (default ``[storage] database``).

    Returns:
        ``{"experiment", "deleted": bool, "stopped": {unit: envelope}}``.
    """
    from reactorkit.api import fanout
    from reactorkit.api.leader.effects import publish_assignment
    from reactorkit.core.leader_db import LeaderDB, now_iso

    db = LeaderDB(database)
    try:
        units = db.assigned_workers(experiment, active_only=False)
        stopped = fanout.fan_out("POST", units, "/unit_api/jobs/stop", {"experiment": experiment}) if units else {}
        with db.transaction():
            db.unassign_experiment(experiment)
            deleted = db.execute("DELETE FROM experiments WHERE experiment = ?", (experiment,)).rowcount > 0
        for unit in units:
            publish_assignment(unit, None, None, now_iso())
        return {"experiment": experiment, "deleted": deleted, "stopped": stopped}
    finally:
        db.close()
