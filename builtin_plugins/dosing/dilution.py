"""The dilution journal: a dose that was interrupted (crash, SIGKILL, power cut) is completed by the books.

Before a dosing automation's dose (:meth:`DosingAutomationJob.execute_io_action`)
moves anything, it writes what it plans — mL of media, alt media and waste,
whether the volume is to come back to the efflux level — and the vial's
cumulative waste at that moment, to table ``dilutions`` of the unit's
persistent cache; it deletes the row when the dose ends,
however it ends in-process. A row whose writer no longer runs is an
interrupted dilution.

Completing it (:func:`complete_interrupted`), when the automation starts
again: liquid that went in cannot be taken back out selectively, so a
volume-keeping dose is completed, never rolled back — the waste it still owed
(planned waste − waste booked since it began, at least what the vial holds
above the efflux level) is removed, with the automation's usual extra waste,
through ordinary pump actions that are booked and published like any other.
A dose that did not keep the volume (fed batch) owes nothing; its row is
dropped. Either way a log line says what was found and done.
"""

from __future__ import annotations

import json
from typing import Any

from reactorkit.plugin import Record

SCHEMA = """
CREATE TABLE IF NOT EXISTS dilutions (
    experiment TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    automation TEXT NOT NULL,
    plan TEXT NOT NULL,
    waste_before_ml REAL NOT NULL,
    started_at REAL NOT NULL
)
"""


class Dilution(Record, kw_only=False):
    """One journal row.

    Attributes:
        experiment, automation, holder: Whose dose it was (holder: the writing process's token).
        media_ml, alt_media_ml, waste_ml: Planned mL. keep_volume: whether the vial returns to the efflux level.
        waste_before_ml: ``cumulative_waste_removed_ml`` when it began. started_at: clock seconds.
    """

    experiment: str
    automation: str
    holder: str
    media_ml: float
    alt_media_ml: float
    waste_ml: float
    keep_volume: bool
    waste_before_ml: float
    started_at: float


class DilutionJournal:
    """The ``dilutions`` table of one unit (persistent cache)."""

    def __init__(self, config: Any) -> None:
        from reactorkit.plugin import leases_path

        self.path = leases_path(config)

    def _connect(self) -> Any:
        from reactorkit.plugin import lease_database

        return lease_database(self.path)

    def begin(self, experiment: str, automation: str, media_ml: float, alt_media_ml: float, waste_ml: float,
              keep_volume: bool, waste_before_ml: float, started_at: float) -> None:
        """Record a dose about to start (committed before returning)."""
        from reactorkit.plugin import holder_token

        plan = json.dumps({"media_ml": media_ml, "alt_media_ml": alt_media_ml, "waste_ml": waste_ml,
                           "keep_volume": bool(keep_volume)})
        with self._connect() as conn:
            conn.execute(SCHEMA)
            conn.execute("INSERT OR REPLACE INTO dilutions VALUES (?, ?, ?, ?, ?, ?)",
                         (experiment, holder_token(), automation, plan, float(waste_before_ml), float(started_at)))

    def end(self, experiment: str) -> None:
        """The dose ended (completed or stopped in-process): forget it."""
        with self._connect() as conn:
            conn.execute(SCHEMA)
            conn.execute("DELETE FROM dilutions WHERE experiment = ?", (experiment,))

    def pending(self, experiment: str) -> Dilution | None:
        """The interrupted dilution of ``experiment`` (its writer no longer runs), or None."""
        from reactorkit.plugin import holder_alive

        if not self.path.exists():
            return None
        with self._connect() as conn:
            conn.execute(SCHEMA)
            row = conn.execute("SELECT experiment, holder, automation, plan, waste_before_ml, started_at "
                               "FROM dilutions WHERE experiment = ?", (experiment,)).fetchone()
        if row is None or holder_alive(row[1]):
            return None
        plan = json.loads(row[3])
        return Dilution(experiment=row[0], holder=row[1], automation=row[2], media_ml=plan["media_ml"],
                        alt_media_ml=plan["alt_media_ml"], waste_ml=plan["waste_ml"],
                        keep_volume=plan["keep_volume"], waste_before_ml=row[4], started_at=row[5])


def owed_waste_ml(dilution: Dilution, books: dict[str, float]) -> float:
    """mL of waste an interrupted volume-keeping dose still owes, by the books (0 for fed batch)."""
    if not dilution.keep_volume:
        return 0.0
    removed = books["cumulative_waste_removed_ml"] - dilution.waste_before_ml
    above_efflux = books["current_volume_ml"] - books["efflux_tube_volume_ml"]
    return max(dilution.waste_ml - removed, above_efflux, 0.0)


def complete_interrupted(automation: Any) -> float | None:
    """Complete the interrupted dilution of ``automation``'s experiment, if any (see the module doc).

    Args:
        automation: A running :class:`~reactorkit.builtin_plugins.dosing.automation.DosingAutomationJob`.

    Returns:
        mL of waste removed to complete it, or None when there was nothing to complete.
    """
    journal = DilutionJournal(automation.config)
    dilution = journal.pending(automation.experiment)
    if dilution is None:
        return None
    books = automation.bioreactor.get(automation.experiment)
    owed = owed_waste_ml(dilution, books)
    automation.logger.warning(
        "Found a dilution of %s interrupted before it finished (planned %.3g mL media, %.3g mL alt media, %.3g mL "
        "waste); by the books it still owes %.3g mL of waste%s.", dilution.automation, dilution.media_ml,
        dilution.alt_media_ml, dilution.waste_ml, owed, ": removing it now" if owed > 0 else "",
    )
    removed = 0.0
    if owed > 0:
        removed = automation.remove_owed_waste(owed)
    journal.end(automation.experiment)
    return removed
