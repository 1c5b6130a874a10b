"""The unit-local job registry (SQLite under ``$DOT_PIOREACTOR/storage``).

Tables follow the Pioreactor software's ``[storage] temporary_cache``:

* ``pio_job_metadata``: ``job_id`` (autoincrement), ``unit``, ``experiment``,
  ``job_name``, ``job_source``, ``started_at``, ``is_running``, ``leader``,
  ``pid``, ``is_long_running_job``, ``ended_at``.
* ``pio_job_published_settings``: ``setting``, ``value``, ``proposed_value``,
  ``created_at``, ``updated_at``, ``job_id``; unique (``setting``, ``job_id``).

A job's row is removed when it exits cleanly. Rows whose pid is no longer
alive are "stale" (the job was killed, crashed or the unit lost power):
:meth:`JobRegistry.clean_stale` keeps what a restart needs — the job's ``pio
run`` arguments (``pio_job_restart``) and last settings — in ``unclean_stops``
(read by :mod:`reactorkit.core.restore`) and removes them (called before
every listing and before a job starts, so a crashed job never blocks a restart).
"""

from __future__ import annotations

import functools
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Iterator

from reactorkit.core.config import Config, get_config
from reactorkit.core.processes import pid_alive
from reactorkit.core.records import Record
from reactorkit.core.sqlite import open_sqlite

SCHEMA = """
CREATE TABLE IF NOT EXISTS pio_job_metadata (
    job_id INTEGER PRIMARY KEY AUTOINCREMENT,
    unit TEXT NOT NULL,
    experiment TEXT NOT NULL,
    job_name TEXT NOT NULL,
    job_source TEXT,
    started_at TEXT NOT NULL,
    is_running INTEGER NOT NULL DEFAULT 1,
    leader TEXT,
    pid INTEGER NOT NULL,
    is_long_running_job INTEGER NOT NULL DEFAULT 0,
    ended_at TEXT
);
CREATE TABLE IF NOT EXISTS pio_job_published_settings (
    setting TEXT NOT NULL,
    value BLOB,
    proposed_value BLOB,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    job_id INTEGER NOT NULL REFERENCES pio_job_metadata(job_id) ON DELETE CASCADE,
    UNIQUE (setting, job_id)
);
CREATE TABLE IF NOT EXISTS pio_job_restart (
    job_id INTEGER PRIMARY KEY REFERENCES pio_job_metadata(job_id) ON DELETE CASCADE,
    argv TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS unclean_stops (
    job_name TEXT NOT NULL,
    experiment TEXT NOT NULL,
    job_source TEXT,
    argv TEXT NOT NULL,
    settings TEXT NOT NULL,
    pid INTEGER NOT NULL,
    found_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS pio_job_metadata_name ON pio_job_metadata (job_name, is_running);
"""


def _locked(method: Any) -> Any:
    """Serialize a method on the registry's lock: a job uses one connection from several threads
    (MQTT callbacks, timers, the signal-stop thread), and a close racing an execute must not crash."""

    @functools.wraps(method)
    def wrapper(self: "JobRegistry", *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            if self._closed:
                raise sqlite3.ProgrammingError("the job registry is closed")
            return method(self, *args, **kwargs)

    return wrapper


class JobAlreadyRunning(RuntimeError):
    """A job with this name is already running on this unit."""


class JobRecord(Record, kw_only=False):
    """One registry row (``/unit_api/jobs/running`` serves these)."""

    job_id: int
    unit: str
    experiment: str
    job_name: str
    job_source: str | None
    started_at: str
    is_running: bool
    leader: str | None
    pid: int
    is_long_running_job: bool
    ended_at: str | None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)



class JobRegistry:
    """Access to the registry database.

    Args:
        path: SQLite file; default ``[storage] temporary_cache`` under ``$DOT_PIOREACTOR``.
    """

    def __init__(self, path: Path | None = None, config: Config | None = None) -> None:
        self.path = path or (config or get_config()).path("storage", "temporary_cache")
        # every published setting is a commit (several per OD reading): in WAL mode, NORMAL does not
        # fsync each commit; the file stays consistent after a crash or power cut, which can only lose
        # the last commits of a cache that running jobs rewrite anyway
        self._conn = open_sqlite(self.path, synchronous="NORMAL", check_same_thread=False, row_factory=sqlite3.Row)
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._conn.executescript(SCHEMA)
        self._lock = threading.RLock()
        self._closed = False

    def close(self) -> None:
        """Close the connection (idempotent); later calls raise ``sqlite3.ProgrammingError``."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._conn.close()

    @_locked
    def register(
        self,
        *,
        unit: str,
        experiment: str,
        job_name: str,
        pid: int,
        job_source: str | None = None,
        leader: str | None = None,
        is_long_running: bool = False,
        started_at: str,
    ) -> int:
        """Insert a running job; returns its ``job_id``.

        Raises:
            JobAlreadyRunning: a live job with ``job_name`` is already registered.
        """
        self.clean_stale()
        with self._transaction():
            row = self._conn.execute(
                "SELECT pid FROM pio_job_metadata WHERE job_name = ? AND is_running = 1", (job_name,)
            ).fetchone()
            if row is not None:
                raise JobAlreadyRunning(f"{job_name} is already running on {unit} (pid {row['pid']})")
            cur = self._conn.execute(
                "INSERT INTO pio_job_metadata (unit, experiment, job_name, job_source, started_at, is_running, leader,"
                " pid, is_long_running_job) VALUES (?, ?, ?, ?, ?, 1, ?, ?, ?)",
                (unit, experiment, job_name, job_source, started_at, leader, pid, int(is_long_running)),
            )
            return int(cur.lastrowid)

    @_locked
    def remove(self, job_id: int) -> None:
        """Delete a job and its settings (clean exit)."""
        with self._transaction():
            self._conn.execute("DELETE FROM pio_job_published_settings WHERE job_id = ?", (job_id,))
            self._conn.execute("DELETE FROM pio_job_metadata WHERE job_id = ?", (job_id,))

    @_locked
    def set_setting(self, job_id: int, setting: str, value: Any) -> None:
        """Upsert a published setting; ``None`` deletes it. Dicts/lists are stored as JSON."""
        if value is None:
            self._conn.execute(
                "DELETE FROM pio_job_published_settings WHERE job_id = ? AND setting = ?", (job_id, setting)
            )
            return
        stored = json.dumps(value) if isinstance(value, (dict, list, tuple)) else value
        if isinstance(stored, bool):
            stored = str(stored)
        now = _now()
        self._conn.execute(
            "INSERT INTO pio_job_published_settings (setting, value, created_at, updated_at, job_id)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (setting, job_id) DO UPDATE SET value = excluded.value,"
            " updated_at = excluded.updated_at",
            (setting, stored, now, now, job_id),
        )

    @_locked
    def settings(self, job_id: int) -> dict[str, Any]:
        """``setting -> value`` of a job."""
        rows = self._conn.execute(
            "SELECT setting, value FROM pio_job_published_settings WHERE job_id = ? ORDER BY setting", (job_id,)
        )
        return {r["setting"]: r["value"] for r in rows}

    @_locked
    def running(self, **filters: Any) -> list[JobRecord]:
        """Live jobs, optionally filtered by ``job_name``, ``experiment``, ``job_source``,
        ``job_id``, ``unit`` (``None`` filters are ignored). Stale rows are removed first."""
        self.clean_stale()
        clauses, params = ["is_running = 1"], []
        for key, value in filters.items():
            if value is None:
                continue
            if key not in ("job_name", "experiment", "job_source", "job_id", "unit"):
                raise ValueError(f"unknown filter {key!r}")
            clauses.append(f"{key} = ?")
            params.append(value)
        rows = self._conn.execute(
            f"SELECT * FROM pio_job_metadata WHERE {' AND '.join(clauses)} ORDER BY job_id", params
        )
        return [_record(r) for r in rows]

    @_locked
    def get(self, job_id: int) -> JobRecord | None:
        row = self._conn.execute("SELECT * FROM pio_job_metadata WHERE job_id = ?", (job_id,)).fetchone()
        return _record(row) if row else None

    @_locked
    def clean_stale(self) -> list[JobRecord]:
        """Remove rows whose pid is dead (their restart arguments go to ``unclean_stops``); returns them."""
        rows = self._conn.execute("SELECT * FROM pio_job_metadata WHERE is_running = 1").fetchall()
        stale = [_record(r) for r in rows if not pid_alive(r["pid"])]
        for record in stale:
            with self._transaction():
                argv = self._conn.execute("SELECT argv FROM pio_job_restart WHERE job_id = ?",
                                          (record.job_id,)).fetchone()
                if argv is not None:
                    settings = {r["setting"]: r["value"] for r in self._conn.execute(
                        "SELECT setting, value FROM pio_job_published_settings WHERE job_id = ?", (record.job_id,))}
                    self._conn.execute(
                        "INSERT INTO unclean_stops VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (record.job_name, record.experiment, record.job_source, argv["argv"],
                         json.dumps(settings, default=str), record.pid, _now()))
            self.remove(record.job_id)
        return stale

    @_locked
    def set_restart_argv(self, job_id: int, argv: list[str]) -> None:
        """Keep the ``pio`` arguments that started a job (``["run", job_name, …]``), for a restore after an
        unclean stop."""
        self._conn.execute("INSERT OR REPLACE INTO pio_job_restart (job_id, argv) VALUES (?, ?)",
                           (job_id, json.dumps([str(a) for a in argv])))

    @_locked
    def take_unclean_stops(self) -> list[dict[str, Any]]:
        """Jobs that were running when they stopped uncleanly, oldest first, removed from the table:
        ``[{job_name, experiment, job_source, argv, settings, pid, found_at}]``."""
        self.clean_stale()
        with self._transaction():
            rows = self._conn.execute("SELECT rowid, * FROM unclean_stops ORDER BY rowid").fetchall()
            self._conn.execute("DELETE FROM unclean_stops")
        return [{"job_name": r["job_name"], "experiment": r["experiment"], "job_source": r["job_source"],
                 "argv": json.loads(r["argv"]), "settings": json.loads(r["settings"]), "pid": r["pid"],
                 "found_at": r["found_at"]} for r in rows]

    def _transaction(self) -> Iterator[None]:
        return _Transaction(self._conn)


class _Transaction:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: Any, *rest: Any) -> None:
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")


def _record(row: sqlite3.Row) -> JobRecord:
    return JobRecord(
        job_id=row["job_id"],
        unit=row["unit"],
        experiment=row["experiment"],
        job_name=row["job_name"],
        job_source=row["job_source"],
        started_at=row["started_at"],
        is_running=bool(row["is_running"]),
        leader=row["leader"],
        pid=row["pid"],
        is_long_running_job=bool(row["is_long_running_job"]),
        ended_at=row["ended_at"],
    )


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + "Z"
