"""Opening the unit's SQLite files: the settings every store shares, in one place.

The stores (the job registry, the persistent cache with the active calibrations, the bioreactor
bookkeeping and the PWM leases, the audit log, the outbox, the leader database) and the readers of their
files open them with :func:`open_sqlite`; what a store sets beyond that (foreign keys, its schema, cache
sizes) it sets itself. :func:`use_wal` is the journal-mode switch it makes.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any, Callable

#: SQLite's busy timeout of every store, seconds (domain facts §4: 15 s)
DEFAULT_TIMEOUT_S = 15.0

#: the values of ``PRAGMA synchronous`` (https://sqlite.org/pragma.html#pragma_synchronous)
SYNCHRONOUS_LEVELS = ("OFF", "NORMAL", "FULL", "EXTRA")


def use_wal(conn: Any, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
    """Put the SQLite database of ``conn`` (a ``sqlite3.Connection`` in autocommit mode) in WAL journal mode.

    A database already in WAL mode (every open after the first) is only read. The switch is retried for up
    to ``timeout_s`` seconds while another connection holds the database: SQLite answers a journal-mode change
    it cannot make at once with "database is locked" without waiting for its busy timeout (seen with four
    threads opening a new database together, one of them losing its write).

    Raises:
        sqlite3.OperationalError: any other error, or the database stayed locked for ``timeout_s`` seconds.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
                conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.01)


def open_sqlite(path: Path | str, *, timeout_s: float = DEFAULT_TIMEOUT_S, wal: bool = True,
                synchronous: str | None = "NORMAL", read_only: bool = False, check_same_thread: bool = True,
                row_factory: Callable[[sqlite3.Cursor, tuple], Any] | None = None) -> sqlite3.Connection:
    """A connection to the SQLite file ``path`` in autocommit mode (``isolation_level=None``: each statement is
    its own transaction unless the caller sends ``BEGIN``).

    What it sets, and why:

    * the busy timeout, ``timeout_s`` seconds (15 by default): a statement that finds the file locked by
      another connection waits that long for it before it fails;
    * with ``wal`` (the default), WAL journal mode through :func:`use_wal`: readers never wait for the writer,
      and a commit writes the log only; the switch, made once per file, is retried for ``timeout_s`` seconds
      while another connection holds the file;
    * ``PRAGMA synchronous`` = ``synchronous`` (``NORMAL`` by default: in WAL mode a commit is not flushed to
      storage each time, and the file stays consistent after a crash or a power cut, which can only lose the
      last commits; ``FULL`` also keeps those); None leaves SQLite's default (``FULL``);
    * ``row_factory`` (e.g. ``sqlite3.Row``) when given, and ``check_same_thread`` (False for a connection
      that several threads share under their own lock).

    The folder of ``path`` is created. With ``read_only`` the file is opened with ``mode=ro`` instead: it is
    not created (nor its folder), and neither the journal mode nor ``synchronous`` is set, as nothing is
    written through it (a database in WAL mode is read with its log, as by any connection).

    Args:
        path: The SQLite file.
        timeout_s: Busy timeout, seconds (also how long the switch to WAL is retried).
        wal: Put the file in WAL journal mode (writers; a second connection of a process to a file that is
            already in WAL mode may pass False).
        synchronous: ``OFF``, ``NORMAL``, ``FULL`` or ``EXTRA`` (any case), or None.
        read_only: Open read-only (``mode=ro``).
        check_same_thread: sqlite3's check that only the opening thread uses the connection.
        row_factory: The connection's ``row_factory``.

    Raises:
        ValueError: ``synchronous`` is none of the levels.
        OSError: the folder cannot be created.
        sqlite3.OperationalError: the file cannot be opened (read-only: it does not exist), or stayed locked for
            ``timeout_s`` seconds while it was switched to WAL mode.
        sqlite3.DatabaseError: the file is not an SQLite database (found when the journal mode is read).
    """
    level = None if synchronous is None or read_only else synchronous.upper()
    if level is not None and level not in SYNCHRONOUS_LEVELS:
        raise ValueError(f"synchronous must be one of {', '.join(SYNCHRONOUS_LEVELS)}, got {synchronous!r}")
    if read_only:
        conn = sqlite3.connect(f"{Path(path).absolute().as_uri()}?mode=ro", uri=True, timeout=timeout_s,
                               isolation_level=None, check_same_thread=check_same_thread)
    else:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, timeout=timeout_s, isolation_level=None, check_same_thread=check_same_thread)
    try:
        if row_factory is not None:
            conn.row_factory = row_factory
        if wal and not read_only:
            use_wal(conn, timeout_s)
        if level is not None:
            conn.execute(f"PRAGMA synchronous={level}")
    except BaseException:
        conn.close()
        raise
    return conn
