"""open_sqlite: the one opener of the stores' SQLite files (busy timeout, WAL, synchronous, read-only readers)."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from reactorkit.core import sqlite as sqlite_module
from reactorkit.core.sqlite import SYNCHRONOUS_LEVELS, open_sqlite


@pytest.fixture
def statements(monkeypatch):
    """The SQL each connection opened by open_sqlite runs, in order (real connections, traced)."""
    seen: list[str] = []
    real_connect = sqlite3.connect

    def traced(*args, **kwargs):
        conn = real_connect(*args, **kwargs)
        conn.set_trace_callback(seen.append)
        return conn

    monkeypatch.setattr(sqlite_module.sqlite3, "connect", traced)
    return seen


def test_a_new_file_is_switched_to_wal_once_and_later_opens_only_read_the_mode(tmp_path, statements):
    path = tmp_path / "deep" / "folder" / "store.sqlite"
    first = open_sqlite(path)
    assert path.parent.is_dir()
    assert [s for s in statements if s.startswith("PRAGMA journal_mode")] == ["PRAGMA journal_mode",
                                                                            "PRAGMA journal_mode=WAL"]
    assert statements[-1] == "PRAGMA synchronous=NORMAL"
    statements.clear()
    second = open_sqlite(path)
    assert [s for s in statements if s.startswith("PRAGMA journal_mode")] == ["PRAGMA journal_mode"]
    assert second.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    first.close()
    second.close()


def test_wal_false_leaves_the_journal_mode_alone(tmp_path):
    conn = open_sqlite(tmp_path / "plain.sqlite", wal=False)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    conn.close()


def test_the_switch_to_wal_waits_for_a_reader_that_holds_a_new_file(tmp_path):
    path = tmp_path / "store.sqlite"
    reader = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    reader.execute("CREATE TABLE t (x)")
    reader.execute("BEGIN")
    reader.execute("SELECT * FROM t").fetchall()
    threading.Timer(0.2, reader.execute, ("COMMIT",)).start()
    conn = open_sqlite(path, timeout_s=30)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    reader.close()


@pytest.mark.parametrize("level", [*SYNCHRONOUS_LEVELS, "normal", None])
def test_the_synchronous_level_is_applied(tmp_path, level):
    conn = open_sqlite(tmp_path / "store.sqlite", synchronous=level)
    expected = {"OFF": 0, "NORMAL": 1, "FULL": 2, "EXTRA": 3}[(level or "FULL").upper()]  # None: SQLite's FULL
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == expected
    conn.close()


def test_an_unknown_synchronous_level_is_refused_before_anything_is_created(tmp_path):
    path = tmp_path / "new" / "store.sqlite"
    with pytest.raises(ValueError, match="synchronous must be one of"):
        open_sqlite(path, synchronous="NORMAL; DROP TABLE t")
    assert not path.parent.exists()


def test_the_busy_timeout_is_timeout_s_in_seconds(tmp_path):
    path = tmp_path / "store.sqlite"
    default = open_sqlite(path)
    assert default.execute("PRAGMA busy_timeout").fetchone()[0] == 15000
    short = open_sqlite(path, timeout_s=0.05)
    assert short.execute("PRAGMA busy_timeout").fetchone()[0] == 50
    default.execute("CREATE TABLE t (x)")
    default.execute("BEGIN IMMEDIATE")
    default.execute("INSERT INTO t VALUES (1)")
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        short.execute("INSERT INTO t VALUES (2)")  # waited 50 ms for the writer, then gave up
    default.execute("COMMIT")
    default.close()
    short.close()


def test_connections_are_autocommit_and_take_row_factory_and_thread_check(tmp_path):
    path = tmp_path / "store.sqlite"
    writer = open_sqlite(path, row_factory=sqlite3.Row)
    assert writer.isolation_level is None
    writer.execute("CREATE TABLE t (x)")
    writer.execute("INSERT INTO t VALUES (7)")
    assert not writer.in_transaction
    assert writer.execute("SELECT x FROM t").fetchone()["x"] == 7
    other = sqlite3.connect(path)
    assert other.execute("SELECT x FROM t").fetchall() == [(7,)]  # committed without a commit() call
    other.close()

    results: list[object] = []

    def use(conn):
        try:
            results.append(conn.execute("SELECT count(*) FROM t").fetchone()[0])
        except sqlite3.ProgrammingError as exc:
            results.append(exc)

    shared = open_sqlite(path, check_same_thread=False)
    for conn in (writer, shared):
        thread = threading.Thread(target=use, args=(conn,))
        thread.start()
        thread.join()
    assert isinstance(results[0], sqlite3.ProgrammingError)  # the default: only the opening thread
    assert results[1] == 1
    writer.close()
    shared.close()


def test_read_only_opens_neither_create_nor_write_nor_switch(tmp_path):
    missing = tmp_path / "no folder" / "missing.sqlite"
    with pytest.raises(sqlite3.OperationalError):
        open_sqlite(missing, read_only=True)
    assert not missing.parent.exists()

    path = tmp_path / "odd name ?#%20.sqlite"  # characters a file: URI would otherwise take for its own
    plain = sqlite3.connect(path)
    plain.execute("CREATE TABLE t (x)")
    plain.execute("INSERT INTO t VALUES (1)")
    plain.commit()
    plain.close()
    reader = open_sqlite(path, read_only=True, row_factory=sqlite3.Row)
    assert reader.execute("SELECT x FROM t").fetchone()["x"] == 1
    assert reader.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # not switched to WAL
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        reader.execute("INSERT INTO t VALUES (2)")
    reader.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["odd name ?#%20.sqlite"]


def test_read_only_reads_a_wal_file_with_its_log(tmp_path):
    path = tmp_path / "store.sqlite"
    writer = open_sqlite(path)
    writer.execute("CREATE TABLE t (x)")
    writer.execute("INSERT INTO t VALUES (1)")  # still in the -wal file while the writer is open
    reader = open_sqlite(path, read_only=True)
    assert reader.execute("SELECT count(*) FROM t").fetchone()[0] == 1
    reader.close()
    writer.close()
