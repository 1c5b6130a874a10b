"""When a dosing automation must not dose: stale OD readings, no broker, uncertain vial bookkeeping.

:class:`DoseGuard` answers "may this automation dose now, and if not, why?".
A dosing automation asks it before every dose and every
``[dosing_automation.config] safety_check_interval_seconds`` (10 s, clock
time); while a reason holds, no dose starts (a dose already under way
finishes, so the vial is never left half-diluted), the reason is logged and
published (``safety_pause``), and doses resume by themselves once every reason
has cleared — at the automation's next regular opportunity, never as a burst
of catch-up doses.

Reasons:

* ``od_stale``: the automation dosed on OD-like readings (``watches_od``) and
  none newer than ``max_od_age_seconds`` (300 s) arrived — od_reading or
  growth_rate_calculating stopped, crashed or cannot publish (at least 2 s
  of wall time under a speed-up, whose magnified transport delays would
  otherwise make every reading look old). A reading whose
  own timestamp is older than that (an outbox resending after an outage) does
  not count as fresh, and is not dosed on.
* ``broker_unreachable``: the automation's MQTT connection is down (its
  readings and the leader cannot be trusted to be current).
* ``volume_uncertain``: a pump of this unit was left on by a process that
  died and has not been switched off and booked yet (see
  :mod:`reactorkit.core.hardware.leases`), or a dilution was interrupted
  and not yet completed (:mod:`.dilution`).
"""

from __future__ import annotations

import json
from typing import Any

CONFIG_SECTION = "dosing_automation.config"

DEFAULT_MAX_OD_AGE_S = 300.0
MIN_WALL_AGE_S = 2.0  # under a speed-up, transport delays are magnified: never less than 2 s of wall time
DEFAULT_CHECK_INTERVAL_S = 10.0


def reading_timestamp(payload: bytes) -> float | None:
    """The ``timestamp`` (epoch s) of a JSON reading, or None when it has none."""
    from reactorkit.plugin import parse_iso

    try:
        data = json.loads(payload)
        return parse_iso(data["timestamp"]) if isinstance(data, dict) and "timestamp" in data else None
    except (ValueError, TypeError, KeyError):
        return None


class DoseGuard:
    """The safety conditions of one dosing automation.

    Args:
        config: Merged config (``[dosing_automation.config] max_od_age_seconds``).
        clock: The automation's clock (simulated time under a speed-up).
        watches_od: Whether the automation doses on OD-like readings.
        unit, experiment: Whose pumps and dilutions to look at.

    Raises:
        ValueError: ``max_od_age_seconds`` is not a positive number.
    """

    def __init__(self, config: Any, clock: Any, *, watches_od: bool, unit: str, experiment: str) -> None:
        self.config, self.clock = config, clock
        self.watches_od = watches_od
        self.unit, self.experiment = unit, experiment
        self.max_od_age_s = config.getfloat(CONFIG_SECTION, "max_od_age_seconds", fallback=DEFAULT_MAX_OD_AGE_S)
        if not self.max_od_age_s > 0:
            raise ValueError(f"[{CONFIG_SECTION}] max_od_age_seconds must be > 0 s, got {self.max_od_age_s}")
        self.max_od_age_s = max(self.max_od_age_s, MIN_WALL_AGE_S * float(getattr(clock, "speedup", 1.0)))
        self.started_at = clock.now()
        self.last_reading_at: float | None = None

    def fresh(self, payload: bytes) -> bool:
        """Note a reading; False (and not noted) when its own timestamp is already too old to dose on."""
        now = self.clock.now()
        stamp = reading_timestamp(payload)
        if stamp is not None and now - stamp > self.max_od_age_s:
            return False
        self.last_reading_at = now if stamp is None else max(min(stamp, now), self.last_reading_at or stamp)
        return True

    def od_age_s(self) -> float:
        """Seconds since the last fresh reading (since start when none came yet)."""
        return self.clock.now() - (self.last_reading_at if self.last_reading_at is not None else self.started_at)

    def reasons(self, connected: bool) -> list[dict[str, str]]:
        """Every reason not to dose now: ``[{"reason", "message"}]`` (empty: dosing may go on)."""
        out = []
        if not connected:
            out.append({"reason": "broker_unreachable",
                        "message": "the MQTT broker cannot be reached; doses wait until it is back"})
        if self.watches_od and self.od_age_s() > self.max_od_age_s:
            out.append({"reason": "od_stale",
                        "message": f"no OD reading for {self.od_age_s():.0f} s (more than [{CONFIG_SECTION}] "
                                   f"max_od_age_seconds = {self.max_od_age_s:g} s); is od_reading running?"})
        uncertain = self.volume_uncertain()
        if uncertain:
            out.append({"reason": "volume_uncertain", "message": uncertain})
        return out

    def volume_uncertain(self) -> str | None:
        """Why the vial bookkeeping cannot be trusted now, or None."""
        from reactorkit.builtin_plugins.dosing.dilution import DilutionJournal
        from reactorkit.plugin import PwmLeases

        try:
            orphaned = [lease for lease in PwmLeases(self.config).orphaned() if "action" in lease.details]
        except Exception as exc:
            return f"the pump journal cannot be read ({exc})"
        if orphaned:
            names = ", ".join(sorted({lease.job_name for lease in orphaned}))
            return (f"{names} was left on by a process that died; its volume is not booked yet "
                    "(the unit's watchdog switches it off and books it)")
        try:
            pending = DilutionJournal(self.config).pending(self.experiment)
        except Exception as exc:
            return f"the dilution journal cannot be read ({exc})"
        if pending is not None:
            return "a dilution was interrupted and is not completed yet"
        return None
