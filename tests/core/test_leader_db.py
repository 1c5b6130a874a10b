"""The leader database: pragmas, migrations, plugin tables, inventory and assignments."""

import sqlite3

import pytest
from concurrent_opens import insert_a_row, open_together

from reactorkit.core.descriptors import TableDescriptor, TimeSeries
from reactorkit.core.hooks import hookimpl
from reactorkit.core.leader_db import CORE_MIGRATIONS, LeaderDB, UnknownExperiment, UnknownWorker, connect
from reactorkit.core.plugins import Registry


@pytest.fixture
def db(tmp_path, monkeypatch):
    monkeypatch.setenv("DOT_PIOREACTOR", str(tmp_path))
    database = LeaderDB(tmp_path / "storage" / "pioreactor.sqlite")
    yield database
    database.close()


def _experiment(db, name):
    db.execute("INSERT INTO experiments (experiment, created_at, description) VALUES (?, '2026-01-01T00:00:00.000Z', '')",
               (name,))


def test_connections_use_wal_busy_timeout_and_foreign_keys(db):
    assert db.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.conn.execute("PRAGMA busy_timeout").fetchone()[0] == 15000
    assert db.conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1


def test_writer_connections_accept_rows_of_unknown_experiments(db):
    writer = connect(db.path, foreign_keys=False)
    writer.execute("INSERT INTO logs (experiment, pioreactor_unit, timestamp, message, source, level, task)"
                   " VALUES ('$experiment', 'w1', '2026-01-01T00:00:00.000Z', 'hi', 'app', 'INFO', 'monitor')")
    assert db.query_one("SELECT count(*) AS n FROM logs")["n"] == 1
    with pytest.raises(sqlite3.IntegrityError):
        db.execute("INSERT INTO logs (experiment, pioreactor_unit, timestamp, message, source)"
                   " VALUES ('nope', 'w1', '2026-01-01T00:00:00.000Z', 'hi', 'app')")


def test_core_migrations_are_recorded_and_idempotent(db):
    assert db.schema_versions()["core"] == len(CORE_MIGRATIONS)
    again = LeaderDB(db.path)
    assert again.schema_versions()["core"] == len(CORE_MIGRATIONS)
    for table in ("experiments", "experiment_tags", "workers", "experiment_worker_assignments",
                  "experiment_worker_assignments_history", "pioreactor_unit_labels", "logs", "config_files_histories"):
        assert db.table_exists(table), table


def _registry_with(plugin_manager, *tables):
    class Storage:
        @hookimpl
        def register_storage(self):
            yield from tables

    plugin_manager.register(Storage(), name="storage_plugin")
    return Registry.from_plugins(plugin_manager)


def test_plugin_tables_are_created_and_migrated_when_their_version_grows(db, plugin_manager):
    v1 = TableDescriptor(table="widgets", create_sql="CREATE TABLE IF NOT EXISTS widgets (experiment TEXT, a REAL)")
    LeaderDB(db.path, registry=_registry_with(plugin_manager, v1))
    assert db.columns("widgets") == ["experiment", "a"]

    pm2 = type(plugin_manager)("reactorkit")
    from reactorkit.core.hooks import specs
    pm2.add_hookspecs(specs)
    v2 = TableDescriptor(table="widgets", version=2, create_sql=v1.create_sql,
                         migrations=("ALTER TABLE widgets ADD COLUMN b REAL",))
    LeaderDB(db.path, registry=_registry_with(pm2, v2))
    assert db.columns("widgets") == ["experiment", "a", "b"]
    assert db.schema_versions()["table:widgets"] == 2


def test_a_broken_plugin_table_is_skipped_not_fatal(db, plugin_manager):
    bad = TableDescriptor(table="broken", create_sql="CREATE TABLE broken (")
    good = TableDescriptor(table="fine", create_sql="CREATE TABLE IF NOT EXISTS fine (x)")
    LeaderDB(db.path, registry=_registry_with(plugin_manager, bad, good))
    assert db.table_exists("fine") and not db.table_exists("broken")


def test_time_series_index_is_added_once_to_a_declared_reading_table(db, plugin_manager):
    table = TableDescriptor(
        table="od_readings",
        create_sql="CREATE TABLE IF NOT EXISTS od_readings (experiment TEXT NOT NULL, pioreactor_unit TEXT NOT NULL,"
                   " timestamp TEXT NOT NULL, od_reading REAL, angle INTEGER, channel INTEGER)",
        time_series=TimeSeries(value_column="od_reading", per_channel=True),
    )
    LeaderDB(db.path, registry=_registry_with(plugin_manager, table))
    indexes = [r["name"] for r in db.query("SELECT name FROM pragma_index_list('od_readings')")]
    assert indexes == ["od_readings_ts_ix"]
    assert db.ensure_index("od_readings", ("experiment", "pioreactor_unit", "channel", "timestamp")) is False


def test_assigning_replaces_the_old_assignment_and_keeps_history(db):
    _experiment(db, "exp1")
    _experiment(db, "exp2")
    assert db.add_worker("w1", "pioreactor_20ml", "1.5") is True
    assert db.add_worker("w1") is False
    assert db.assign("w1", "exp1") is None
    assert db.assign("w1", "exp2") == "exp1"
    assert db.assignment_of("w1") == "exp2"
    assert db.assigned_workers("exp2") == ["w1"]
    history = db.query("SELECT experiment, unassigned_at FROM experiment_worker_assignments_history ORDER BY rowid")
    assert [h["experiment"] for h in history] == ["exp1", "exp2"]
    assert history[0]["unassigned_at"] is not None and history[1]["unassigned_at"] is None


def test_inactive_workers_are_not_assigned_targets_by_default(db):
    _experiment(db, "exp1")
    db.add_worker("w1")
    db.add_worker("w2")
    db.assign("w1", "exp1")
    db.assign("w2", "exp1")
    db.set_worker_active("w2", False)
    assert db.assigned_workers("exp1") == ["w1"]
    assert db.assigned_workers("exp1", active_only=False) == ["w1", "w2"]
    assert [w["pioreactor_unit"] for w in db.workers(active_only=True)] == ["w1"]


def test_unknown_worker_or_experiment_is_refused(db):
    _experiment(db, "exp1")
    with pytest.raises(UnknownWorker):
        db.assign("ghost", "exp1")
    db.add_worker("w1")
    with pytest.raises(UnknownExperiment):
        db.assign("w1", "nope")
    with pytest.raises(UnknownWorker):
        db.set_worker_active("ghost", True)


def test_deleting_an_experiment_cascades_to_assignments_and_tags(db):
    _experiment(db, "exp1")
    db.add_worker("w1")
    db.assign("w1", "exp1")
    db.execute("INSERT INTO experiment_tags VALUES ('exp1', 'x', '2026-01-01T00:00:00.000Z')")
    db.execute("DELETE FROM experiments WHERE experiment = 'exp1'")
    assert db.assignment_of("w1") is None
    assert db.query("SELECT * FROM experiment_tags") == []


def test_units_are_the_leader_and_the_workers(db):
    db.add_worker("w2")
    db.add_worker("w1")
    assert db.units() == sorted({db.leader_unit(), "w1", "w2"})


def test_removing_a_worker_closes_its_assignment(db):
    _experiment(db, "exp1")
    db.add_worker("w1")
    db.assign("w1", "exp1")
    assert db.remove_worker("w1") == "exp1"
    assert db.worker("w1") is None
    assert db.query_one("SELECT unassigned_at FROM experiment_worker_assignments_history")["unassigned_at"] is not None
    with pytest.raises(UnknownWorker):
        db.remove_worker("w1")


OD_TABLE = TableDescriptor(
    table="od_readings",
    create_sql="CREATE TABLE IF NOT EXISTS od_readings (experiment TEXT NOT NULL, pioreactor_unit TEXT NOT NULL,"
               " timestamp TEXT NOT NULL, od_reading REAL NOT NULL, angle INTEGER, channel INTEGER NOT NULL)",
    time_series=TimeSeries(value_column="od_reading", per_channel=True),
)


def _od_rows(n, seed=0):
    import random

    from reactorkit.core.clock import utc_iso_ms

    rng = random.Random(seed)
    start = 1_790_000_000.0
    rows = [("e1", f"u{i % 3}", utc_iso_ms(start + i * rng.uniform(0.5, 9.0)), rng.random(), 90, 1 + i % 2)
            for i in range(n)]
    rng.shuffle(rows)  # out of order, as after a broker restart
    return rows


def _rollup_matches_brute_force(db, sizes=(10, 15, 20, 120, 1920, 15 * 2**16)):
    for size in sizes:
        expected = {(r["pioreactor_unit"], r["channel"], r["b"]): (r["ts"], r["v"]) for r in db.query(
            "SELECT pioreactor_unit, channel, unixepoch(timestamp) / ? AS b, min(timestamp) AS ts, od_reading AS v"
            " FROM od_readings GROUP BY 1, 2, 3", (size,))}
        got = {(r["pioreactor_unit"], r["channel"], r["bucket"]): (r["timestamp"], r["value"]) for r in db.query(
            "SELECT * FROM time_series_rollups WHERE data_source = 'od_readings' AND bucket_s = ?", (size,))}
        assert got == expected, size


def test_rollups_keep_the_first_row_of_every_bucket_whatever_the_insert_order(db, plugin_manager):
    db = LeaderDB(db.path, registry=_registry_with(plugin_manager, OD_TABLE), foreign_keys=False)
    assert db.rollup_ready("od_readings")
    with db.transaction():
        db.conn.executemany("INSERT INTO od_readings VALUES (?, ?, ?, ?, ?, ?)", _od_rows(6000))
    _rollup_matches_brute_force(db)


def test_rollups_are_back_filled_for_existing_rows(db, plugin_manager):
    db.execute(OD_TABLE.create_sql)
    with db.transaction():
        db.conn.executemany("INSERT INTO od_readings VALUES (?, ?, ?, ?, ?, ?)", _od_rows(6000, seed=1))
    upgraded = LeaderDB(db.path, registry=_registry_with(plugin_manager, OD_TABLE), foreign_keys=False)
    _rollup_matches_brute_force(upgraded)


def test_deleting_an_experiment_deletes_its_rollups(db, plugin_manager):
    db = LeaderDB(db.path, registry=_registry_with(plugin_manager, OD_TABLE))
    _experiment(db, "e1")
    db.execute("INSERT INTO od_readings VALUES ('e1', 'u1', '2026-01-01T00:00:00.000Z', 0.5, 90, 2)")
    assert db.query_one("SELECT count(*) AS n FROM time_series_rollups")["n"] > 0
    db.execute("DELETE FROM experiments WHERE experiment = 'e1'")
    assert db.query_one("SELECT count(*) AS n FROM time_series_rollups")["n"] == 0


def test_rollups_kept_per_batch_match_the_trigger_and_leave_no_pause_behind(db, plugin_manager):
    db = LeaderDB(db.path, registry=_registry_with(plugin_manager, OD_TABLE), foreign_keys=False)
    rollup = db.batch_rollup("od_readings")
    assert rollup is not None
    rows = _od_rows(6000, seed=2)
    for start in range(0, len(rows), 700):  # out-of-order batches, as after a broker restart
        with db.transaction() as conn:
            rollup.pause(conn)
            after = rollup.mark(conn)
            conn.executemany("INSERT INTO od_readings VALUES (?, ?, ?, ?, ?, ?)", rows[start:start + 700])
            rollup.apply(conn, after)
            rollup.resume(conn)
    _rollup_matches_brute_force(db)
    assert db.query_one("SELECT count(*) AS n FROM time_series_rollups_paused")["n"] == 0
    db.execute("INSERT INTO od_readings VALUES ('e1', 'u9', '2026-01-01T00:00:00.000Z', 0.5, 90, 1)")  # any other writer
    _rollup_matches_brute_force(db)


def test_a_paused_rollup_is_seen_only_by_the_transaction_that_paused_it(db, plugin_manager):
    db = LeaderDB(db.path, registry=_registry_with(plugin_manager, OD_TABLE), foreign_keys=False)
    rollup = db.batch_rollup("od_readings")
    other = connect(db.path, foreign_keys=False)
    with db.transaction() as conn:
        rollup.pause(conn)
        assert other.execute("SELECT count(*) FROM time_series_rollups_paused").fetchone()[0] == 0
        conn.execute("INSERT INTO od_readings VALUES ('e1', 'u1', '2026-01-01T00:00:00.000Z', 0.5, 90, 1)")
        assert conn.execute("SELECT count(*) FROM time_series_rollups").fetchone()[0] == 0  # the trigger stood aside
        rollup.resume(conn)
    other.close()
    db.execute("INSERT INTO od_readings VALUES ('e1', 'u1', '2026-01-01T00:00:10.000Z', 0.5, 90, 1)")
    assert db.query_one("SELECT count(*) AS n FROM time_series_rollups")["n"] > 0


def test_a_version_1_rollup_gets_the_pausable_trigger_without_a_new_back_fill(db, plugin_manager):
    db = LeaderDB(db.path, registry=_registry_with(plugin_manager, OD_TABLE), foreign_keys=False)
    db.execute('DROP TRIGGER "od_readings_rollup_ai"')
    db.execute('CREATE TRIGGER "od_readings_rollup_ai" AFTER INSERT ON od_readings BEGIN SELECT 1; END')
    db.execute("UPDATE schema_migrations SET version = 1 WHERE component = 'rollup:od_readings'")
    db.execute("INSERT INTO time_series_rollups VALUES ('e1', 'od_readings', 'u1', 1, 10, 1, 'kept', 1.0)")
    upgraded = LeaderDB(db.path, registry=Registry.from_plugins(plugin_manager), foreign_keys=False)
    assert upgraded.schema_versions()["rollup:od_readings"] == 2
    sql = upgraded.query_one("SELECT sql FROM sqlite_master WHERE name = 'od_readings_rollup_ai'")["sql"]
    assert "time_series_rollups_paused" in sql
    assert upgraded.query_one("SELECT count(*) AS n FROM time_series_rollups")["n"] == 1  # no back-fill


def _insert_worker_in_another_process(path, unit):
    import subprocess
    import sys

    code = ("import sqlite3, sys\n"
            "conn = sqlite3.connect(sys.argv[1], timeout=15)\n"
            "conn.execute(\"INSERT INTO workers (pioreactor_unit, added_at) VALUES (?, '2026-01-01T00:00:00.000Z')\","
            " (sys.argv[2],))\n"
            "conn.commit()\n")
    subprocess.run([sys.executable, "-c", code, str(path), unit], check=True)


def test_an_unchanged_read_sees_a_commit_of_another_process_on_the_next_call(db):
    db.add_worker("w1")
    assert [w["pioreactor_unit"] for w in db.workers()] == ["w1"]
    assert [w["pioreactor_unit"] for w in db.workers()] == ["w1"]  # read again from what this thread kept
    _insert_worker_in_another_process(db.path, "w2")
    assert [w["pioreactor_unit"] for w in db.workers()] == ["w1", "w2"]
    assert db.units() == sorted({db.leader_unit(), "w1", "w2"})


def test_an_unchanged_read_sees_this_connections_own_writes_and_another_connections(db):
    db.add_worker("w1")
    assert db.workers()[0]["is_active"] == 1
    db.set_worker_active("w1", False)  # this thread's own connection: its data_version does not move
    assert db.workers()[0]["is_active"] == 0
    other = connect(db.path)
    other.execute("UPDATE workers SET model_name = 'pioreactor_40ml' WHERE pioreactor_unit = 'w1'")
    other.close()
    assert db.workers()[0]["model_name"] == "pioreactor_40ml"
    with db.transaction():  # uncommitted rows of this thread's transaction are seen inside it
        db.execute("DELETE FROM workers")
        assert db.workers() == []
    assert db.workers() == []


def test_an_unchanged_read_hands_out_copies(db):
    db.add_worker("w1")
    first = db.workers()
    first[0]["pioreactor_unit"] = "changed"
    first.append({"pioreactor_unit": "extra"})
    assert [w["pioreactor_unit"] for w in db.workers()] == ["w1"]


def swap_folder(path, fill):
    """Put another folder in the place of ``path``'s folder by renames, as a state-archive import does (the
    file's ``-wal`` and ``-shm`` go with the replaced folder); ``fill(new_path)`` makes the new file."""
    staged = path.parent.with_name("staged")
    staged.mkdir()
    fill(staged / path.name)
    path.parent.rename(path.parent.with_name("replaced"))
    staged.rename(path.parent)


def test_a_replaced_database_file_is_opened_after_a_recheck(db):
    db.add_worker("w1")
    assert [w["pioreactor_unit"] for w in db.workers()] == ["w1"]

    def fill(path):
        other = LeaderDB(path)
        other.add_worker("w2")
        other.close()

    swap_folder(db.path, fill)
    assert [w["pioreactor_unit"] for w in db.workers()] == ["w1"]  # still the replaced file until a recheck
    db.recheck_file()
    assert [w["pioreactor_unit"] for w in db.workers()] == ["w2"]
    db.add_worker("w3")
    with sqlite3.connect(db.path) as conn:  # written into the file now in place
        assert [r[0] for r in conn.execute("SELECT pioreactor_unit FROM workers ORDER BY 1")] == ["w2", "w3"]
    conn = db.conn
    db.recheck_file()  # the same file: the connection stays
    assert db.conn is conn


def test_a_replacing_file_without_the_schema_is_migrated(db):
    swap_folder(db.path, lambda path: sqlite3.connect(path).close())
    db.recheck_file()
    db.add_worker("w1")  # the tables are there
    assert [w["pioreactor_unit"] for w in db.workers()] == ["w1"]


def test_a_connection_goes_back_to_the_instance_when_its_thread_ends(db):
    import threading

    seen = []

    def use(begin: bool) -> None:
        seen.append(db.conn)
        db.workers()
        if begin:  # a thread that ends inside a transaction: rolled back before the next thread gets it
            db.conn.execute("BEGIN IMMEDIATE")
            db.conn.execute("INSERT INTO workers (pioreactor_unit, added_at) VALUES ('half', '2026-01-01T00:00:00.000Z')")

    for begin in (True, False):
        thread = threading.Thread(target=use, args=(begin,))
        thread.start()
        thread.join()
    assert seen[0] is seen[1]  # the second thread took the first one's connection, not a new one
    assert not seen[1].in_transaction
    assert db.workers() == [] and db.conn.execute("SELECT count(*) FROM workers").fetchone()[0] == 0
    db.add_worker("w1")  # this thread's connection is another; its commit shows to the kept results
    seen.append(None)
    thread = threading.Thread(target=lambda: seen.append([w["pioreactor_unit"] for w in db.workers()]))
    thread.start()
    thread.join()
    assert seen[-1] == ["w1"]


def test_a_connection_left_by_an_ended_thread_is_rechecked_by_the_next(db):
    import threading

    db.add_worker("w1")
    thread = threading.Thread(target=db.workers)  # leaves its connection, opened on the first file
    thread.start()
    thread.join()
    swap_folder(db.path, lambda path: LeaderDB(path).add_worker("w2"))
    seen = []

    def request() -> None:  # as a request: recheck first, then the connection the ended thread left
        db.recheck_file()
        seen.append([w["pioreactor_unit"] for w in db.workers()])

    thread = threading.Thread(target=request)
    thread.start()
    thread.join()
    assert seen == [["w2"]]


def test_a_connection_left_by_an_ended_thread_is_rechecked_even_without_a_request(db):
    """A thread that never calls recheck_file (a background thread of the API, a task) opened the file in
    place before connections were handed over; it must not get an ended thread's connection to a replaced file
    and write into it (those rows would be lost)."""
    import threading

    thread = threading.Thread(target=db.workers)  # leaves its connection, opened on the first file
    thread.start()
    thread.join()
    swap_folder(db.path, lambda path: LeaderDB(path).add_worker("w2"))

    def background() -> None:
        db.add_worker("w3")

    thread = threading.Thread(target=background)
    thread.start()
    thread.join()
    with sqlite3.connect(db.path) as conn:  # the file in place has the row
        assert [r[0] for r in conn.execute("SELECT pioreactor_unit FROM workers ORDER BY 1")] == ["w2", "w3"]


def test_a_file_replaced_while_its_connection_opens_is_seen_at_the_next_recheck(db, monkeypatch):
    """The file's identity is the one the connection opened, not the one in place a moment later: a folder
    swapped between the open and the stat must not be taken for the connection's file (its rows would go
    into the replaced file for good)."""
    import reactorkit.core.leader_db as leader_db

    db.add_worker("w1")
    db.close()  # the next use opens the file again
    real_connect = leader_db.connect

    def connect_then_swap(path, **kwargs):
        conn = real_connect(path, **kwargs)
        monkeypatch.setattr(leader_db, "connect", real_connect)
        swap_folder(db.path, lambda new: LeaderDB(new).add_worker("w2"))  # an import lands right after the open
        return conn

    monkeypatch.setattr(leader_db, "connect", connect_then_swap)
    assert [w["pioreactor_unit"] for w in db.workers()] == ["w1"]  # this connection has the replaced file
    db.recheck_file()  # the next request
    db.add_worker("w3")
    with sqlite3.connect(db.path) as conn:  # the file in place got the row
        assert [r[0] for r in conn.execute("SELECT pioreactor_unit FROM workers ORDER BY 1")] == ["w2", "w3"]


def test_concurrent_first_connections_to_a_new_file_all_succeed_in_wal_mode(tmp_path):
    path = tmp_path / "storage" / "pioreactor.sqlite"
    assert open_together(lambda: insert_a_row(connect(path))) == []
    conn = connect(path)
    assert conn.execute("SELECT count(*) AS n FROM t").fetchone()["n"] == 8
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    conn.close()


def test_read_only_connections_read_rows_and_refuse_writes(db):
    reader = connect(db.path, read_only=True)
    assert reader.execute("SELECT count(*) AS n FROM experiments").fetchone()["n"] == 0
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        reader.execute("INSERT INTO experiments (experiment, created_at, description) VALUES ('e', 'x', '')")
    reader.close()
