"""Which numbered messages the leader has stored, and which ones a unit could not keep.

Units number every message on a stored topic (see :mod:`reactorkit.core.outbox`):
``(unit, stream, topic, seq)`` names one reading for good. The ingestion
keeps, in the same transaction as the rows themselves:

* ``ingestion_sequences``: per ``(pioreactor_unit, stream, topic)`` the
  numbers received so far as merged ranges (``[[1, 5000], [5002, 7000]]``),
  how many were received and how many copies were dropped as duplicates;
  a message whose number is already there is not stored again;
* ``ingestion_gaps``: runs of numbers a unit reports it could not keep (its
  outbox was full), with counts and times: the readings that are truly lost.

``missing`` (numbers below the highest received that have not arrived) is a
count of readings still on their way (or lost with a unit that never came
back); ``lost`` is what the units declared.
"""

from __future__ import annotations

import json

from typing import Any, Iterable

from reactorkit.plugin import DatasetDescriptor, TableDescriptor
from reactorkit.plugin import holes, in_ranges, merge_ranges, to_ranges

SEQUENCES = TableDescriptor(
    table="ingestion_sequences",
    create_sql="""
        CREATE TABLE IF NOT EXISTS ingestion_sequences (
            pioreactor_unit TEXT NOT NULL,
            stream TEXT NOT NULL,
            topic TEXT NOT NULL,
            ranges TEXT NOT NULL,
            received INTEGER NOT NULL DEFAULT 0,
            duplicates INTEGER NOT NULL DEFAULT 0,
            first_received_at TEXT NOT NULL,
            last_received_at TEXT NOT NULL,
            PRIMARY KEY (pioreactor_unit, stream, topic)
        ) WITHOUT ROWID;
    """,
)

GAPS = TableDescriptor(
    table="ingestion_gaps",
    create_sql="""
        CREATE TABLE IF NOT EXISTS ingestion_gaps (
            experiment TEXT NOT NULL,
            pioreactor_unit TEXT NOT NULL,
            stream TEXT NOT NULL,
            topic TEXT NOT NULL,
            first_seq INTEGER NOT NULL,
            last_seq INTEGER NOT NULL,
            count INTEGER NOT NULL,
            first_dropped_at TEXT NOT NULL,
            last_dropped_at TEXT NOT NULL,
            reason TEXT NOT NULL,
            recorded_at TEXT NOT NULL,
            PRIMARY KEY (pioreactor_unit, stream, topic, first_seq)
        );
        CREATE INDEX IF NOT EXISTS ingestion_gaps_experiment_ix ON ingestion_gaps (experiment, first_dropped_at);
    """,
)

GAPS_DATASET = DatasetDescriptor(
    dataset_name="ingestion_gaps",
    display_name="Ingestion gaps",
    description="Readings a unit published but could not keep until the leader stored them (its outbox was full): "
                "topic, the numbers and times of the run, and how many.",
    table="ingestion_gaps",
    default_order_by="first_dropped_at",
    timestamp_columns=("first_dropped_at", "last_dropped_at", "recorded_at"),
    column_descriptions={"count": "How many readings of that topic were lost",
                         "first_seq": "First lost message number of the topic's stream",
                         "reason": "Why they were lost"},
)


def _iso(epoch: float) -> str:
    from reactorkit.plugin import utc_iso_ms

    return utc_iso_ms(epoch)


def claim(conn: Any, numbered: Iterable[tuple[str, str, str, int]], now_iso: str) -> set[tuple[str, str, str, int]]:
    """Record numbered messages as received; returns the ones not seen before (to be stored).

    Call inside the transaction that stores their rows, so that a crash keeps both or neither.

    Args:
        conn: A connection inside ``BEGIN IMMEDIATE``.
        numbered: ``(unit, stream, topic, seq)`` of the batch (duplicates within it allowed).
        now_iso: Receive time for ``last_received_at``.
    """
    by_key: dict[tuple[str, str, str], list[int]] = {}
    for unit, stream, topic, seq in numbered:
        by_key.setdefault((unit, stream, topic), []).append(seq)
    fresh: set[tuple[str, str, str, int]] = set()
    for (unit, stream, topic), seqs in by_key.items():
        row = conn.execute("SELECT ranges FROM ingestion_sequences WHERE pioreactor_unit = ? AND stream = ? AND topic = ?",
                           (unit, stream, topic)).fetchone()
        known = json.loads(row[0]) if row else []
        new: set[int] = set()
        for seq in seqs:
            if seq in new or in_ranges(known, seq):
                continue
            new.add(seq)
        duplicates = len(seqs) - len(new)
        merged = merge_ranges(known, to_ranges(new))
        conn.execute(
            "INSERT INTO ingestion_sequences (pioreactor_unit, stream, topic, ranges, received, duplicates,"
            " first_received_at, last_received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (pioreactor_unit, stream, topic) DO UPDATE SET ranges = excluded.ranges,"
            " received = received + excluded.received, duplicates = duplicates + excluded.duplicates,"
            " last_received_at = excluded.last_received_at",
            (unit, stream, topic, json.dumps(merged), len(new), duplicates, now_iso, now_iso))
        fresh.update((unit, stream, topic, s) for s in new)
    return fresh


def record_gap(conn: Any, unit: str, experiment: str, report: dict[str, Any], now_iso: str) -> bool:
    """Store (or extend) a unit's report of messages it could not keep. True when it is new or grew.

    Args:
        report: ``{stream, topic, first_seq, last_seq, count, first_at, last_at, reason}`` (times in epoch s).

    Raises:
        KeyError / ValueError: not a gap report.
    """
    values = (experiment, unit, str(report["stream"]), str(report["topic"]), int(report["first_seq"]),
              int(report["last_seq"]), int(report["count"]), _iso(float(report["first_at"])),
              _iso(float(report["last_at"])), str(report.get("reason") or "outbox full"), now_iso)
    before = conn.execute("SELECT last_seq FROM ingestion_gaps WHERE pioreactor_unit = ? AND stream = ? AND topic = ?"
                          " AND first_seq = ?", (unit, values[2], values[3], values[4])).fetchone()
    if before is not None and before[0] >= values[5]:
        return False
    conn.execute(
        "INSERT INTO ingestion_gaps (experiment, pioreactor_unit, stream, topic, first_seq, last_seq, count,"
        " first_dropped_at, last_dropped_at, reason, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (pioreactor_unit, stream, topic, first_seq) DO UPDATE SET last_seq = excluded.last_seq,"
        " count = excluded.count, last_dropped_at = excluded.last_dropped_at, recorded_at = excluded.recorded_at",
        values)
    return True


def summary(db: Any, unit: str | None = None) -> list[dict[str, Any]]:
    """Per unit: ``{pioreactor_unit, received, duplicates, missing, lost, gaps, last_received_at}``.

    ``missing``: numbers below the highest received that have not arrived (still on their way);
    ``lost``: readings the unit reported it could not keep; ``gaps``: how many such runs.

    Args:
        db: A ``LeaderDB``.
        unit: Only this unit (default all).
    """
    where, params = ("WHERE pioreactor_unit = ?", (unit,)) if unit else ("", ())
    out: dict[str, dict[str, Any]] = {}
    if db.table_exists("ingestion_sequences"):
        for row in db.query(f"SELECT pioreactor_unit, ranges, received, duplicates, last_received_at"
                            f" FROM ingestion_sequences {where}", params):
            entry = out.setdefault(row["pioreactor_unit"], {"pioreactor_unit": row["pioreactor_unit"], "received": 0,
                                                            "duplicates": 0, "missing": 0, "lost": 0, "gaps": 0,
                                                            "last_received_at": None})
            entry["received"] += row["received"]
            entry["duplicates"] += row["duplicates"]
            entry["missing"] += holes(json.loads(row["ranges"]))
            entry["last_received_at"] = max(filter(None, (entry["last_received_at"], row["last_received_at"])))
    if db.table_exists("ingestion_gaps"):
        for row in db.query(f"SELECT pioreactor_unit, count(*) AS runs, sum(count) AS lost, "
                            f"sum(last_seq - first_seq + 1) AS span FROM ingestion_gaps {where} GROUP BY pioreactor_unit",
                            params):
            entry = out.setdefault(row["pioreactor_unit"], {"pioreactor_unit": row["pioreactor_unit"], "received": 0,
                                                            "duplicates": 0, "missing": 0, "lost": 0, "gaps": 0,
                                                            "last_received_at": None})
            entry["lost"] += row["lost"] or 0
            entry["gaps"] += row["runs"]
            entry["missing"] = max(0, entry["missing"] - (row["span"] or 0))  # declared lost: not on their way
    return sorted(out.values(), key=lambda e: e["pioreactor_unit"])


def gaps(db: Any, experiment: str | None = None) -> list[dict[str, Any]]:
    """Recorded gaps, oldest first (``ingestion_gaps`` rows as dicts)."""
    if not db.table_exists("ingestion_gaps"):
        return []
    if experiment:
        return db.query("SELECT * FROM ingestion_gaps WHERE experiment = ? ORDER BY first_dropped_at", (experiment,))
    return db.query("SELECT * FROM ingestion_gaps ORDER BY first_dropped_at")



