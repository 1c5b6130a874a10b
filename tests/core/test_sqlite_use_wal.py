"""use_wal: a database is put in WAL mode even while another connection holds it for a moment."""

from __future__ import annotations

import sqlite3
import threading

import pytest
from concurrent_opens import insert_a_row, open_together

from reactorkit.core.sqlite import use_wal


def test_the_switch_waits_for_a_reader_that_holds_the_database(tmp_path):
    path = tmp_path / "store.sqlite"
    reader = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    reader.execute("CREATE TABLE t (x)")
    reader.execute("BEGIN")
    reader.execute("SELECT * FROM t").fetchall()  # a read transaction: no journal-mode change meanwhile
    switcher = sqlite3.connect(path, timeout=0.05, isolation_level=None)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        switcher.execute("PRAGMA journal_mode=WAL")  # what every store did on open
    threading.Timer(0.2, reader.execute, ("COMMIT",)).start()  # the reader finishes while use_wal retries
    use_wal(switcher, timeout_s=30)
    assert switcher.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    reader.close()
    switcher.close()


def test_a_database_already_in_wal_mode_is_only_read_and_a_lock_that_stays_is_reported(tmp_path):
    path = tmp_path / "store.sqlite"
    first = sqlite3.connect(path, isolation_level=None)
    use_wal(first)
    second = sqlite3.connect(path, isolation_level=None)
    second.execute("BEGIN EXCLUSIVE")  # in WAL mode readers still read: the mode is only looked at
    use_wal(first)
    assert first.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    second.execute("COMMIT")
    other = tmp_path / "other.sqlite"
    holder = sqlite3.connect(other, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN")
    holder.execute("SELECT * FROM t").fetchall()
    stuck = sqlite3.connect(other, timeout=0.01, isolation_level=None)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        use_wal(stuck, timeout_s=0.1)
    for conn in (first, second, holder, stuck):
        conn.close()


def test_concurrent_first_opens_all_end_in_wal_mode(tmp_path):
    path = tmp_path / "new.sqlite"

    def open_and_write():
        conn = sqlite3.connect(path, timeout=15, isolation_level=None)
        use_wal(conn)
        insert_a_row(conn)

    assert open_together(open_and_write) == []
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == 8
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
