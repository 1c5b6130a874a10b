"""The audit log: every state-changing API request — who (token name), what, when, result.

Rows go to the ``audit_log`` table: on the leader, in the leader database (so
``GET /api/audit`` lists them and exports carry them as the ``audit_log``
dataset, filtered by experiment like every dataset); on a worker, in
``storage/audit.sqlite`` (``GET /unit_api/audit``). The leader's rows cover what
reaches the workers through its fan-outs; a worker's own file keeps what was sent
to it directly.

Columns: ``timestamp`` (wall clock, ISO 8601 UTC), ``pioreactor_unit`` (the unit
that served it), ``experiment`` (named by the path or the JSON body, else null),
``actor`` (the token's name; ``anonymous`` without a valid token; ``auth-off``
when authentication is off), ``token_id``, ``scope``, ``method``, ``path``,
``query``, ``status`` (the HTTP status answered) and ``remote_addr``.
"""

from __future__ import annotations

import sqlite3
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from reactorkit.core.sqlite import open_sqlite

TABLE = "audit_log"
CREATE_SQL = """
CREATE TABLE IF NOT EXISTS audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    timestamp TEXT NOT NULL,
    pioreactor_unit TEXT NOT NULL,
    experiment TEXT,
    actor TEXT NOT NULL,
    token_id TEXT,
    scope TEXT,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    query TEXT,
    status INTEGER NOT NULL,
    remote_addr TEXT
);
CREATE INDEX IF NOT EXISTS audit_log_ts_ix ON audit_log (timestamp);
"""
COLUMNS = ("timestamp", "pioreactor_unit", "experiment", "actor", "token_id", "scope", "method", "path", "query",
           "status", "remote_addr")


def audit_path(config: Any, leader: bool) -> Path:
    """The leader database on the leader, ``storage/audit.sqlite`` on a worker."""
    from reactorkit.core.paths import dot_pioreactor

    if leader:
        from reactorkit.core.leader_db import database_path

        return database_path(config)
    return dot_pioreactor() / "storage" / "audit.sqlite"


def utc_timestamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class AuditLog:
    """Append and read rows of one ``audit_log`` table; one connection per thread.

    Each use checks (one ``stat``) that the file is still the one the thread's connection opened, and opens the
    new one when it was replaced (a state archive imported), so no row goes into the replaced file.

    Args:
        path: The SQLite file (created with the table on first use).
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._local = threading.local()

    def _conn(self) -> sqlite3.Connection:
        from reactorkit.core.paths import file_identity, open_identified

        conn = getattr(self._local, "conn", None)
        if conn is not None and file_identity(self.path) != self._local.file_id:
            conn.close()
            conn = self._local.conn = None
        if conn is None:
            conn, file_id = open_identified(
                self.path, lambda: open_sqlite(self.path, synchronous="NORMAL", row_factory=sqlite3.Row))
            conn.executescript(CREATE_SQL)
            self._local.conn, self._local.file_id = conn, file_id
        return conn

    def append(self, **row: Any) -> None:
        """Add one row (``timestamp`` defaults to now); unknown keys are ignored."""
        row.setdefault("timestamp", utc_timestamp())
        values = [row.get(c) for c in COLUMNS]
        self._conn().execute(f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})",
                             values)

    def read(self, *, limit: int = 1000, experiment: str | None = None, actor: str | None = None,
             unit: str | None = None, since: str | None = None) -> list[dict[str, Any]]:
        """The newest ``limit`` rows matching the filters, oldest first."""
        where, args = [], []
        for column, value in (("experiment", experiment), ("actor", actor), ("pioreactor_unit", unit)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if since is not None:
            where.append("timestamp >= ?")
            args.append(since)
        sql = f"SELECT id, {', '.join(COLUMNS)} FROM {TABLE}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC LIMIT ?"
        rows = [dict(r) for r in self._conn().execute(sql, (*args, int(limit))).fetchall()]
        return rows[::-1]
