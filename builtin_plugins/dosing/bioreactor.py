"""Vial bookkeeping: the six bioreactor variables of one unit, per experiment.

Variables (domain facts §3.8), all floats:

* ``current_volume_ml`` (mL; default ``[bioreactor] initial_volume_ml``, 14)
* ``efflux_tube_volume_ml`` (mL; level of the waste tube, ``[bioreactor] efflux_tube_volume_ml``, 14)
* ``alt_media_fraction`` (0–1; ``[bioreactor] initial_alt_media_fraction``, 0)
* ``cumulative_media_added_ml``, ``cumulative_alt_media_added_ml``,
  ``cumulative_waste_removed_ml`` (mL; ``[bioreactor] initial_cumulative_*``, 0)

The projection of dosing events onto these variables
(:func:`apply_dosing_event`) follows the monitor rules of the Pioreactor
software: an addition of Δ mL gives V + Δ and dilutes (or enriches) the
alt-media fraction, ``f' = f·V/(V+Δ)`` for media and ``f' = (f·V+Δ)/(V+Δ)``
for alt media; waste takes V down to ``max(V − Δ, efflux)`` but never below
the efflux tube (the tube only removes liquid above its level); every
cumulative grows by Δ. Events whose ``source_of_event`` is ``pump_calibration``
are not applied.

Where the projection runs: the Pioreactor software applies it in the unit's
``monitor`` job. reactorkit applies it in the pump action itself
(:mod:`.pumps`), inside one SQLite ``BEGIN IMMEDIATE`` transaction per event
(so concurrent pumps and API writes never lose an update), right after the
event is published. A future monitor must therefore *not* apply
``dosing_events`` a second time.

Storage: table ``bioreactor`` (``experiment, variable, value, updated_at``) in
the unit's persistent cache (``[storage] persistent_cache``, SQLite, WAL),
so values survive restarts and are shared by every process of the unit.
"""

from __future__ import annotations

import math
import sqlite3
import time
from contextlib import closing
from pathlib import Path
from typing import Any, Iterable, Mapping

VARIABLES = (
    "current_volume_ml",
    "efflux_tube_volume_ml",
    "alt_media_fraction",
    "cumulative_media_added_ml",
    "cumulative_alt_media_added_ml",
    "cumulative_waste_removed_ml",
)
ADD_EVENTS = ("add_media", "add_alt_media")
WASTE_EVENT = "remove_waste"
UNTRACKED_SOURCES = ("pump_calibration",)
DEFAULT_CAPACITY_ML = 20.0  # pioreactor_20ml (domain facts §1.4)

SCHEMA = """
CREATE TABLE IF NOT EXISTS bioreactor (
    experiment TEXT NOT NULL,
    variable TEXT NOT NULL,
    value REAL NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (experiment, variable)
)
"""


class InvalidBioreactorValue(ValueError):
    """A value that the bookkeeping refuses.

    Attributes:
        field: The variable (e.g. ``"alt_media_fraction"``) or ``"values"``.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def initial_values(config: Any) -> dict[str, float]:
    """The six variables of a fresh experiment, from ``[bioreactor]``.

    Returns:
        ``{variable: value}`` with the defaults of §3.8 (14 mL, 14 mL, 0, 0, 0, 0).
    """

    def get(key: str, fallback: float) -> float:
        try:
            return float(config.get("bioreactor", key, fallback=str(fallback)) or fallback)
        except (ValueError, TypeError):
            return fallback

    return {
        "current_volume_ml": get("initial_volume_ml", 14.0),
        "efflux_tube_volume_ml": get("efflux_tube_volume_ml", 14.0),
        "alt_media_fraction": get("initial_alt_media_fraction", 0.0),
        "cumulative_media_added_ml": get("initial_cumulative_media_added_ml", 0.0),
        "cumulative_alt_media_added_ml": get("initial_cumulative_alt_media_added_ml", 0.0),
        "cumulative_waste_removed_ml": get("initial_cumulative_waste_removed_ml", 0.0),
    }


def capacity_ml(config: Any) -> float:
    """Vial capacity (mL): ``[bioreactor] reactor_capacity_ml``, default 20 (pioreactor_20ml)."""
    try:
        return float(config.get("bioreactor", "reactor_capacity_ml", fallback=DEFAULT_CAPACITY_ML))
    except (ValueError, TypeError):
        return DEFAULT_CAPACITY_ML


def apply_dosing_event(values: Mapping[str, float], event: str, volume_change_ml: float,
                       source_of_event: str = "") -> dict[str, float]:
    """Project one dosing event onto the bookkeeping (pure function).

    Args:
        values: The six variables before the event.
        event: ``add_media``, ``add_alt_media`` or ``remove_waste``.
        volume_change_ml: Δ in mL (positive for waste too; a negative Δ is a
            correction of an earlier chunk and is applied with the same rules).
        source_of_event: Events from ``pump_calibration`` are ignored.

    Returns:
        A new dict; ``values`` is not modified. Unknown events leave it unchanged.

    Source: the monitor rules of the Pioreactor software (domain facts §3.8).
    """
    out = dict(values)
    if source_of_event in UNTRACKED_SOURCES:
        return out
    delta = float(volume_change_ml)
    volume = out["current_volume_ml"]
    fraction = out["alt_media_fraction"]
    if event in ADD_EVENTS:
        new_volume = max(volume + delta, 0.0)
        if new_volume > 0:
            if event == "add_media":
                fraction = fraction * volume / new_volume
            else:
                fraction = (fraction * volume + delta) / new_volume
        out["current_volume_ml"] = new_volume
        out["alt_media_fraction"] = min(max(fraction, 0.0), 1.0)
        key = "cumulative_media_added_ml" if event == "add_media" else "cumulative_alt_media_added_ml"
        out[key] = max(out[key] + delta, 0.0)
    elif event == WASTE_EVENT:
        efflux = out["efflux_tube_volume_ml"]
        if volume > efflux:
            out["current_volume_ml"] = max(volume - delta, efflux)
        out["cumulative_waste_removed_ml"] = max(out["cumulative_waste_removed_ml"] + delta, 0.0)
    return out


def validate_values(changes: Any, config: Any) -> dict[str, float]:
    """Check a partial update ``{variable: number}`` (the PATCH body's ``values``).

    Rules (§3.8): known variables only; finite numbers ≥ 0;
    ``alt_media_fraction`` ≤ 1; volumes ≤ the vial capacity.

    Returns:
        The changes as floats.

    Raises:
        InvalidBioreactorValue: naming the offending field.
    """
    if not isinstance(changes, Mapping) or not changes:
        raise InvalidBioreactorValue("values", "values must be a non-empty object {variable: number}")
    capacity = capacity_ml(config)
    out: dict[str, float] = {}
    for key, raw in changes.items():
        if key not in VARIABLES:
            raise InvalidBioreactorValue(key, f"unknown bioreactor variable {key!r}; use one of {', '.join(VARIABLES)}")
        if isinstance(raw, bool):
            raise InvalidBioreactorValue(key, f"{key} must be a number, got {raw!r}")
        try:
            value = float(raw)
        except (TypeError, ValueError):
            raise InvalidBioreactorValue(key, f"{key} must be a number, got {raw!r}") from None
        if not math.isfinite(value) or value < 0:
            raise InvalidBioreactorValue(key, f"{key} must be a finite number ≥ 0, got {raw!r}")
        if key == "alt_media_fraction" and value > 1:
            raise InvalidBioreactorValue(key, f"alt_media_fraction must be within 0–1, got {raw!r}")
        if key in ("current_volume_ml", "efflux_tube_volume_ml") and value > capacity:
            raise InvalidBioreactorValue(key, f"{key} must be at most the vial capacity {capacity:g} mL, got {raw!r}")
        out[key] = value
    return out


class BioreactorStore:
    """The bookkeeping of one unit, persisted per experiment.

    Args:
        config: Merged config (for the defaults and the cache path).
        path: SQLite file; default ``[storage] persistent_cache`` under ``$DOT_PIOREACTOR``.

    Each method opens its own connection, so one store may be used from
    several threads and processes.
    """

    def __init__(self, config: Any, path: Path | None = None) -> None:
        self.config = config
        self.path = path or _cache_path(config)

    def _connect(self) -> sqlite3.Connection:
        from reactorkit.plugin import open_sqlite

        conn = open_sqlite(self.path, synchronous="NORMAL")  # WAL: no fsync per commit, still safe if a process dies
        conn.execute(SCHEMA)
        return conn

    def _read(self, conn: sqlite3.Connection, experiment: str) -> dict[str, float]:
        values = initial_values(self.config)
        rows = conn.execute("SELECT variable, value FROM bioreactor WHERE experiment = ?", (experiment,))
        for variable, value in rows:
            if variable in values:
                values[variable] = float(value)
        return values

    def _write(self, conn: sqlite3.Connection, experiment: str, values: Mapping[str, float],
               keys: Iterable[str]) -> None:
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        conn.executemany(
            "INSERT INTO bioreactor (experiment, variable, value, updated_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (experiment, variable) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            [(experiment, k, float(values[k]), now) for k in keys],
        )

    def get(self, experiment: str) -> dict[str, float]:
        """The six variables of ``experiment`` (config defaults for those never written)."""
        with closing(self._connect()) as conn:
            return self._read(conn, experiment)

    def update(self, experiment: str, changes: Mapping[str, Any]) -> dict[str, float]:
        """Validate and write a partial update; returns all six variables after it.

        Raises:
            InvalidBioreactorValue: a bad variable or value; nothing is written.
        """
        checked = validate_values(changes, self.config)
        with closing(self._connect()) as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                values = self._read(conn, experiment)
                values.update(checked)
                self._write(conn, experiment, values, checked.keys())
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return values

    def apply(self, experiment: str, event: str, volume_change_ml: float,
              source_of_event: str = "", also: Any = None) -> tuple[dict[str, float], dict[str, float]]:
        """Apply one dosing event atomically (read, project, write in one transaction).

        Args:
            also: Optional ``f(connection)`` run inside the same transaction (e.g. the pump ledger).

        Returns:
            ``(before, after)``, each the six variables.
        """
        with closing(self._connect()) as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                before = self._read(conn, experiment)
                after = apply_dosing_event(before, event, volume_change_ml, source_of_event)
                changed = [k for k in VARIABLES if after[k] != before[k]]
                if changed:
                    self._write(conn, experiment, after, changed)
                if also is not None:
                    also(conn)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return before, after


def _cache_path(config: Any) -> Path:
    from reactorkit.plugin import dot_pioreactor

    try:
        return config.path("storage", "persistent_cache")
    except Exception:  # a config without [storage]
        return dot_pioreactor() / "storage" / "local_persistent_pioreactor_metadata.sqlite"


def format_value(value: float) -> str:
    """Wire form of a variable on ``bioreactor/<var>``: a plain number (up to 6 decimals)."""
    text = f"{float(value):.6f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


def publish_values(client: Any, unit: str, experiment: str, values: Mapping[str, float],
                   keys: Iterable[str] | None = None, config: Any = None, wait_s: float = 5.0) -> None:
    """Publish variables retained (QoS 2) on ``pioreactor/{unit}/{experiment}/bioreactor/{var}``.

    Each publish is awaited (up to ``wait_s`` seconds) before the next: a burst
    of QoS 2 messages can stall ~40 ms on TCP delayed acknowledgements, one at
    a time they take well under a millisecond each on a local broker.

    Args:
        client: A connected paho client.
        keys: Which variables (default: all six).
    """
    from reactorkit.plugin import QOS_EXACTLY_ONCE, job_topic

    for key in keys if keys is not None else VARIABLES:
        topic = job_topic(unit, experiment, "bioreactor", key, config=config)
        info = client.publish(topic, format_value(values[key]), qos=QOS_EXACTLY_ONCE, retain=True)
        try:
            info.wait_for_publish(wait_s)
        except (RuntimeError, ValueError):  # not connected: paho keeps it queued
            pass
