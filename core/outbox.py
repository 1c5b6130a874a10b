"""The unit's durable outbox: what its jobs publish on stored topics, kept until the leader has stored it.

One SQLite file per unit (``[outbox] path``, default ``storage/outbox.sqlite``
under ``$DOT_PIOREACTOR``), shared by every job process of the unit. A message
on a topic the leader stores is written here (committed) *before* it is handed
to the MQTT client, numbered per topic (``seq``: 1, 2, 3 … for each topic of
the outbox's ``stream``, a random id made when the file is created), and
deleted only when the leader's ingestion acknowledges that it committed it
(see :mod:`reactorkit.core.outbox_client` for the sending side and
``builtin_plugins/mqtt_to_db`` for the storing side).

Bounded, oldest kept: at ``[outbox] max_messages`` messages (default 200,000)
or ``[outbox] max_mb`` MB of payload (default 200), a new message is not kept;
its number is still used, and the run of numbers not kept is recorded as a
*gap* (topic, first/last number, count, times) that the unit reports to the
leader, which stores it in its gaps table, logs it, and shows it in the API
and in exports. Nothing is lost silently.

Durability: WAL with ``synchronous = NORMAL`` by default — a committed message
survives the crash or kill of any process; ``[outbox] synchronous = FULL``
also survives the power loss of the unit, at the cost of one flush to storage
per message.

Wire format (MQTT 5): the message as the job published it, plus the user
properties ``rk-stream`` and ``rk-seq``. The leader acknowledges on
``{root}/{unit}/$experiment/outbox/ack`` with
``{"stream": s, "acks": [[topic, first_seq, last_seq], …], "gaps": [[topic, first_seq, last_seq], …]}``.
"""

from __future__ import annotations

import bisect
import json
import logging
import os
import sqlite3
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator

from reactorkit.core.config import Config, get_config
from reactorkit.core.paths import file_identity, open_identified
from reactorkit.core.sqlite import SYNCHRONOUS_LEVELS, open_sqlite

STREAM_PROPERTY = "rk-stream"
SEQ_PROPERTY = "rk-seq"
REANNOUNCE_PROPERTY = "rk-reannounce"
INGESTION_JOB = "mqtt_to_db_streaming"
STORED_TOPICS_SETTING = "stored_topics"
DEFAULT_MAX_MESSAGES = 200_000
DEFAULT_MAX_MB = 200.0
BUSY_TIMEOUT_S = 15.0
SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sequences (topic TEXT PRIMARY KEY, last_seq INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    seq INTEGER NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL,
    created_at REAL NOT NULL,
    owner TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS messages_topic_seq ON messages (topic, seq);
CREATE INDEX IF NOT EXISTS messages_owner ON messages (owner, id);
CREATE TABLE IF NOT EXISTS usage (id INTEGER PRIMARY KEY CHECK (id = 1), messages INTEGER NOT NULL, bytes INTEGER NOT NULL);
INSERT OR IGNORE INTO usage (id, messages, bytes) VALUES (1, 0, 0);
CREATE TRIGGER IF NOT EXISTS messages_usage_ai AFTER INSERT ON messages BEGIN
    UPDATE usage SET messages = messages + 1, bytes = bytes + length(NEW.payload) WHERE id = 1;
END;
CREATE TRIGGER IF NOT EXISTS messages_usage_ad AFTER DELETE ON messages BEGIN
    UPDATE usage SET messages = messages - 1, bytes = bytes - length(OLD.payload) WHERE id = 1;
END;
CREATE TABLE IF NOT EXISTS gaps (
    topic TEXT NOT NULL,
    first_seq INTEGER NOT NULL,
    last_seq INTEGER NOT NULL,
    count INTEGER NOT NULL,
    first_at REAL NOT NULL,
    last_at REAL NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (topic, first_seq)
) WITHOUT ROWID;
"""


# ------------------------------------------------------------------ topics
def ack_topic(unit: str, config: Config | None = None) -> str:
    """Where the leader acknowledges ``unit``'s messages: ``{root}/{unit}/$experiment/outbox/ack``."""
    from reactorkit.core.mqtt import root_topic

    return f"{root_topic(config)}/{unit}/$experiment/outbox/ack"


def gap_topic(unit: str, config: Config | None = None) -> str:
    """Where ``unit`` reports messages it could not keep: ``{root}/{unit}/$experiment/outbox/gap``."""
    from reactorkit.core.mqtt import root_topic

    return f"{root_topic(config)}/{unit}/$experiment/outbox/gap"


def ingestion_topics(config: Config | None = None) -> str:
    """Subscription to the leader ingestion's ``$state`` and ``stored_topics`` (any leader name)."""
    from reactorkit.core.mqtt import root_topic

    return f"{root_topic(config)}/+/$experiment/{INGESTION_JOB}/+"


def reannounce_properties() -> Any:
    """MQTT 5 properties marking a re-announced value (not a new reading: the leader skips it)."""
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    props = Properties(PacketTypes.PUBLISH)
    props.UserProperty = [(REANNOUNCE_PROPERTY, "1")]
    return props


def is_reannounced(properties: Any) -> bool:
    """True for a message published by :func:`reannounce_properties`."""
    pairs = getattr(properties, "UserProperty", None) if properties is not None else None
    return bool(pairs) and any(key == REANNOUNCE_PROPERTY for key, _ in pairs)


def sequence_of(properties: Any) -> tuple[str, int] | None:
    """``(stream, seq)`` from a paho message's MQTT 5 properties, or None (no outbox numbering)."""
    pairs = getattr(properties, "UserProperty", None) if properties is not None else None
    return sequence_from_pairs(pairs) if pairs else None


def sequence_from_pairs(pairs: Any) -> tuple[str, int] | None:
    """``(stream, seq)`` from MQTT 5 user properties ``[(key, value), …]``, or None."""
    stream = seq = None
    for key, value in pairs:
        if key == STREAM_PROPERTY:
            stream = value
        elif key == SEQ_PROPERTY:
            seq = value
    if stream is None or seq is None:
        return None
    try:
        return stream, int(seq)
    except ValueError:
        return None


# ------------------------------------------------------------------ ranges
def to_ranges(numbers: Iterable[int]) -> list[list[int]]:
    """Sorted, merged inclusive ranges: ``[1, 2, 3, 7]`` → ``[[1, 3], [7, 7]]``."""
    out: list[list[int]] = []
    for n in sorted(set(numbers)):
        if out and n == out[-1][1] + 1:
            out[-1][1] = n
        else:
            out.append([n, n])
    return out


def merge_ranges(a: list[list[int]], b: list[list[int]]) -> list[list[int]]:
    """Union of two lists of inclusive ranges, sorted and merged."""
    out: list[list[int]] = []
    for lo, hi in sorted([list(r) for r in a] + [list(r) for r in b]):
        if out and lo <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return out


def in_ranges(ranges: list[list[int]], n: int) -> bool:
    """True when ``n`` lies in one of the sorted, merged ``ranges``."""
    i = bisect.bisect_right(ranges, [n, float("inf")]) - 1
    return i >= 0 and ranges[i][0] <= n <= ranges[i][1]


def holes(ranges: list[list[int]]) -> int:
    """How many numbers are missing between 1 and the highest number of ``ranges``."""
    if not ranges:
        return 0
    return ranges[-1][1] - sum(hi - lo + 1 for lo, hi in ranges)


# ------------------------------------------------------------------ copies, for subscribers
class SeenNumbers:
    """Recognises the copies of outbox messages a subscriber has already handled.

    A unit's outbox sends a message again when the leader has not acknowledged it within ``[outbox]
    resend_after_s`` (or after a fault): every subscriber, not only the leader's ingestion, then
    receives it twice. A message is known by its topic and its outbox numbering (``rk-stream``, the
    random id of the unit's outbox file, and ``rk-seq``, that file's number on the topic); the
    numbering lives in the file, so a restarted publisher goes on numbering from where the last
    process of the unit stopped, and a file made anew is a new stream. Messages without the
    numbering (the UI, a Pioreactor client, a unit without an outbox) are never taken for a copy,
    nor is a retained message delivered on subscribing (the broker's current value, which the
    outbox never sends again: its copies are not retained).

    Memory: per ``(topic, stream)`` the numbers seen as merged ranges (a steady stream of numbers is
    one range), at most :attr:`max_ranges` ranges each (the lowest forgotten first) and
    :attr:`max_keys` topics and streams (the least recently seen forgotten first). Not thread-safe:
    call it from one thread (paho's network thread).

    Args:
        max_keys: Most ``(topic, stream)`` pairs remembered.
        max_ranges: Most ranges of numbers remembered per pair.
    """

    def __init__(self, max_keys: int = 4096, max_ranges: int = 256) -> None:
        from collections import OrderedDict

        self.max_keys = int(max_keys)
        self.max_ranges = int(max_ranges)
        self._seen: "OrderedDict[tuple[str, str], list[list[int]]]" = OrderedDict()
        self.copies = 0  # copies recognised so far

    def first(self, topic: str, properties: Any, retained: bool = False) -> bool:
        """False for a copy of a numbered message already seen on ``topic``; True otherwise (and remember it).

        Args:
            topic: The message's topic.
            properties: Its MQTT 5 properties (paho's ``message.properties``; None for MQTT 3).
            retained: The broker delivered it as its retained value (never a copy; remembered).
        """
        number = sequence_of(properties)
        if number is None:
            return True
        key = (topic, number[0])
        ranges = self._seen.get(key)
        if ranges is None:
            ranges = self._seen[key] = []
            if len(self._seen) > self.max_keys:
                self._seen.popitem(last=False)
        else:
            self._seen.move_to_end(key)
        if _add_number(ranges, number[1], self.max_ranges) or retained:
            return True
        self.copies += 1
        return False


def _add_number(ranges: list[list[int]], n: int, max_ranges: int) -> bool:
    """Add ``n`` to sorted, merged inclusive ``ranges`` (in place); False when it was there already."""
    i = bisect.bisect_right(ranges, [n, float("inf")]) - 1  # the last range starting at or below n
    if i >= 0 and n <= ranges[i][1]:
        return False
    left = i >= 0 and ranges[i][1] == n - 1
    right = i + 1 < len(ranges) and ranges[i + 1][0] == n + 1
    if left and right:
        ranges[i][1] = ranges[i + 1][1]
        del ranges[i + 1]
    elif left:
        ranges[i][1] = n
    elif right:
        ranges[i + 1][0] = n
    else:
        ranges.insert(i + 1, [n, n])
        if len(ranges) > max_ranges:
            del ranges[0]
    return True


# ------------------------------------------------------------------ owners
def process_token(pid: int | None = None) -> str:
    """``"{pid}:{start time}"``: names a process even after its pid is reused."""
    pid = os.getpid() if pid is None else pid
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            start = fh.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        start = "?"
    return f"{pid}:{start}"


def token_alive(token: str) -> bool:
    """True when the process a :func:`process_token` names still runs."""
    from reactorkit.core.job_registry import pid_alive

    pid_text, _, _ = token.partition(":")
    try:
        pid = int(pid_text)
    except ValueError:
        return False
    return pid_alive(pid) and process_token(pid) == token


def outbox_path(config: Config | None = None) -> Path:
    """``[outbox] path`` (default ``storage/outbox.sqlite``; relative to ``$DOT_PIOREACTOR``)."""
    from reactorkit.core.paths import dot_pioreactor

    config = config or get_config()
    value = Path(config.get("outbox", "path", fallback="storage/outbox.sqlite") or "storage/outbox.sqlite")
    return value if value.is_absolute() else dot_pioreactor() / value


_OPEN: dict[tuple[str, int], "Outbox"] = {}
_OPEN_LOCK = threading.Lock()
#: Times a write reopens the outbox on the file put in place of its own before it gives up (:meth:`Outbox._begin`)
REOPEN_ATTEMPTS = 8


def truncate_wals_at_exit() -> int:
    """Checkpoint and truncate the WAL of the outboxes this process opened (:meth:`Outbox.for_unit`), for a
    process leaving without the interpreter's teardown (``os._exit``: :func:`reactorkit.core.cli.run.leave`, also
    taken by a job forked by the launcher).

    Without it no connection to the outbox is ever closed, so SQLite never checkpoints the WAL at the last
    connection's close and the ``-wal`` file grows with every job start (150–230 KB a start of a built-in job that
    publishes readings; 3.5 MB after 20 starts of two of them) until SQLite's automatic checkpoint at 1000 pages (~4 MB), which
    reuses the file from its start but keeps its size; the next process that opens the file alone rebuilds the
    WAL's index from it (+0.45 ms of a job's start at 1 MB, ~2 ms near 4 MB). Truncated (:meth:`Outbox.truncate_wal`,
    which never waits for another thread or process), the WAL is 0 bytes after each clean stop. A job truncates it
    in its clean-up already (:meth:`reactorkit.core.job.BackgroundJob.clean_up`); here it is done for what wrote
    after that and for processes that are not jobs, and costs one ``stat`` when the WAL is empty.

    Chosen by cost at the stop (one process, a start's ~12 messages in the WAL, ext4): truncate 0.8 ms (two
    syncs); closing the connection 1.4 ms (the last connection's close checkpoints too, then deletes the ``-wal``
    and ``-shm`` files, which the next start makes again; and it would close the outbox under the process's other
    clients); a PASSIVE checkpoint 0.6 ms, but it leaves the WAL's frames in place, read again by the next start.

    Call it after the process's last publish has been handled (its clients' sender threads stopped). Only
    outboxes opened by this process are checkpointed, never those a forked child inherited from its parent
    (their SQLite state is the parent's). The connections stay open.

    Returns:
        How many WALs were truncated.
    """
    pid = os.getpid()
    with _OPEN_LOCK:
        mine = [box for key, box in _OPEN.items() if key[1] == pid]
    truncated = 0
    for box in mine:
        result = box.truncate_wal()
        truncated += result is not None and result[0] == 0
    return truncated


class Outbox:
    """The unit's outbox file. Safe to share between threads (one lock) and processes (SQLite locking).

    Follows the file at its path: when another file is put in its place (a state-archive import swaps the
    whole folder, with a copy of this outbox in it), the next write (checked once SQLite's write lock is
    held) or read reopens on it, so numbering goes on in the file the unit now has (:meth:`_begin`).

    Args:
        path: The SQLite file (created with its folder).
        max_messages: Most messages kept (``[outbox] max_messages``, default 200,000).
        max_bytes: Most payload bytes kept (``[outbox] max_mb``, default 200 MB).
        synchronous: SQLite ``synchronous`` (``NORMAL`` default; ``FULL`` survives power loss).

    Raises:
        sqlite3.Error: the file cannot be opened or created.
    """

    def __init__(self, path: Path | str, *, max_messages: int = DEFAULT_MAX_MESSAGES,
                 max_bytes: int = int(DEFAULT_MAX_MB * 2**20), synchronous: str = "NORMAL") -> None:
        self.path = Path(path)
        self.max_messages = int(max_messages)
        self.max_bytes = int(max_bytes)
        # (a bad config value: NORMAL)
        self.synchronous = synchronous.upper() if synchronous.upper() in SYNCHRONOUS_LEVELS else "NORMAL"
        self._lock = threading.Lock()
        with self._lock:
            self.conn, self.file_id, self.stream = self._connect()

    def _connect(self) -> tuple[sqlite3.Connection, tuple[int, int] | None, str]:
        """``(connection, (st_dev, st_ino) of the file opened, its stream id)`` of the file now at :attr:`path`."""
        conn, file_id = open_identified(self.path, lambda: open_sqlite(
            self.path, timeout_s=BUSY_TIMEOUT_S, synchronous=self.synchronous, check_same_thread=False))
        try:
            if conn.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
                conn.executescript(SCHEMA)  # idempotent; safe when several processes open the file at once
                conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('stream', ?)", (uuid.uuid4().hex[:16],))
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            stream = conn.execute("SELECT value FROM meta WHERE key = 'stream'").fetchone()[0]
        except BaseException:
            conn.close()
            raise
        return conn, file_id, stream

    # ------------------------------------------------------------ the file in place
    def _replaced(self) -> bool:
        """True when another file is at :attr:`path` than the one open (a state archive imported: the folder
        swapped by renames). A missing file is not a replacement (the open one stays in use)."""
        current = file_identity(self.path)
        return current is not None and current != self.file_id

    def _reopen(self) -> None:
        """(Under ``_lock``.) Use the file now at :attr:`path` from here on. An import keeps the unit's own outbox
        (copied consistently, with its stream id, numbering and row ids), so what this process's clients hold
        (rows handed and not yet acknowledged) stays valid; another stream is logged."""
        old, old_stream = self.conn, self.stream
        self.conn, self.file_id, self.stream = self._connect()
        old.close()  # (SQLite leaves the moved file's WAL alone: the new file's is not touched)
        if self.stream != old_stream:
            logging.getLogger("reactorkit.outbox").warning(
                "outbox %s was replaced by another outbox (stream %s, was %s)", self.path, self.stream, old_stream)

    def _follow(self) -> sqlite3.Connection:
        """(Under ``_lock``.) The connection to the file now at :attr:`path`, reopened if it was replaced."""
        if self._replaced():
            self._reopen()
        return self.conn

    def _begin(self) -> sqlite3.Connection:
        """(Under ``_lock``.) ``BEGIN IMMEDIATE`` on the file now at :attr:`path`: the replacement is checked once
        the write lock is held. An import holds the replaced file's write lock from the copy it takes until the
        new folder is in place, so a write either went into the file before the copy (and is in the copy) or is
        made in the copy — never in the file thrown away, and never under a number the copy gives again.

        Raises:
            sqlite3.OperationalError: the write lock was not given within the busy timeout, or the file was
                replaced at each of :data:`REOPEN_ATTEMPTS` looks (no transaction is left open: nothing is written).
        """
        for _ in range(REOPEN_ATTEMPTS):
            self.conn.execute("BEGIN IMMEDIATE")
            if not self._replaced():
                return self.conn
            self.conn.execute("ROLLBACK")
            self._reopen()
        raise sqlite3.OperationalError(f"the outbox file {self.path} was replaced at each of {REOPEN_ATTEMPTS} "
                                       "attempts to write in it")

    @contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (see :meth:`_begin`), committed at the end, rolled back on an error."""
        with self._lock:
            conn = self._begin()
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    @classmethod
    def for_unit(cls, config: Config | None = None) -> "Outbox":
        """The outbox of this unit, sized by ``[outbox]`` — one per process and file, shared by its clients
        (an automation opens a client per dose: opening the file each time would cost every dose). Opened
        again when the file was replaced (a state archive imported; one ``stat`` per call): a client made
        after the import never writes into the replaced file. (An outbox opened before follows the file
        itself: see :meth:`_begin`.)"""
        config = config or get_config()
        path = outbox_path(config)
        key = (str(path), os.getpid())
        with _OPEN_LOCK:
            box = _OPEN.get(key)
            if box is not None and box.file_id != file_identity(path):
                box = None  # the file was replaced (a state archive imported): open the one in its place
            if box is None:
                box = _OPEN[key] = cls._open(path, config)
        return box

    @classmethod
    def _open(cls, path: Path, config: Config) -> "Outbox":
        return cls(path,
                   max_messages=config.getint("outbox", "max_messages", fallback=DEFAULT_MAX_MESSAGES),
                   max_bytes=int(config.getfloat("outbox", "max_mb", fallback=DEFAULT_MAX_MB) * 2**20),
                   synchronous=config.get("outbox", "synchronous", fallback="NORMAL") or "NORMAL")

    def close(self) -> None:
        """Close the connection (again: nothing). The last connection to the file checkpoints the WAL into it
        and removes the ``-wal`` and ``-shm`` files."""
        with self._lock:
            self.conn.close()

    def _wal_size(self) -> int | None:
        """Bytes of the open file's ``-wal`` (None: no such file, or another file is at :attr:`path` now)."""
        try:
            wal = os.stat(f"{self.path}-wal")
        except OSError:
            return None
        return None if self._replaced() else wal.st_size

    def truncate_wal(self) -> tuple[int, int, int] | None:
        """Checkpoint the WAL into the file and truncate it to 0 bytes (``PRAGMA wal_checkpoint(TRUNCATE)``)
        unless that would wait: another thread of this process using the outbox now (its lock is held: e.g. a
        write waiting up to :data:`BUSY_TIMEOUT_S` for another process's write lock), or another process
        writing it or reading it from the WAL (SQLite's busy timeout is 0 for it, so SQLite answers busy at once
        instead of calling its busy handler).

        Nothing committed is at risk: the checkpoint syncs the WAL before it copies its pages into the file and
        the file before it truncates the WAL (with ``synchronous`` ``NORMAL`` or ``FULL``), as SQLite's automatic
        checkpoint does; a busy checkpoint leaves the frames it did not copy in the WAL.

        Returns:
            SQLite's ``(busy, frames in the WAL, frames checkpointed)`` — ``busy`` 1 when the WAL could not be
            truncated (it is left to the next checkpoint) — or None when another thread was using the outbox or
            SQLite refused (the connection is closed, the file is locked).
        """
        if not self._lock.acquire(blocking=False):
            return None
        try:
            if self._wal_size() == 0:
                return 0, 0, 0  # (already empty: no checkpoint, no sync)
            self.conn.execute("PRAGMA busy_timeout = 0")
            try:
                return tuple(self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone())
            finally:
                self.conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        except sqlite3.Error:
            return None
        finally:
            self._lock.release()

    # ------------------------------------------------------------ writing
    def append(self, topic: str, payload: bytes, *, qos: int, retain: bool, owner: str) -> tuple[int | None, int]:
        """Number and keep one message.

        Returns:
            ``(row_id, seq)``; ``row_id`` is None when the outbox is full (the number is then
            recorded in a gap, see :meth:`gaps`).
        """
        now = time.time()
        with self._writing() as conn:
            seq = conn.execute(
                "INSERT INTO sequences (topic, last_seq) VALUES (?, 1)"
                " ON CONFLICT (topic) DO UPDATE SET last_seq = last_seq + 1 RETURNING last_seq", (topic,)
            ).fetchone()[0]
            count, size = conn.execute("SELECT messages, bytes FROM usage WHERE id = 1").fetchone()
            if count + 1 > self.max_messages or size + len(payload) > self.max_bytes:
                extended = conn.execute(
                    "UPDATE gaps SET last_seq = ?, count = count + 1, last_at = ? WHERE topic = ? AND last_seq = ?",
                    (seq, now, topic, seq - 1)).rowcount
                if not extended:
                    conn.execute("INSERT INTO gaps (topic, first_seq, last_seq, count, first_at, last_at, reason)"
                                 " VALUES (?, ?, ?, 1, ?, ?, 'outbox full')", (topic, seq, seq, now, now))
                row_id = None
            else:
                row_id = conn.execute(
                    "INSERT INTO messages (topic, seq, payload, qos, retain, created_at, owner) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (topic, seq, payload, qos, int(bool(retain)), now, owner)).lastrowid
        return row_id, seq

    def delete(self, row_ids: Iterable[int]) -> int:
        """Forget messages the leader has stored. Returns how many were deleted."""
        ids = list(row_ids)
        deleted = 0
        with self._writing() as conn:
            for i in range(0, len(ids), 500):
                chunk = ids[i:i + 500]
                deleted += conn.execute(
                    f"DELETE FROM messages WHERE id IN ({','.join('?' * len(chunk))})", chunk).rowcount
        return deleted

    def delete_acknowledged(self, acks: Iterable[tuple[str, int, int]], owner: str | None = None) -> list[int]:
        """Delete messages in ``[(topic, first_seq, last_seq)]`` (only ``owner``'s when given); their row ids."""
        gone: list[int] = []
        with self._writing() as conn:
            for topic, lo, hi in acks:
                sql = "DELETE FROM messages WHERE topic = ? AND seq BETWEEN ? AND ?"
                params: tuple = (topic, int(lo), int(hi))
                if owner is not None:
                    sql += " AND owner = ?"
                    params += (owner,)
                gone += [r[0] for r in conn.execute(sql + " RETURNING id", params)]
        return gone

    # ------------------------------------------------------------ reading
    def pending(self, owner: str, after_id: int, limit: int = 500) -> list[tuple[int, str, int, bytes, int]]:
        """``owner``'s messages with ``id > after_id`` in order: ``[(id, topic, seq, payload, qos)]``."""
        with self._lock:
            return self._follow().execute(
                "SELECT id, topic, seq, payload, qos FROM messages WHERE owner = ? AND id > ? ORDER BY id LIMIT ?",
                (owner, after_id, limit)).fetchall()

    def usage(self) -> tuple[int, int]:
        """``(messages, payload bytes)`` kept now."""
        with self._lock:
            return tuple(self._follow().execute("SELECT messages, bytes FROM usage WHERE id = 1").fetchone())

    def last_seq(self, topic: str) -> int:
        """The last number given on ``topic`` (0 if none)."""
        with self._lock:
            row = self._follow().execute("SELECT last_seq FROM sequences WHERE topic = ?", (topic,)).fetchone()
        return int(row[0]) if row else 0

    def adopt_orphans(self, owner: str) -> int | None:
        """Take over the messages of processes that ended without their acknowledgement.

        Returns:
            The lowest adopted row id, or None when there were none.
        """
        with self._lock:
            owners = [r[0] for r in self._follow().execute("SELECT DISTINCT owner FROM messages")]
        dead = [o for o in owners if o != owner and not token_alive(o)]
        lowest: int | None = None
        for other in dead:
            with self._writing() as conn:
                row = conn.execute("SELECT min(id) FROM messages WHERE owner = ?", (other,)).fetchone()
                changed = conn.execute("UPDATE messages SET owner = ? WHERE owner = ?", (owner, other)).rowcount
            if changed and row[0] is not None:
                lowest = row[0] if lowest is None else min(lowest, row[0])
        return lowest

    # ------------------------------------------------------------ gaps
    def gaps(self) -> list[dict[str, Any]]:
        """Runs of numbers that were not kept: ``[{topic, first_seq, last_seq, count, first_at, last_at, reason}]``
        (times in epoch seconds)."""
        with self._lock:
            rows = self._follow().execute(
                "SELECT topic, first_seq, last_seq, count, first_at, last_at, reason FROM gaps ORDER BY first_at").fetchall()
        keys = ("topic", "first_seq", "last_seq", "count", "first_at", "last_at", "reason")
        return [dict(zip(keys, r)) for r in rows]

    def forget_gaps(self, reported: Iterable[tuple[str, int, int]]) -> int:
        """Delete gaps the leader has recorded (unless they grew since: ``last_seq`` must match)."""
        n = 0
        with self._writing() as conn:
            for topic, first, last in reported:
                n += conn.execute("DELETE FROM gaps WHERE topic = ? AND first_seq = ? AND last_seq = ?",
                                       (topic, int(first), int(last))).rowcount
        return n

    # ------------------------------------------------------------ stored topics
    def stored_patterns(self) -> list[str] | None:
        """The leader's stored topic patterns (relative to the root) as last announced, or None."""
        with self._lock:
            row = self._follow().execute("SELECT value FROM meta WHERE key = 'stored_patterns'").fetchone()
        return json.loads(row[0]) if row else None

    def set_stored_patterns(self, patterns: list[str], root: str) -> int:
        """Remember the leader's patterns and drop kept messages on topics it does not store.

        Args:
            patterns: e.g. ``["pioreactor/+/+/<job>/<setting>", …]``.
            root: This cluster's topic prefix (``""`` or ``"test-1/"``).

        Returns:
            How many kept messages were dropped (the leader would never store them).
        """
        import paho.mqtt.client as paho

        full = [root + p for p in patterns]
        with self._writing() as conn:
            conn.execute("INSERT INTO meta (key, value) VALUES ('stored_patterns', ?)"
                         " ON CONFLICT (key) DO UPDATE SET value = excluded.value", (json.dumps(patterns),))
            topics = [r[0] for r in conn.execute("SELECT DISTINCT topic FROM messages")]
            unstored = [t for t in topics if not any(paho.topic_matches_sub(p, t) for p in full)]
            dropped = 0
            for topic in unstored:
                dropped += conn.execute("DELETE FROM messages WHERE topic = ?", (topic,)).rowcount
        return dropped
