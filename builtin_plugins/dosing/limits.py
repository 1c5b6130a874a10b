"""Hard limits of every pump action: mL per call and mL per hour, per pump.

Config ``[pump_limits]`` (defaults from the vial capacity C, ``[bioreactor]
reactor_capacity_ml``, 20 mL on a 20 mL Pioreactor):

* ``max_ml_per_call`` (C): no single ``add_media`` / ``add_alt_media`` /
  ``remove_waste`` moves more than one vial's worth. A request by volume or
  duration above it is refused; a continuous run stops there.
* ``max_ml_per_hour`` (10·C): mL an inflow pump may move in any 60 minutes of
  (simulated) time — a dilution rate of about 14 h⁻¹ on 14 mL, far above any
  culture's growth rate (domain facts §3.5), so only a runaway reaches it.
* ``waste_max_ml_per_hour`` ((1 + ``waste_removal_multiplier``)·10·C, 600 mL
  with the default multiplier of 2): the dose helper removes that many times
  the exchanged volume.
* ``max_exchange_volume_ml`` (C − ``efflux_tube_volume_ml``… at least 1 mL;
  6 mL by default): the largest ``exchange_volume_ml`` / ``dosing_volume_ml``
  an automation accepts.

What each pump moved is kept in ``pump_ledger`` (action, clock time, mL) in
the unit's persistent cache, written in the same transaction as the vial
bookkeeping of each dosing event; events of ``pump_calibration`` (into a
beaker, not the vial) are not counted.
"""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path
from typing import Any

from reactorkit.builtin_plugins.dosing.bioreactor import UNTRACKED_SOURCES, capacity_ml
from reactorkit.plugin import Record

SECTION = "pump_limits"
WINDOW_S = 3600.0
INFLOW_HOURLY_VIALS = 10.0

LEDGER_SCHEMA = """
CREATE TABLE IF NOT EXISTS pump_ledger (
    action TEXT NOT NULL,
    t REAL NOT NULL,
    ml REAL NOT NULL
)
"""


class PumpError(RuntimeError):
    """A pump action that cannot run (bad arguments, missing ``[PWM]`` channel, a limit …)."""


class PumpLimitExceeded(PumpError):
    """A pump request above ``[pump_limits]``.

    Attributes:
        action, requested_ml, limit_ml, key: What was asked, the bound and its config key.
    """

    def __init__(self, action: str, requested_ml: float, limit_ml: float, key: str, detail: str) -> None:
        self.action, self.requested_ml, self.limit_ml, self.key = action, requested_ml, limit_ml, key
        super().__init__(
            f"Refusing {action} of {requested_ml:.4g} mL: {detail} ([{SECTION}] {key} = {limit_ml:g} mL). "
            f"Ask for less, or raise [{SECTION}] {key} in config.ini if the vessel really needs it."
        )


class PumpLimits(Record, kw_only=False):
    """The limits in force (mL).

    Attributes:
        max_ml_per_call: Most mL one pump action moves.
        max_ml_per_hour: ``{action: mL}`` per 60 minutes of clock time.
        max_exchange_volume_ml: Largest exchange an automation accepts.
    """

    max_ml_per_call: float
    max_ml_per_hour: dict[str, float]
    max_exchange_volume_ml: float

    def hourly(self, action: str) -> float:
        return self.max_ml_per_hour.get(action, self.max_ml_per_hour["add_media"])


def _positive(config: Any, key: str, default: float) -> float:
    raw = config.get(SECTION, key, fallback=None)
    if raw in (None, ""):
        return default
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise ValueError(f"[{SECTION}] {key} must be a number of mL, got {raw!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"[{SECTION}] {key} must be a finite number > 0 mL, got {raw!r}")
    return value


def pump_limits(config: Any) -> PumpLimits:
    """Read ``[pump_limits]`` with the defaults of the module docstring.

    Raises:
        ValueError: a key that is not a positive number (names the key).
    """
    capacity = capacity_ml(config)
    multiplier = config.getfloat("dosing_automation.config", "waste_removal_multiplier", fallback=2.0)
    inflow = _positive(config, "max_ml_per_hour", INFLOW_HOURLY_VIALS * capacity)
    waste = _positive(config, "waste_max_ml_per_hour", (1.0 + max(multiplier, 0.0)) * INFLOW_HOURLY_VIALS * capacity)
    efflux = config.getfloat("bioreactor", "efflux_tube_volume_ml", fallback=14.0)
    return PumpLimits(
        max_ml_per_call=_positive(config, "max_ml_per_call", capacity),
        max_ml_per_hour={"add_media": inflow, "add_alt_media": inflow, "remove_waste": waste},
        max_exchange_volume_ml=_positive(config, "max_exchange_volume_ml", max(capacity - efflux, 1.0)),
    )


def check_exchange_volume(name: str, value: float, config: Any) -> float:
    """``value`` (mL) if within ``(0, max_exchange_volume_ml]``.

    Raises:
        ValueError: above the bound (names the parameter, the bound and its key).
    """
    bound = pump_limits(config).max_exchange_volume_ml
    if value > bound:
        raise ValueError(f"{name} must be at most [{SECTION}] max_exchange_volume_ml = {bound:g} mL, got {value:g}")
    return value


class PumpLedger:
    """mL moved per pump over time, for the hourly limits.

    Args:
        path: The unit's persistent cache (the bookkeeping's SQLite file).
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    @staticmethod
    def record(conn: sqlite3.Connection, action: str, t: float, ml: float, source_of_event: str = "") -> None:
        """Add one dosing event, inside the caller's transaction (pump_calibration events are not counted)."""
        if source_of_event in UNTRACKED_SOURCES or ml == 0:
            return
        conn.execute(LEDGER_SCHEMA)
        conn.execute("INSERT INTO pump_ledger (action, t, ml) VALUES (?, ?, ?)", (action, float(t), float(ml)))

    def moved(self, action: str, now: float, window_s: float = WINDOW_S) -> float:
        """mL ``action`` moved in the ``window_s`` seconds before ``now`` (clock seconds); prunes older rows."""
        if not self.path.exists():
            return 0.0
        from reactorkit.plugin import lease_database

        with lease_database(self.path) as conn:
            conn.execute(LEDGER_SCHEMA)
            conn.execute("DELETE FROM pump_ledger WHERE t < ?", (now - 2 * window_s,))
            row = conn.execute("SELECT coalesce(sum(ml), 0) FROM pump_ledger WHERE action = ? AND t > ?",
                               (action, now - window_s)).fetchone()
        return max(float(row[0]), 0.0)


def allowed_ml(limits: PumpLimits, ledger: PumpLedger, action: str, now: float, requested_ml: float | None,
               source_of_event: str = "") -> float:
    """The most mL this call may move; raises if ``requested_ml`` (None: continuous) is above it.

    Returns:
        ``min(max_ml_per_call, hourly room)`` in mL.

    Raises:
        PumpLimitExceeded: ``requested_ml`` above the per-call bound or the room left this hour, or no
            room left at all for a continuous run.
    """
    per_call = limits.max_ml_per_call
    if requested_ml is not None and requested_ml > per_call:
        raise PumpLimitExceeded(action, requested_ml, per_call, "max_ml_per_call", "more than one call may move")
    if source_of_event in UNTRACKED_SOURCES:
        return per_call
    hourly = limits.hourly(action)
    key = "waste_max_ml_per_hour" if action == "remove_waste" else "max_ml_per_hour"
    room = hourly - ledger.moved(action, now)
    wanted = requested_ml if requested_ml is not None else 0.0
    if wanted > room + 1e-9 or room <= 0:
        raise PumpLimitExceeded(
            action, requested_ml if requested_ml is not None else float("inf"), hourly, key,
            f"the pump already moved {hourly - room:.4g} mL in the last hour, {max(room, 0):.4g} mL are left",
        )
    return min(per_call, room)


def check_pump_options(action: str, options: dict[str, Any], config: Any) -> None:
    """Refuse a pump run's ``ml`` option above ``[pump_limits]`` before it is queued (the API's 400).

    The ``check_options`` of the ``add_media``, ``add_alt_media`` and ``remove_waste`` jobs
    (``action`` is the job's name).

    Only ``ml`` (mL) is checked here: a ``duration`` needs the pump's calibration to become
    mL, which the pump checks itself when it runs (as it checks ``ml`` again: the ledger
    may have moved in between).

    Raises:
        ValueError: ``ml`` not a number > 0, or above the per-call bound or the room left in
            the last hour (the message names the option, the bound and its config key).
    """
    value = options.get("ml")
    if value is None:
        return
    try:
        ml = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"Option 'ml' must be a number of mL, got {value!r}") from None
    if ml != ml or ml < 0:
        raise ValueError(f"Option 'ml' must be a number of mL ≥ 0, got {value!r}")
    from reactorkit.builtin_plugins.dosing.bioreactor import BioreactorStore
    from reactorkit.plugin import get_clock

    source = str(options.get("source_of_event") or "")
    try:
        allowed_ml(pump_limits(config), PumpLedger(BioreactorStore(config).path), action, get_clock(config).now(),
                   ml, source)
    except PumpLimitExceeded as exc:
        raise ValueError(f"Option 'ml': {exc}") from None

