"""The leader database: SQLite file ``[storage] database`` under ``$DOT_PIOREACTOR``.

Only the leader has one. It holds the cluster inventory (``workers``), the
experiments and who is assigned to which (with the history of assignments),
unit labels, logs, config-file history, and every table that plugins declare
through the ``register_storage`` hook (readings such as a plugin's ``ph_readings``).

Connections (domain facts §4):

* WAL journal, ``busy_timeout`` 15 s, ``synchronous = NORMAL`` (safe in WAL);
* foreign keys **on** for web connections (deleting an experiment cascades to
  its rows), **off** for the MQTT writer (rows of experiments that do not exist,
  such as ``$experiment``, are accepted);
* one connection per thread (or per greenlet under gunicorn's gevent worker, one per HTTP connection),
  re-opened after a fork, and re-opened when the file was replaced (a state archive imported): a caller
  that serves requests calls :meth:`LeaderDB.recheck_file` at the start of each,
  and the thread's next use compares the file's device and inode with those of
  the file its connection opened (one ``stat``). When a thread or greenlet ends, its connection goes back
  to the instance and the next thread or greenlet takes it (opening one costs ~1-4 ms: the schema is read
  again, the page cache is cold).

Schema versions live in ``schema_migrations`` (``component``, ``version``):
component ``core`` for the tables below (:data:`CORE_MIGRATIONS`, applied in
order), ``table:<name>`` for each plugin table (its ``create_sql`` first, then
``TableDescriptor.migrations[v-1:]`` when its ``version`` grows). Migrating is
idempotent and safe to run from several processes at once (``BEGIN IMMEDIATE``).

For the time-series tables (a plugin's ``TableDescriptor(time_series=TimeSeries(…))``)
start-up also makes sure an ``(experiment, pioreactor_unit[, channel], timestamp)`` index exists, and
keeps a down-sampled copy in ``time_series_rollups`` (first row of every
10·2^k / 15·2^k-second bucket, maintained by an insert trigger, or once per batch by a
writer that holds the pause inside its transaction; see :meth:`LeaderDB.ensure_rollup`
and :class:`BatchRollup`) so that a chart costs what it shows, not what is stored. The assignment history is written by :meth:`LeaderDB.assign` /
:meth:`LeaderDB.unassign` (not by triggers) so that its times come from the
cluster clock.

Timestamps are UTC ISO-8601 with milliseconds and ``Z`` (``2026-01-31T12:00:00.000Z``),
taken from the cluster clock (:func:`reactorkit.core.clock.get_clock`), so they
agree with the readings of a sped-up simulation.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator

from reactorkit.core.clock import get_clock, utc_iso_ms
from reactorkit.core.config import Config, get_config, get_leader_hostname
from reactorkit.core.paths import file_identity, open_identified
from reactorkit.core.sqlite import open_sqlite

logger = logging.getLogger("reactorkit.leader_db")

BUSY_TIMEOUT_MS = 15_000

#: Core schema, one script per version. Never edit a released entry: append a new one.
CORE_MIGRATIONS: tuple[str, ...] = (
    # version 1
    """
    CREATE TABLE IF NOT EXISTS experiments (
        experiment TEXT NOT NULL PRIMARY KEY,
        created_at TEXT NOT NULL,
        description TEXT NOT NULL DEFAULT '',
        media_used TEXT,
        organism_used TEXT
    );
    CREATE INDEX IF NOT EXISTS experiments_created_at_ix ON experiments (created_at);
    CREATE VIEW IF NOT EXISTS latest_experiment AS
        SELECT experiment, created_at, description, media_used, organism_used,
               round((julianday('now') - julianday(created_at)) * 24, 0) AS delta_hours
        FROM experiments ORDER BY rowid DESC LIMIT 1;

    CREATE TABLE IF NOT EXISTS experiment_tags (
        experiment TEXT NOT NULL REFERENCES experiments (experiment) ON DELETE CASCADE,
        tag TEXT NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (experiment, tag)
    );

    CREATE TABLE IF NOT EXISTS workers (
        pioreactor_unit TEXT NOT NULL PRIMARY KEY,
        added_at TEXT NOT NULL,
        model_name TEXT,
        model_version TEXT,
        is_active INTEGER NOT NULL DEFAULT 1
    );

    CREATE TABLE IF NOT EXISTS experiment_worker_assignments (
        pioreactor_unit TEXT NOT NULL UNIQUE REFERENCES workers (pioreactor_unit) ON DELETE CASCADE,
        experiment TEXT NOT NULL REFERENCES experiments (experiment) ON DELETE CASCADE,
        assigned_at TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS experiment_worker_assignments_ix ON experiment_worker_assignments (experiment);

    CREATE TABLE IF NOT EXISTS experiment_worker_assignments_history (
        pioreactor_unit TEXT NOT NULL,
        experiment TEXT NOT NULL,
        assigned_at TEXT NOT NULL,
        unassigned_at TEXT
    );
    CREATE INDEX IF NOT EXISTS experiment_worker_assignments_history_ix
        ON experiment_worker_assignments_history (experiment, pioreactor_unit);
    CREATE INDEX IF NOT EXISTS experiment_worker_assignments_history_unit_ix
        ON experiment_worker_assignments_history (pioreactor_unit, unassigned_at);

    CREATE TABLE IF NOT EXISTS pioreactor_unit_labels (
        experiment TEXT NOT NULL REFERENCES experiments (experiment) ON DELETE CASCADE,
        pioreactor_unit TEXT NOT NULL,
        label TEXT NOT NULL,
        created_at TEXT NOT NULL,
        UNIQUE (pioreactor_unit, experiment),
        UNIQUE (label, experiment)
    );

    CREATE TABLE IF NOT EXISTS logs (
        experiment TEXT NOT NULL REFERENCES experiments (experiment) ON DELETE CASCADE,
        pioreactor_unit TEXT NOT NULL,
        timestamp TEXT NOT NULL,
        message TEXT NOT NULL,
        source TEXT NOT NULL,
        level TEXT,
        task TEXT
    );
    CREATE INDEX IF NOT EXISTS logs_ix ON logs (experiment, pioreactor_unit, timestamp);
    CREATE INDEX IF NOT EXISTS logs_timestamp_ix ON logs (timestamp);
    CREATE INDEX IF NOT EXISTS logs_unit_ix ON logs (pioreactor_unit, timestamp);

    CREATE TABLE IF NOT EXISTS config_files_histories (
        timestamp TEXT NOT NULL,
        filename TEXT NOT NULL,
        data TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS config_files_histories_ix ON config_files_histories (filename, timestamp);
    """,
)

#: Two chains of nested bucket sizes (seconds): 10·2^k and 15·2^k, k = 0…16 (10 s … 11 days).
ROLLUP_CHAINS: tuple[tuple[int, ...], ...] = (
    tuple(10 * 2**k for k in range(17)),
    tuple(15 * 2**k for k in range(17)),
)
ROLLUP_BUCKETS: tuple[int, ...] = tuple(sorted(s for chain in ROLLUP_CHAINS for s in chain))
#: 1: per-row insert trigger; 2: the trigger stands aside while a batch writer holds the pause (same rollup rows).
ROLLUP_VERSION = 2
ROLLUP_PAUSE_TABLE = "time_series_rollups_paused"
ROLLUP_SCHEMA = """
CREATE TABLE IF NOT EXISTS time_series_rollups (
    experiment TEXT NOT NULL,
    data_source TEXT NOT NULL,
    pioreactor_unit TEXT NOT NULL,
    channel INTEGER NOT NULL,
    bucket_s INTEGER NOT NULL,
    bucket INTEGER NOT NULL,
    timestamp TEXT NOT NULL,
    value REAL NOT NULL,
    PRIMARY KEY (experiment, data_source, pioreactor_unit, channel, bucket_s, bucket)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS time_series_rollups_paused (writer INTEGER NOT NULL PRIMARY KEY);
CREATE TRIGGER IF NOT EXISTS experiments_delete_rollups AFTER DELETE ON experiments BEGIN
    DELETE FROM time_series_rollups WHERE experiment = OLD.experiment;
END;
"""


class LeaderDBError(RuntimeError):
    """A leader-database operation could not be done (message says why)."""


class UnknownWorker(LeaderDBError):
    """The unit is not in the leader's ``workers`` inventory."""

    def __init__(self, unit: str) -> None:
        super().__init__(f"{unit!r} is not in the workers inventory")
        self.unit = unit


class UnknownExperiment(LeaderDBError):
    """No experiment of that name exists."""

    def __init__(self, experiment: str) -> None:
        super().__init__(f"experiment {experiment!r} does not exist")
        self.experiment = experiment


def now_iso() -> str:
    """Now on the cluster clock, in the database format (``…T12:00:00.000Z``)."""
    return utc_iso_ms(get_clock().now())


def database_path(config: Config | None = None) -> Path:
    """``[storage] database`` (relative paths are under ``$DOT_PIOREACTOR``)."""
    return (config or get_config()).path("storage", "database")


def connect(path: Path | str, *, foreign_keys: bool = True, read_only: bool = False) -> sqlite3.Connection:
    """Open a connection with the leader's pragmas: those of every store (:func:`reactorkit.core.sqlite.open_sqlite`:
    busy timeout 15 s, WAL, ``synchronous = NORMAL``), then foreign keys, a 64 MiB page cache, reads through
    ``mmap`` and temporary tables in memory.

    Args:
        path: The SQLite file (its folder is created, unless ``read_only``).
        foreign_keys: ``PRAGMA foreign_keys`` (on for web connections, off for the MQTT writer).
        read_only: Open with ``mode=ro`` (no writes, no schema changes; the file must exist).

    Returns:
        A connection in autocommit mode (``isolation_level=None``; use
        :meth:`LeaderDB.transaction` for multi-statement writes) whose rows are
        :class:`sqlite3.Row`.

    Raises:
        sqlite3.Error: the file cannot be opened, is not a database, or stayed locked for 15 s while it was
            switched to WAL mode.
    """
    conn = open_sqlite(path, timeout_s=BUSY_TIMEOUT_MS / 1000, synchronous="NORMAL", read_only=read_only,
                       check_same_thread=False, row_factory=sqlite3.Row)
    conn.execute(f"PRAGMA foreign_keys = {'ON' if foreign_keys else 'OFF'}")
    conn.execute("PRAGMA cache_size = -65536")  # 64 MiB of page cache per connection
    conn.execute("PRAGMA mmap_size = 268435456")
    conn.execute("PRAGMA temp_store = MEMORY")
    return conn


#: idle connections an instance keeps for the next thread or greenlet (more are closed)
IDLE_CONNECTIONS = 8


class _Held:
    """One thread's (or greenlet's) connection and what :meth:`LeaderDB.query_unchanged` kept with it.

    When the thread or greenlet ends, its ``threading.local`` drops this object, and the connection (outside
    any transaction: an open one is rolled back) goes back to ``idle`` for the next one, with its results.
    """

    __slots__ = ("conn", "pid", "results", "file_id", "idle")

    def __init__(self, conn: sqlite3.Connection, results: dict[Any, Any], file_id: Any, idle: list[Any]) -> None:
        self.conn: sqlite3.Connection | None = conn
        self.pid, self.results, self.file_id, self.idle = os.getpid(), results, file_id, idle

    def __del__(self) -> None:
        conn, self.conn = self.conn, None
        if conn is None or self.pid != os.getpid():
            return
        try:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if len(self.idle) < IDLE_CONNECTIONS:
                self.idle.append((conn, self.results, self.file_id))  # atomic: no lock in a finalizer
                return
            conn.close()
        except Exception:  # a closed or broken connection is not kept
            pass


class LeaderDB:
    """Access to the leader database: connections, migrations and the cluster inventory.

    Args:
        path: The SQLite file; default ``[storage] database`` under ``$DOT_PIOREACTOR``.
        config: Config used for the default path and the leader's name. Default: the process's config as it is
            at each use (:func:`~reactorkit.core.config.get_config`, read again after a config file was saved),
            so a ``leader_hostname`` saved through the API is this database's leader without a restart; the
            file stays the one of ``[storage] database`` when the instance was made.
        registry: Plugin registry whose ``tables`` are created by :meth:`migrate`
            (default: none; pass ``Registry.installed()`` on the leader).
        foreign_keys: Web connections enable them (default); the MQTT writer does not.
        migrate: Run :meth:`migrate` now (default True).

    Every method opens (or reuses) this thread's connection; instances are safe to
    share between threads and survive ``fork`` (a child opens its own connection).
    After :meth:`recheck_file`, the thread's next use checks that ``path`` is still the
    file its connection opened, and opens the new one if it was replaced (migrated
    first, when this instance migrates).
    """

    def __init__(self, path: Path | str | None = None, *, config: Config | None = None, registry: Any = None,
                 foreign_keys: bool = True, migrate: bool = True) -> None:
        self._config = config
        self.path = Path(path) if path is not None else database_path(self.config)
        self.registry = registry
        self.foreign_keys = foreign_keys
        self._local = threading.local()
        self._idle: list[tuple[sqlite3.Connection, dict[Any, Any], Any]] = []  # of ended threads / greenlets
        self._idle_pid = os.getpid()
        self._rollup_cache: dict[str, tuple[bool, float]] = {}
        self._rollup_specs: dict[str, tuple[str, bool]] = {}
        self._migrates = migrate
        self._migrated_file: tuple[int, int] | None = None  # the file the last migration of this instance ran on
        self._migrate_lock = threading.Lock()
        if migrate:
            self.migrate()
            self._migrated_file = self._local.held.file_id

    @property
    def config(self) -> Config:
        """The config given, else the process's current one."""
        return self._config if self._config is not None else get_config()

    @config.setter
    def config(self, value: Config | None) -> None:
        self._config = value

    # ------------------------------------------------------------ connections
    @property
    def conn(self) -> sqlite3.Connection:
        """This thread's (greenlet's) connection: one an ended thread left, else opened on first use; re-opened
        in a forked child, and after :meth:`recheck_file` re-opened if the file was replaced."""
        local = self._local
        held = getattr(local, "held", None)
        if held is None or held.conn is None or held.pid != os.getpid():
            held = self._take()
        if not getattr(local, "recheck", False):
            return held.conn  # type: ignore[return-value]
        local.recheck = False
        conn = held.conn
        if conn.in_transaction or file_identity(self.path) == held.file_id:  # type: ignore[union-attr]
            return conn  # type: ignore[return-value]
        logger.info("%s was replaced: this thread opens the new file", self.path)
        self.close()
        held = self._open()
        if self._migrates and held.file_id != self._migrated_file:
            with self._migrate_lock:
                if held.file_id != self._migrated_file:  # once per file and process, not per thread
                    self._rollup_cache.clear()
                    self.migrate()
                    self._migrated_file = held.file_id
        return held.conn  # type: ignore[return-value]

    def _take(self) -> _Held:
        """An idle connection an ended thread left (of this process; its file checked at this first use), else a
        new one."""
        pid = os.getpid()
        if self._idle_pid != pid:  # a forked child: the parent's connections are not for it
            self._idle, self._idle_pid = [], pid
        try:
            conn, results, file_id = self._idle.pop()
        except IndexError:
            return self._open()
        held = self._local.held = _Held(conn, results, file_id, self._idle)
        # the file may have been replaced since the ended thread used it: check it at this first use (one stat),
        # as a new connection would open the file in place, for a thread that never calls recheck_file too
        self._local.recheck = True
        return held

    def _open(self) -> _Held:
        conn, file_id = open_identified(self.path, lambda: connect(self.path, foreign_keys=self.foreign_keys))
        held = self._local.held = _Held(conn, {}, file_id, self._idle)
        return held

    def recheck_file(self) -> None:
        """Have this thread's next use of the database check (one ``stat``) that the file is still the one
        its connection opened, and open the new one if it was replaced (a state archive imported). Call it
        at the start of each request: a thread then never writes into a replaced file, whose rows would be lost."""
        self._local.recheck = True

    def close(self) -> None:
        """Close this thread's connection (others go back to the instance when their threads end)."""
        held = getattr(self._local, "held", None)
        if held is not None:
            conn, held.conn = held.conn, None
            if conn is not None and held.pid == os.getpid():
                conn.close()
        self._local.held = None

    @contextmanager
    def transaction(self, immediate: bool = True) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE … COMMIT`` (rolled back if the block raises)."""
        conn = self.conn
        if conn.in_transaction:  # nested: join the outer transaction
            yield conn
            return
        conn.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def query(self, sql: str, params: Iterable[Any] | dict[str, Any] = ()) -> list[dict[str, Any]]:
        """Rows of ``sql`` as dicts."""
        return [dict(r) for r in self.conn.execute(sql, params)]

    def query_unchanged(self, sql: str, params: tuple[Any, ...] = (), *, shared: bool = False) -> list[dict[str, Any]]:
        """Rows of ``sql`` as dicts (fresh copies), read again only when the database changed since this thread
        last read them. ``shared``: the kept list itself instead of copies, the same object (``is``) on every
        call of this thread until the database changes, so a caller can keep what it derives from it; it must
        not be changed (inside a transaction it is a fresh list).

        "Changed" is what SQLite reports to this thread's connection: ``PRAGMA data_version`` (grows with every
        commit of any other connection, other processes included) and the connection's own ``total_changes``
        (its own inserts, updates and deletes, committed or not). Inside a transaction it always reads. For the
        small tables the light routes read on every request (the inventory, the experiments): the pragma
        costs about a quarter of reading and converting the rows.

        A database file replaced by another (a state archive imported) is seen after :meth:`recheck_file`
        (the connection is opened again, its kept rows dropped); without it, this thread's connection
        reads the file it opened until it is closed.

        Raises:
            TypeError: ``params`` is not hashable (a tuple of values is).
            sqlite3.Error: as :meth:`query`.
        """
        conn = self.conn
        if conn.in_transaction:
            return self.query(sql, params)
        stamp = (conn.execute("PRAGMA data_version").fetchone()[0], conn.total_changes)
        results = self._local.held.results
        key = (sql, params)
        found = results.get(key)
        if found is None or found[0] != stamp:
            if len(results) > 64:
                results.clear()
            found = results[key] = (stamp, self.query(sql, params))
        return found[1] if shared else [row.copy() for row in found[1]]

    def query_one(self, sql: str, params: Iterable[Any] | dict[str, Any] = ()) -> dict[str, Any] | None:
        """The first row of ``sql`` as a dict, or None."""
        row = self.conn.execute(sql, params).fetchone()
        return dict(row) if row is not None else None

    def execute(self, sql: str, params: Iterable[Any] | dict[str, Any] = ()) -> sqlite3.Cursor:
        """Run one statement (autocommit unless inside :meth:`transaction`)."""
        return self.conn.execute(sql, params)

    def table_exists(self, table: str) -> bool:
        """True when ``table`` (or a view of that name) exists."""
        row = self.conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type IN ('table', 'view') AND name = ?", (table,)
        ).fetchone()
        return row is not None

    def columns(self, table: str) -> list[str]:
        """Column names of ``table`` (empty when it does not exist)."""
        return [r["name"] for r in self.conn.execute("SELECT name FROM pragma_table_info(?)", (table,))]

    # ------------------------------------------------------------- migrations
    def schema_versions(self) -> dict[str, int]:
        """``component -> version`` as recorded in ``schema_migrations``."""
        self._ensure_migrations_table()
        return {r["component"]: r["version"] for r in self.conn.execute("SELECT component, version FROM schema_migrations")}

    def _ensure_migrations_table(self) -> None:
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " component TEXT NOT NULL PRIMARY KEY, version INTEGER NOT NULL, applied_at TEXT NOT NULL)"
        )

    def _recorded_version(self, component: str) -> int:
        row = self.conn.execute("SELECT version FROM schema_migrations WHERE component = ?", (component,)).fetchone()
        return int(row[0]) if row else 0

    def migrate(self) -> None:
        """Bring the core schema and every plugin table up to date; ensure time-series indexes.

        A plugin table whose SQL fails is logged and skipped (the rest of the
        database keeps working), as a broken plugin never takes the leader down.

        Raises:
            sqlite3.Error: a core migration failed (nothing of it is applied).
        """
        self._ensure_migrations_table()
        current = self._recorded_version("core")
        if current < len(CORE_MIGRATIONS):
            self._apply_locked("core", len(CORE_MIGRATIONS), lambda v: list(CORE_MIGRATIONS[v:]))
        tables = getattr(self.registry, "tables", {}) if self.registry is not None else {}
        for descriptor in tables.values():
            try:
                self.ensure_table(descriptor)
            except sqlite3.Error as exc:
                logger.error("table %s from %s could not be created/migrated: %s", descriptor.table, descriptor.source, exc)
        for descriptor in tables.values():
            series = descriptor.time_series
            if series is None:
                continue
            try:
                self.ensure_index(descriptor.table, series.index_columns)
                if series.rollup:
                    self.ensure_rollup(descriptor.table, series.value_column, per_channel=series.per_channel)
            except sqlite3.Error as exc:
                logger.error("time series of %s from %s could not be set up: %s", descriptor.table,
                             descriptor.source, exc)

    # ---------------------------------------------------------------- rollups
    def ensure_rollup(self, table: str, value_column: str, *, per_channel: bool = False) -> bool:
        """Keep ``table``'s ``value_column`` down-sampled in ``time_series_rollups`` (when the table exists).

        ``per_channel``: series are split by the table's ``channel`` column.

        For every bucket size ``S`` of :data:`ROLLUP_BUCKETS` the rollup holds, per
        series (experiment, unit, channel) and bucket ``floor(epoch / S)``, the
        *first* row of that bucket (timestamp and value). An ``AFTER INSERT``
        trigger on ``table`` maintains it for any writer: the row is upserted at the
        finest size of each chain and, only when it became a bucket's first row, at
        the next coarser size (buckets of a chain nest, so a row that is not first
        in its fine bucket is not first in any coarser one). The trigger stands aside
        while a row of ``time_series_rollups_paused`` exists — which only a batch
        writer's own open transaction ever sees (:class:`BatchRollup`: it adds the row,
        inserts, rolls the batch up in one statement and removes the row before its
        commit), so the rollup is the same whoever wrote the rows. Existing rows are
        back-filled once.

        The time-series endpoints read these rows with a range scan whose length
        is the number of points returned, whatever the number of rows stored.

        Returns:
            True when the rollup is (now) in place; False when ``table`` or its
            value column is missing.
        """
        has_channel = per_channel
        if not self.table_exists(table) or value_column not in self.columns(table):
            return False
        self._rollup_specs[table] = (value_column, per_channel)
        component = f"rollup:{table}"
        recorded = self._recorded_version(component)
        has_trigger = self._trigger_exists(f"{table}_rollup_ai")
        if recorded >= ROLLUP_VERSION and has_trigger:
            return True
        if not has_trigger:
            recorded = 0  # table was re-created: back-fill again
        channel = "channel" if has_channel else "0"
        new_channel = "NEW.channel" if has_channel else "0"
        statements: list[str] = []
        for chain in ROLLUP_CHAINS:
            for i, size in enumerate(chain):
                only_if_first = "changes() > 0 AND " if i else ""
                statements.append(
                    f"INSERT INTO time_series_rollups SELECT NEW.experiment, '{table}', NEW.pioreactor_unit,"
                    f" coalesce({new_channel}, 0), {size}, unixepoch(NEW.timestamp) / {size}, NEW.timestamp, NEW.{value_column}"
                    f" WHERE {only_if_first}NEW.{value_column} IS NOT NULL AND unixepoch(NEW.timestamp) IS NOT NULL"
                    " ON CONFLICT DO UPDATE SET timestamp = excluded.timestamp, value = excluded.value"
                    " WHERE excluded.timestamp < time_series_rollups.timestamp;"
                )
        trigger = (f'CREATE TRIGGER IF NOT EXISTS "{table}_rollup_ai" AFTER INSERT ON "{table}"'
                   f" WHEN NOT EXISTS (SELECT 1 FROM {ROLLUP_PAUSE_TABLE}) BEGIN\n"
                   + "\n".join(statements) + "\nEND")
        # back-fill: the finest size of each chain from the table, each coarser size from the one below it
        # (the first row of a coarse bucket is the earliest of the first rows of its fine buckets)
        backfill: list[str] = []
        upsert = (" ON CONFLICT DO UPDATE SET timestamp = excluded.timestamp, value = excluded.value"
                  " WHERE excluded.timestamp < time_series_rollups.timestamp")
        for chain in ROLLUP_CHAINS:
            finest = chain[0]
            backfill.append(
                f"INSERT INTO time_series_rollups SELECT experiment, '{table}', pioreactor_unit, coalesce({channel}, 0),"
                f" {finest}, unixepoch(timestamp) / {finest} AS b, min(timestamp), {value_column} FROM \"{table}\""
                f" WHERE {value_column} IS NOT NULL AND unixepoch(timestamp) IS NOT NULL"
                f" GROUP BY experiment, pioreactor_unit, coalesce({channel}, 0), b" + upsert)
            for finer, size in zip(chain, chain[1:]):
                backfill.append(
                    f"INSERT INTO time_series_rollups SELECT experiment, data_source, pioreactor_unit, channel, {size},"
                    f" unixepoch(timestamp) / {size} AS b, min(timestamp), value FROM time_series_rollups"
                    f" WHERE data_source = '{table}' AND bucket_s = {finer}"
                    " GROUP BY experiment, pioreactor_unit, channel, b" + upsert)

        def scripts(current: int) -> list[str]:
            swap = [ROLLUP_SCHEMA, f'DROP TRIGGER IF EXISTS "{table}_rollup_ai";', trigger]
            # version 1 kept the same rows with a trigger that never stood aside: only the trigger changes
            return swap if current >= 1 and recorded >= 1 else [*swap, *(b + ";" for b in backfill)]

        if recorded == 0:
            self.execute("DELETE FROM schema_migrations WHERE component = ?", (component,))
        self._apply_locked(component, ROLLUP_VERSION, scripts)
        self._rollup_cache.clear()
        return True

    def batch_rollup(self, table: str) -> "BatchRollup | None":
        """A :class:`BatchRollup` for ``table``, or None when its rows cannot be rolled up per batch
        (no rollup kept, a ``WITHOUT ROWID`` table, or an ``INTEGER PRIMARY KEY`` a writer may set:
        the trigger then keeps the rollup row by row)."""
        spec = self._rollup_specs.get(table)
        if spec is None or not self.rollup_ready(table):
            return None
        try:
            self.conn.execute(f'SELECT rowid FROM "{table}" LIMIT 0')
        except sqlite3.OperationalError:
            return None  # WITHOUT ROWID
        info = self.conn.execute("SELECT name, type, pk FROM pragma_table_info(?)", (table,)).fetchall()
        pks = [r for r in info if r["pk"]]
        if len(pks) == 1 and str(pks[0]["type"]).upper() == "INTEGER":
            return None  # rowid alias: rows may come with their own (lower) rowid
        return BatchRollup(table, *spec)

    def _trigger_exists(self, name: str) -> bool:
        return self.conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'trigger' AND name = ?", (name,)).fetchone() is not None

    def rollup_ready(self, table: str) -> bool:
        """True when ``table`` is kept in ``time_series_rollups`` (cached for 10 s)."""
        import time

        cached = self._rollup_cache.get(table)
        if cached is not None and time.monotonic() - cached[1] < 10.0:
            return cached[0]
        ready = self._trigger_exists(f"{table}_rollup_ai") and self._recorded_version(f"rollup:{table}") >= 1
        self._rollup_cache[table] = (ready, time.monotonic())
        return ready

    def _apply_locked(self, component: str, target: int, scripts_from: Any) -> None:
        """Apply ``scripts_from(current_version)`` unless another process already did (checked under the lock)."""
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            current = self._recorded_version(component)
            if current >= target:
                conn.execute("COMMIT")
                return
            for script in scripts_from(current):
                for statement in _split_sql(script):
                    conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_migrations (component, version, applied_at) VALUES (?, ?, ?)"
                " ON CONFLICT (component) DO UPDATE SET version = excluded.version, applied_at = excluded.applied_at",
                (component, target, now_iso()),
            )
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def ensure_table(self, descriptor: Any) -> None:
        """Create a plugin's table (``TableDescriptor``) or migrate it to its ``version``.

        New table: ``create_sql`` runs and ``version`` is recorded. Recorded
        version ``v`` below ``descriptor.version``: ``migrations[v-1:version-1]``
        run in order, then ``create_sql`` again (idempotent; picks up new indexes).

        Raises:
            sqlite3.Error: the SQL failed (nothing of it is applied).
        """
        component = f"table:{descriptor.table}"
        target = int(descriptor.version)

        def scripts(current: int) -> list[str]:
            if current == 0:
                return [descriptor.create_sql]
            return [*descriptor.migrations[current - 1:target - 1], descriptor.create_sql]

        if self._recorded_version(component) < target:
            self._apply_locked(component, target, scripts)

    def ensure_index(self, table: str, columns: tuple[str, ...]) -> bool:
        """Create ``{table}_ts_ix`` on ``columns`` unless the table is missing or an
        existing index already starts with these columns. Returns True if created."""
        if not self.table_exists(table):
            return False
        present = set(self.columns(table))
        if not set(columns) <= present:
            return False
        for index in self.conn.execute("SELECT name FROM pragma_index_list(?)", (table,)).fetchall():
            cols = tuple(r["name"] for r in self.conn.execute("SELECT name FROM pragma_index_info(?) ORDER BY seqno", (index["name"],)))
            if cols[: len(columns)] == columns:
                return False
        self.conn.execute(f'CREATE INDEX IF NOT EXISTS "{table}_ts_ix" ON "{table}" ({", ".join(columns)})')
        return True

    # ---------------------------------------------------------------- workers
    def workers(self, active_only: bool = False, *, shared: bool = False) -> list[dict[str, Any]]:
        """The inventory, sorted by unit name (``shared``: as :meth:`query_unchanged`'s).

        Returns:
            ``[{pioreactor_unit, added_at, is_active (0/1), model_name, model_version}]``.
        """
        sql = "SELECT pioreactor_unit, added_at, is_active, model_name, model_version FROM workers"
        if active_only:
            sql += " WHERE is_active = 1"
        return self.query_unchanged(sql + " ORDER BY pioreactor_unit", shared=shared)

    def worker(self, unit: str) -> dict[str, Any] | None:
        """One inventory row (shape of :meth:`workers`) or None."""
        return self.query_one(
            "SELECT pioreactor_unit, added_at, is_active, model_name, model_version FROM workers WHERE pioreactor_unit = ?",
            (unit,),
        )

    def add_worker(self, unit: str, model_name: str | None = None, model_version: str | None = None) -> bool:
        """Add ``unit`` to the inventory, or update its model when it is already there.

        Returns:
            True when the unit was new.
        """
        with self.transaction() as conn:
            existed = conn.execute("SELECT 1 FROM workers WHERE pioreactor_unit = ?", (unit,)).fetchone() is not None
            if existed:
                if model_name is not None or model_version is not None:
                    conn.execute(
                        "UPDATE workers SET model_name = coalesce(?, model_name), model_version = coalesce(?, model_version)"
                        " WHERE pioreactor_unit = ?",
                        (model_name, model_version, unit),
                    )
            else:
                conn.execute(
                    "INSERT INTO workers (pioreactor_unit, added_at, model_name, model_version, is_active) VALUES (?, ?, ?, ?, 1)",
                    (unit, now_iso(), model_name, model_version),
                )
        return not existed

    def remove_worker(self, unit: str) -> str | None:
        """Remove ``unit`` from the inventory (its assignment ends, history kept).

        Returns:
            The experiment it was assigned to, or None.

        Raises:
            UnknownWorker: not in the inventory.
        """
        with self.transaction():
            if self.worker(unit) is None:
                raise UnknownWorker(unit)
            previous = self.unassign(unit)
            self.execute("DELETE FROM workers WHERE pioreactor_unit = ?", (unit,))
        return previous

    def set_worker_active(self, unit: str, is_active: bool) -> None:
        """Raises: UnknownWorker."""
        cursor = self.execute("UPDATE workers SET is_active = ? WHERE pioreactor_unit = ?", (int(bool(is_active)), unit))
        if cursor.rowcount == 0:
            raise UnknownWorker(unit)

    def set_worker_model(self, unit: str, model_name: str, model_version: str) -> None:
        """Raises: UnknownWorker."""
        cursor = self.execute(
            "UPDATE workers SET model_name = ?, model_version = ? WHERE pioreactor_unit = ?", (model_name, model_version, unit)
        )
        if cursor.rowcount == 0:
            raise UnknownWorker(unit)

    def leader_unit(self) -> str:
        """``[cluster.topology] leader_hostname``."""
        return get_leader_hostname(self.config)

    def units(self) -> list[str]:
        """Every unit of the cluster: the leader and the workers, sorted, without duplicates."""
        names = {self.leader_unit(), *(w["pioreactor_unit"] for w in self.workers())}
        return sorted(names)

    # ------------------------------------------------------------ assignments
    def assigned_workers(self, experiment: str, active_only: bool = True) -> list[str]:
        """Units assigned to ``experiment`` (only active ones by default), sorted."""
        sql = (
            "SELECT a.pioreactor_unit FROM experiment_worker_assignments a"
            " JOIN workers w ON w.pioreactor_unit = a.pioreactor_unit WHERE a.experiment = ?"
        )
        if active_only:
            sql += " AND w.is_active = 1"
        return [r[0] for r in self.conn.execute(sql + " ORDER BY a.pioreactor_unit", (experiment,))]

    def assignment_of(self, unit: str) -> str | None:
        """The experiment ``unit`` is assigned to, or None (unassigned)."""
        row = self.conn.execute(
            "SELECT experiment FROM experiment_worker_assignments WHERE pioreactor_unit = ?", (unit,)
        ).fetchone()
        return row[0] if row else None

    def assignments(self) -> list[dict[str, Any]]:
        """Every worker with its assignment: ``[{pioreactor_unit, experiment|None, is_active, assigned_at|None}]``."""
        return self.query(
            "SELECT w.pioreactor_unit, a.experiment, w.is_active, a.assigned_at FROM workers w"
            " LEFT JOIN experiment_worker_assignments a ON a.pioreactor_unit = w.pioreactor_unit"
            " ORDER BY w.pioreactor_unit"
        )

    def assign(self, unit: str, experiment: str) -> str | None:
        """Assign ``unit`` to ``experiment``, replacing any assignment it had.

        The history gets the old assignment closed and a new open row.

        Returns:
            The experiment it was assigned to before (None if none; equal to
            ``experiment`` when nothing changed).

        Raises:
            UnknownWorker, UnknownExperiment.
        """
        with self.transaction():
            if self.worker(unit) is None:
                raise UnknownWorker(unit)
            if not self.experiment_exists(experiment):
                raise UnknownExperiment(experiment)
            previous = self.assignment_of(unit)
            if previous == experiment:
                return previous
            if previous is not None:
                self.unassign(unit)
            now = now_iso()
            self.execute(
                "INSERT INTO experiment_worker_assignments (pioreactor_unit, experiment, assigned_at) VALUES (?, ?, ?)",
                (unit, experiment, now),
            )
            self.execute(
                "INSERT INTO experiment_worker_assignments_history (pioreactor_unit, experiment, assigned_at, unassigned_at)"
                " VALUES (?, ?, ?, NULL)",
                (unit, experiment, now),
            )
        return previous

    def unassign(self, unit: str) -> str | None:
        """End ``unit``'s assignment (history row closed). Returns the experiment it had, or None."""
        with self.transaction():
            previous = self.assignment_of(unit)
            if previous is None:
                return None
            self.execute("DELETE FROM experiment_worker_assignments WHERE pioreactor_unit = ?", (unit,))
            self.execute(
                "UPDATE experiment_worker_assignments_history SET unassigned_at = ?"
                " WHERE pioreactor_unit = ? AND experiment = ? AND unassigned_at IS NULL",
                (now_iso(), unit, previous),
            )
        return previous

    def unassign_experiment(self, experiment: str) -> list[str]:
        """Unassign every worker of ``experiment``. Returns those units."""
        with self.transaction():
            units = self.assigned_workers(experiment, active_only=False)
            for unit in units:
                self.unassign(unit)
        return units

    def unassign_all(self) -> list[tuple[str, str]]:
        """Unassign every worker. Returns ``[(unit, experiment)]`` that were assigned."""
        with self.transaction():
            pairs = [(r[0], r[1]) for r in self.conn.execute(
                "SELECT pioreactor_unit, experiment FROM experiment_worker_assignments ORDER BY pioreactor_unit")]
            for unit, _ in pairs:
                self.unassign(unit)
        return pairs

    # ------------------------------------------------------------ experiments
    def experiment_exists(self, name: str) -> bool:
        """True when an experiment named ``name`` exists."""
        return self.conn.execute("SELECT 1 FROM experiments WHERE experiment = ?", (name,)).fetchone() is not None


class BatchRollup:
    """Rolls up the rows a writer inserted in its transaction in one statement, instead of the trigger row by row.

    Use inside one ``BEGIN IMMEDIATE`` transaction of the writer's connection::

        rollup.pause(conn)               # the trigger stands aside (only this transaction sees the pause)
        after = rollup.mark(conn)        # highest rowid before the inserts
        ...INSERT the batch...
        rollup.apply(conn, after)        # every rollup size from the new rows: one statement
        BatchRollup.resume(conn)         # before COMMIT: nobody else ever sees the pause

    The rollup rows are those the trigger would have written (per series and bucket the
    earliest row, ties aside): the batch's first row per 5-second slot (every bucket size is a
    multiple of 5 s, so the slots nest in every bucket) is upserted at each size of
    :data:`ROLLUP_BUCKETS`, keeping the earlier timestamp of what is stored and what is new.
    A batch of a few seconds of readings touches a few rows per size, against two upserts
    per row for the trigger.

    Args:
        table: The time-series table (a rowid table whose new rows get rowids above the old ones).
        value_column: Its value column.
        per_channel: Series are split by its ``channel`` column.
    """

    SLOT_S = 5

    def __init__(self, table: str, value_column: str, per_channel: bool) -> None:
        assert all(size % self.SLOT_S == 0 for size in ROLLUP_BUCKETS)
        self.table = table
        channel = "channel" if per_channel else "0"
        sizes = ", ".join(f"({size})" for size in ROLLUP_BUCKETS)
        self.sql = (
            f"WITH fresh AS MATERIALIZED (SELECT experiment AS e, pioreactor_unit AS u, coalesce({channel}, 0) AS c,"
            f" unixepoch(timestamp) AS t, timestamp AS ts, {value_column} AS v FROM \"{table}\""
            f" WHERE rowid > ? AND {value_column} IS NOT NULL AND unixepoch(timestamp) IS NOT NULL),"
            f" firsts AS MATERIALIZED (SELECT e, u, c, t, min(ts) AS ts, v FROM fresh GROUP BY e, u, c, t / {self.SLOT_S}),"
            f" sizes(s) AS (VALUES {sizes})"
            f" INSERT INTO time_series_rollups SELECT e, '{table}', u, c, s, t / s AS b, min(ts), v"
            " FROM firsts, sizes WHERE true GROUP BY e, u, c, s, b"
            " ON CONFLICT DO UPDATE SET timestamp = excluded.timestamp, value = excluded.value"
            " WHERE excluded.timestamp < time_series_rollups.timestamp"
        )

    @staticmethod
    def pause(conn: sqlite3.Connection) -> None:
        """Make the rollup triggers stand aside for the rest of this transaction."""
        conn.execute(f"INSERT OR IGNORE INTO {ROLLUP_PAUSE_TABLE} (writer) VALUES (1)")

    @staticmethod
    def resume(conn: sqlite3.Connection) -> None:
        """Undo :meth:`pause` (call before COMMIT)."""
        conn.execute(f"DELETE FROM {ROLLUP_PAUSE_TABLE}")

    def mark(self, conn: sqlite3.Connection) -> int:
        """The table's highest rowid now (0 when empty)."""
        return int(conn.execute(f'SELECT max(rowid) FROM "{self.table}"').fetchone()[0] or 0)

    def apply(self, conn: sqlite3.Connection, after: int) -> None:
        """Roll up every row with a rowid above ``after``."""
        conn.execute(self.sql, (after,))


def _split_sql(script: str) -> list[str]:
    """Split a script into complete statements (``sqlite3.complete_statement`` aware of triggers and strings)."""
    statements: list[str] = []
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            if buffer.strip().strip(";").strip():
                statements.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        statements.append(buffer.strip())
    return statements
