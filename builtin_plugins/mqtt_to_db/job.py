"""``mqtt_to_db_streaming``: the leader job that stores MQTT messages in the leader database.

Every ``TopicMapping`` of the installed plugins (``register_storage``) is
subscribed under this cluster's root (``{prefix}pioreactor/…``) with QoS 1 on a
persistent MQTT 5 session (fixed client id, kept :data:`SESSION_EXPIRY_S`), so
messages published while the job or the broker restarts are delivered once it
is back. The session announces a large Receive Maximum so that bursts are not
dropped by the broker's per-client queue. The receiving connection is gmqtt
(asyncio, in its own thread); each message is acknowledged to the broker only
after the transaction holding its rows has committed, so a crash loses nothing
the broker still holds. The job's own connection (``$state``, last will, logs,
``/set``, acknowledgements to the units) is gmqtt too, on the same loop
(:mod:`.link`): paho's client is never imported in this process. Its own log
lines are stored by the writer directly, so they never wait for the broker.

Numbered messages (a unit's outbox: MQTT 5 user properties ``rk-stream`` and
``rk-seq``, see :mod:`reactorkit.core.outbox`) are stored once: the ledger
(:mod:`.ledger`, same transaction) drops a number already stored; after the
commit each unit is told on ``…/{unit}/$experiment/outbox/ack`` which of its
numbers are stored, and its outbox forgets them. Units' reports of messages
they could not keep (``…/outbox/gap``) go to ``ingestion_gaps`` and the log.
The topic patterns stored are announced (retained) on
``…/{leader}/$experiment/mqtt_to_db_streaming/stored_topics``. When the unit's
plugin set changes (``pio plugins install/uninstall`` or the API's install task
publish on ``…/{leader}/$experiment/plugins/changed``), the job loads the
plugins anew without stopping: new tables are created, new topic patterns
subscribed, patterns of removed plugins unsubscribed, and the list announced again.

Received messages are queued by the receiving thread and written by a writer
thread in batches (at most ``batch_size`` messages, at least every
``flush_interval_s`` wall seconds), one transaction per batch. Skipped (and
acknowledged): retained messages (the state a late subscriber gets, not a new
reading), re-announced values (a job's settings after a reconnect), empty
payloads, topics containing ``/_testing_`` (domain facts §4.2), and messages
whose ``parse`` fails or returns nothing — a malformed payload is logged
(rate-limited) and counted, never fatal. A row the table refuses (missing
column, NOT NULL …) is logged and skipped; the rest of its batch is kept.

The writer's connection has foreign keys off: rows of experiments that do not
exist in ``experiments`` (``$experiment``, a unit's logs before any
experiment) are accepted, as in the Pioreactor software.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections import defaultdict, deque
from typing import Any, Iterable

from reactorkit.plugin import mqtt as mq
from reactorkit.plugin import TopicMapping, resolve_reference as resolve
from reactorkit.plugin import BackgroundJob
from reactorkit.plugin import LeaderDB, get_config, now_iso, plugins_changed_topic, release_free_heap
from reactorkit.plugin import REANNOUNCE_PROPERTY, STORED_TOPICS_SETTING, ack_topic, sequence_from_pairs, to_ranges

from . import acks, ledger

try:  # CPython's own SHA-1 (hashlib's fallback without OpenSSL), same digest: a forked job that runs OpenSSL's
    # digest lookup once faults ~1 MB of libcrypto's code into its memory
    from _sha1 import sha1 as _sha1
except ImportError:  # an interpreter built without it
    from hashlib import sha1 as _sha1

UNIVERSAL_EXPERIMENT = "$experiment"
SESSION_EXPIRY_S = 7 * 24 * 3600
GAP_PATTERN = "pioreactor/+/$experiment/outbox/gap"
RECEIVE_MAXIMUM = 65535
DEFAULT_BATCH_SIZE = 1000
DEFAULT_FLUSH_INTERVAL_S = 0.1
MAX_QUEUE = 200_000
CHECKPOINT_INTERVAL_S = 1.0
# the writer and the checkpointer close their connections (~1 MB each: parsed schema, page cache, statements)
# after this long with nothing to do; the next batch opens them again (~3 ms of CPU: the schema is parsed again)
IDLE_CLOSE_S = 2.0
#: Longest wait (seconds) for the broker's acknowledgement of ``$state`` = ``ready`` before the ready line is logged
READY_LINE_WAIT_S = 1.0
RECENT_MESSAGES = 100_000
#: MQTT 5 user property of this job's own log lines, which it stores itself: published for live subscribers,
#: not stored a second time when they come back from the broker. Its value is the job's MQTT client id (one
#: per process: ``mqtt_to_db_streaming-{unit}-$experiment-{pid}``), and only a line on the job's own log topic
#: with that value, or that of an earlier process of the job on this unit (a line its persistent session
#: kept while it stopped), is skipped: anyone may publish the property, and a unit's real data marked with it
#: is stored all the same
STORED_PROPERTY = "rk-stored"
_TOPIC_CACHE_MAX = 20_000


def _resolve(futures: list[Any]) -> None:
    for future in futures:
        if not future.done():
            future.set_result(None)


class TopicRouter:
    """Which mappings a concrete topic matches (cached per topic string).

    Args:
        mappings: ``TopicMapping`` records; their topics are relative to the broker root.
        prefix: This cluster's topic prefix (``""`` or e.g. ``"test-12/"``).
    """

    def __init__(self, mappings: Iterable[TopicMapping], prefix: str = "") -> None:
        self.mappings: list[tuple[str, TopicMapping, Any]] = []
        self.broken: list[tuple[TopicMapping, str]] = []
        for mapping in mappings:
            try:
                parser = resolve(mapping.parse)
            except Exception as exc:  # a plugin's broken parser only disables its mapping
                self.broken.append((mapping, f"{type(exc).__name__}: {exc}"))
                continue
            self.mappings.append((f"{prefix}{mapping.topic}", mapping, parser))
        self._cache: dict[str, list[tuple[TopicMapping, Any]]] = {}

    @property
    def subscriptions(self) -> list[str]:
        """Distinct subscription patterns (with the prefix)."""
        return list(dict.fromkeys(pattern for pattern, _, _ in self.mappings))

    def route(self, topic: str) -> list[tuple[TopicMapping, Any]]:
        """``[(mapping, parse)]`` whose pattern matches ``topic``."""
        hit = self._cache.get(topic)
        if hit is None:
            hit = [(m, p) for pattern, m, p in self.mappings if _matches(pattern, topic)]
            if len(self._cache) >= _TOPIC_CACHE_MAX:
                self._cache.clear()
            self._cache[topic] = hit
        return hit


def _matches(pattern: str, topic: str) -> bool:
    """``topic`` matches the subscription ``pattern`` (MQTT wildcards ``+`` and ``#``), by paho's matcher
    (its module alone: this process does not import paho's client)."""
    from paho.mqtt.matcher import MQTTMatcher

    matcher = MQTTMatcher()
    matcher[pattern] = True
    return next(matcher.iter_match(topic), None) is not None


def should_skip(topic: str, payload: bytes, retained: bool) -> bool:
    """Retained, empty and ``/_testing_`` messages are never stored (§4.2)."""
    return retained or not payload or "/_testing_" in topic


def rows_of(router: TopicRouter, topic: str, payload: bytes) -> tuple[list[tuple[str, dict[str, Any]]], list[str]]:
    """Rows to insert for one message and the errors of the parsers that failed.

    Returns:
        ``([(table, row), …], [error, …])``.
    """
    out: list[tuple[str, dict[str, Any]]] = []
    errors: list[str] = []
    for mapping, parse in router.route(topic):
        try:
            produced = parse(topic, payload)
        except Exception as exc:
            errors.append(f"{mapping.table}: {type(exc).__name__}: {exc}")
            continue
        if produced is None:
            continue
        for row in produced if isinstance(produced, list) else [produced]:
            if isinstance(row, dict) and row:
                out.append((mapping.table, row))
            else:
                errors.append(f"{mapping.table}: parse returned {type(row).__name__}, not a row")
    return out, errors


class BatchWriter:
    """Writes rows to the leader database in one transaction per batch.

    Args:
        db: A ``LeaderDB`` opened with ``foreign_keys=False``.
        on_error: Called with a message for each row the database refuses.

    Statistics: ``rows_written``, ``rows_rejected``.
    """

    def __init__(self, db: LeaderDB, on_error: Any = None) -> None:
        self.db = db
        self.on_error = on_error or (lambda message: None)
        self.rows_written = 0
        self.rows_rejected = 0
        self._rollups: dict[str, Any] = {}  # table -> BatchRollup | None (the trigger keeps that one)

    def _rollup_of(self, table: str) -> Any:
        if table not in self._rollups:
            finder = getattr(self.db, "batch_rollup", None)
            self._rollups[table] = finder(table) if finder is not None else None
        return self._rollups[table]

    def write(self, rows: list[tuple[str, dict[str, Any]]], *, within: Any = None) -> int:
        """Insert ``rows`` (``(table, row)``); returns how many were stored.

        ``within(conn)``, when given, runs first inside the same transaction and
        returns the rows to insert instead of ``rows`` (the ingestion records
        which numbered messages it has stored, atomically with their rows).

        Rows of one table and column set go in one ``executemany``; if it fails
        the group is rolled back to a savepoint and retried row by row, so one
        bad row costs only itself. A time-series table's rollup is brought up to
        date once per batch (one statement, :class:`~reactorkit.core.leader_db.BatchRollup`)
        rather than by its trigger row by row, in the same transaction.

        Raises:
            sqlite3.OperationalError: the database stayed locked/unavailable
                (the caller keeps the batch and retries).
        """
        if not rows and within is None:
            return 0
        stored = 0
        conn = self.db.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            if within is not None:
                rows = within(conn)
            groups: dict[tuple[str, tuple[str, ...]], list[tuple[Any, ...]]] = defaultdict(list)
            for table, row in rows:
                columns = tuple(row)
                groups[(table, columns)].append(tuple(row[c] for c in columns))
            rollups: dict[str, tuple[Any, int]] = {}
            for table, _ in groups:
                rollup = self._rollup_of(table)
                if rollup is not None and table not in rollups:
                    if not rollups:
                        rollup.pause(conn)
                    rollups[table] = (rollup, rollup.mark(conn))
            for (table, columns), values in groups.items():
                column_list = ", ".join(f'"{c}"' for c in columns)
                placeholders = ", ".join("?" for _ in columns)
                sql = f'INSERT INTO "{table}" ({column_list}) VALUES ({placeholders})'
                conn.execute("SAVEPOINT grp")
                try:
                    conn.executemany(sql, values)
                    conn.execute("RELEASE grp")
                    stored += len(values)
                    continue
                except sqlite3.Error as exc:
                    conn.execute("ROLLBACK TO grp")
                    conn.execute("RELEASE grp")
                    if isinstance(exc, sqlite3.OperationalError) and _is_busy(exc):
                        raise
                for value in values:  # find the bad row(s); keep the others
                    try:
                        conn.execute(sql, value)
                        stored += 1
                    except sqlite3.OperationalError as exc:
                        if _is_busy(exc):
                            raise
                        self._reject(table, exc)
                    except sqlite3.Error as exc:
                        self._reject(table, exc)
            for rollup, after in rollups.values():
                rollup.apply(conn, after)
            if rollups:
                rollup.resume(conn)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        self.rows_written += stored
        return stored

    def _reject(self, table: str, exc: Exception) -> None:
        self.rows_rejected += 1
        self.on_error(f"row for {table} refused: {type(exc).__name__}: {exc}")


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text or "disk i/o" in text


class MqttToDb(BackgroundJob):
    """Streams the cluster's MQTT messages into the leader database (runs on the leader).

    Args:
        unit: The leader's name.
        experiment: Ignored: this long-running job always runs under ``$experiment``.
        registry: Plugin registry whose ``topic_mappings``/``tables`` are used (default: those of
            everything installed, from the storage index while no plugin changes: no plugin is loaded).
        batch_size: Most messages per transaction (default 1000).
        flush_interval_s: Longest wall-clock wait before a partial batch is written (default 0.1 s).
        database: Database file (default ``[storage] database``).

    Published settings: none besides ``$state``. Statistics on the instance:
    ``messages_received``, ``messages_skipped``, ``parse_errors``, ``rows_written``.

    Raises:
        ConnectionError: the broker cannot be reached at start.
    """

    job_name = "mqtt_to_db_streaming"
    is_long_running = True

    @classmethod
    def launcher_preload(cls, config: Any) -> tuple[str, ...]:
        """On the leader, the receiving client's modules (asyncio, gmqtt: ~25 ms of CPU to import) are
        imported ahead of the job's start by a process the unit's launcher keeps for it."""
        from reactorkit.plugin import is_leader

        return ("asyncio", "gmqtt", "gmqtt.mqtt.constants") if is_leader(config) else ()

    def connect_mqtt(self, *, client_id: str, will: tuple[str, str, int, bool], on_connect: Any,
                     on_message: Any) -> Any:
        """The job's own connection over gmqtt (:class:`~.link.GmqttLink`) instead of the framework's paho client:
        the receiving client runs on its loop, and paho's client is never imported in this process. (Imported
        here, not with this module: the unit's launcher imports every job's module, and asyncio in it would
        weigh on every job it forks.)

        The job's own log lines are stored by the job itself (queued for the writer like a received
        message; published for live subscribers, marked so as not to be stored twice): the leader's
        log survives a broker outage without the unit's outbox. As the job stops, those the writer left queued
        are stored by the stopping thread, and those logged after by the thread that logs them (:meth:`_keep_own`).
        """
        from .link import GmqttLink

        # before the link connects: the first log lines are queued for the writer, which starts later
        self._pending: deque[tuple[str, bytes, Any, int, Any]] = deque()
        self._enqueued = 0  # counted on the loop's thread
        self._own_queued = 0  # the job's own log lines, from any thread (under the lock)
        self._own_lock = threading.Lock()
        self._own_direct = False  # the writer has ended: the job's own log lines are stored as they come (under the lock)
        self._closing = False
        self._own_logs = f"{mq.root_topic(self.config)}/{self.unit}/{UNIVERSAL_EXPERIMENT}/logs/"
        self._stored_mark = (STORED_PROPERTY, client_id)  # this process's own (its client id has its pid)
        self._stored_by_this_job = client_id.rsplit("-", 1)[0] + "-"  # the client ids of its processes on this unit
        host, port, username, password = mq.broker_settings(self.config)
        link = GmqttLink(host, port, client_id=client_id, will=will, on_connect=on_connect, on_message=on_message,
                         username=username, password=password, ssl=mq.tls_context(self.config) or False)
        link.keep = self._keep_own
        return link

    def _keep_own(self, topic: str, payload: bytes, qos: int, retain: bool) -> tuple[list[tuple[str, str]], int]:
        """``(user properties to add, qos)`` for a message of the job's own connection: its log lines are queued
        for the writer, marked :data:`STORED_PROPERTY` and published with QoS 1; once the writer has ended (the
        job is stopping), stored at once on the calling thread, else (the database refused) published with
        QoS 1 unmarked, which the broker keeps in this job's session for its next start.

        QoS 1, as every other job's log lines go out (through the unit's outbox), and not QoS 0: a subscriber
        answers a QoS 1 message (PUBACK), where the TCP segment of a QoS 0 one waits for its delayed ACK
        (~40 ms on Linux), and a broker with Nagle's algorithm on (mosquitto's default) holds its next small
        packet to that subscriber until then. The line of the ingestion's start (QoS 0) kept ``$state`` =
        ``ready`` from every subscriber for ~40 ms (tcpdump: the broker forwarded the line, then held the
        ``$state`` PUBLISH until the subscriber's delayed ACK of the line's segment); a line logged just after
        ``ready`` did the same whenever it reached the broker before the ``$state``'s PUBREL.
        """
        if retain or not payload or not topic.startswith(self._own_logs):
            return [], qos
        with self._own_lock:
            if not self._own_direct:
                self._pending.append((topic, payload, None, 0, None))
                self._own_queued += 1
                return [self._stored_mark], max(qos, 1)
        return ([self._stored_mark], qos) if self._store_now([(topic, payload)]) else ([], max(qos, 1))

    def _store_now(self, lines: list[tuple[str, bytes]]) -> bool:
        """Store some of the job's own log lines (``(topic, payload)``) in this thread, after the writer has
        ended; True if stored."""
        thread = getattr(self, "_writer_thread", None)
        if thread is None or thread.is_alive() or getattr(self, "router", None) is None:
            return False
        try:
            rows: list[tuple[str, dict[str, Any]]] = []
            for topic, payload in lines:
                produced, errors = rows_of(self.router, topic, payload)
                if errors:
                    return False
                rows.extend(produced)
            return self.writer.write(rows) == len(rows)
        except Exception:  # the database is unusable: the broker keeps the lines instead
            return False
        finally:
            self.db.close()  # this thread's connection

    def _store_own_left(self) -> None:
        """Once the writer has ended: store the job's own log lines it left queued (they were published for live
        subscribers only, marked as stored); the lines logged from now on are stored as they come. Lines the
        database refuses are published again with QoS 1, for the next start. (Received messages left queued
        stay with the broker, unacknowledged.)"""
        with self._own_lock:
            self._own_direct = True
            left = [(topic, payload) for topic, payload, token, _, _ in list(self._pending) if token is None]
        if left and not self._store_now(left):
            for topic, payload in left:
                self.mqtt.publish(topic, payload, qos=1)

    def __init__(self, unit: str, experiment: str = UNIVERSAL_EXPERIMENT, *, registry: Any = None,
                 batch_size: int | None = None, flush_interval_s: float | None = None, database: Any = None,
                 **kwargs: Any) -> None:
        batch_size = int(batch_size or DEFAULT_BATCH_SIZE)
        flush_interval_s = float(flush_interval_s or DEFAULT_FLUSH_INTERVAL_S)
        if batch_size < 1 or flush_interval_s <= 0:
            raise ValueError("batch_size must be ≥ 1 and flush_interval_s > 0")
        if registry is None:  # the installed plugins' tables and mappings, cached while no plugin changes
            from reactorkit.plugin import installed_storage

            registry = installed_storage()
        # migrated by the writer thread on its own connection: one connection's parsed schema and page cache in
        # this process instead of two (~1 MB of memory each). Started before the base class connects: the
        # migration (~4 ms, 3 of them SQLite parsing the schema as the connection opens, outside the GIL) runs
        # while this thread imports asyncio and gmqtt and connects (~25 ms), not after (see _start_migration)
        self._stop = threading.Event()
        self._go = threading.Event()  # the job is ready (or stopping): the writer goes on past the migration
        self.db = LeaderDB(database, config=kwargs.get("config") or get_config(), registry=registry,
                           foreign_keys=False, migrate=False)
        self._migrated = threading.Event()
        self._migration_error: BaseException | None = None
        self._writer_thread = threading.Thread(target=self._write_loop, name="mqtt_to_db-writer", daemon=True)
        self._writer_thread.start()
        try:
            super().__init__(unit, UNIVERSAL_EXPERIMENT, **kwargs)
        except BaseException:  # refused (already running) or no broker: the writer ends after the migration
            self._stop.set()
            self._go.set()
            raise
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.router = TopicRouter(registry.topic_mappings, mq.topic_prefix(self.config))
        for mapping, error in self.router.broken:
            self.logger.error("mapping %s → %s from %s disabled: %s", mapping.topic, mapping.table, mapping.source, error)
        self.messages_received = 0
        self.messages_skipped = 0
        self.parse_errors = 0
        # self._pending (made by connect_mqtt): (topic, payload, token, qos, (stream, seq) | None); appends and
        # poplefts are thread-safe
        self._root = mq.root_topic(self.config) + "/"
        self.duplicates_dropped = 0
        self.gaps_recorded = 0
        # hash of (topic, payload) of recently stored messages -> was it numbered; spots a copy sent again
        # by the broker, or one that reaches us without its numbers (a broker that drops MQTT 5 properties)
        self._recent: dict[int, bool] = {}
        self._recent_order: deque[int] = deque()
        self._reload_lock = threading.Lock()
        self._processed = 0
        self._batches_written = 0
        self._last_error_log = 0.0
        self._suppressed = 0
        self.writer = BatchWriter(self.db, on_error=self._log_rejected)
        self._migrated.wait()
        if self._migration_error is not None:
            raise self._migration_error
        self._subscribed = threading.Event()
        self.ingest = self._connect_ingest_client()

    def _before_ready_line(self, sent: Any) -> None:
        """The ready line goes out once the broker has acknowledged ``$state`` = ``ready`` (PUBCOMP, at most
        :data:`READY_LINE_WAIT_S`), so after the ``$state``'s PUBREL: a line that reached the broker first was sent
        to the subscribers in the same TCP segment as the ``$state`` or just before it (tcpdump), and a subscriber
        whose answer to the line (PUBACK) waited for the broker's delayed ACK answered the ``$state`` ~40 ms late
        (Nagle's algorithm in the subscriber). The ``$state`` is the only QoS 2 message in flight here: its PUBCOMP
        comes at once."""
        try:
            sent.wait_for_publish(READY_LINE_WAIT_S)
        except Exception:  # not sent (the broker is away): the line goes out as it can
            pass

    def _post_init(self) -> None:
        """Ready, then the line of what is stored: no log line of the job's own goes out just before its
        ``$state`` = ``ready``. (Its PUBACK from the broker, a packet the job does not answer, could then
        hold the broker's PUBREC of the ``$state`` until the job's delayed ACK: Nagle's algorithm, see
        :meth:`_keep_own`.)"""
        super()._post_init()
        self._go.set()
        self.logger.info("Storing %d topic pattern(s) into the leader database.", len(self.router.subscriptions))

    @property
    def rows_written(self) -> int:
        return self.writer.rows_written

    # -------------------------------------------------------------- ingestion
    def _client_id(self) -> str:
        prefix = mq.topic_prefix(self.config)
        digest = _sha1(f"{prefix}|{self.db.path}".encode()).hexdigest()[:10]
        return f"mqtt_to_db_streaming-{self.unit}-{digest}"

    def _connect_ingest_client(self) -> Any:
        """Start the receiving client (gmqtt, MQTT 5, persistent session) on the loop of the job's own connection.

        gmqtt rather than paho for this one connection: receiving a QoS 1 message with properties costs
        ~17 µs of CPU in gmqtt against ~110 µs in paho on the same machine (see docs/benchmarks.md),
        and a message can be acknowledged after the commit. QoS 1 messages skip gmqtt's task per message:
        :class:`~.acks.DeferredAcks` hands them to :meth:`_intake` and sends a batch's PUBACKs in one write
        after its commit (gmqtt's ``on_message`` coroutine remains the path for QoS 0, and for QoS 1 when
        the deferred acknowledgements cannot be installed).
        """
        import asyncio

        import gmqtt
        from gmqtt.mqtt.constants import UNLIMITED_RECONNECTS

        loop = self.mqtt.loop  # running in the thread of the job's own connection (:meth:`connect_mqtt`)
        self._loop = loop

        def quiet_cancellations(lp: Any, context: dict[str, Any]) -> None:
            # messages still unacknowledged when the job stops: the broker keeps them, nothing to report
            if not isinstance(context.get("exception"), asyncio.CancelledError):
                lp.default_exception_handler(context)

        loop.set_exception_handler(quiet_cancellations)
        client = gmqtt.Client(self._client_id(), clean_session=False, optimistic_acknowledgement=False,
                              session_expiry_interval=SESSION_EXPIRY_S, receive_maximum=RECEIVE_MAXIMUM)
        client.set_config({"reconnect_retries": UNLIMITED_RECONNECTS, "reconnect_delay": 2})
        host, port, username, password = mq.broker_settings(self.config)
        if username:
            client.set_auth_credentials(username, password)

        def on_connect(c: Any, flags: Any, rc: Any, properties: Any) -> None:
            self._announce_stored_topics()
            topics = self.router.subscriptions + [mq.topic_prefix(self.config) + GAP_PATTERN]
            c.subscribe([gmqtt.Subscription(t, qos=1) for t in topics])  # ready once the broker acknowledged

        def on_subscribe(c: Any, mid: Any, qos: Any, properties: Any) -> None:
            refused = [q for q in qos or [] if q >= 0x80]
            if refused:
                self.logger.error("broker refused %d subscription(s): %s", len(refused), refused)
            self._subscribed.set()

        def on_disconnect(c: Any, packet: Any, exc: Any = None) -> None:
            if not self._stop.is_set() and not self._closing:
                self.logger.warning("lost the broker; reconnecting")

        async def on_message(c: Any, topic: str, payload: bytes, qos: int, properties: dict[str, Any]) -> int:
            # gmqtt's own path: QoS 0, and QoS 1 when the deferred acknowledgements could not be installed
            while len(self._pending) >= MAX_QUEUE and not self._stop.is_set() and not self._closing:
                await asyncio.sleep(0.01)  # the writer is behind: hold back, the broker keeps the rest
            done = loop.create_future()
            verdict = self._intake(topic, payload, properties, done, qos)
            if verdict == acks.QUEUED:
                await done  # resolved by the writer once the batch is committed
            elif verdict == acks.HOLD:
                await asyncio.sleep(3600)  # never acknowledged: the broker keeps it for our next start
            return 0

        client.on_connect = on_connect
        client.on_subscribe = on_subscribe
        client.on_disconnect = on_disconnect
        client.on_message = on_message
        self._acks = acks.DeferredAcks(client, self._intake)
        try:
            asyncio.run_coroutine_threadsafe(
                client.connect(host, port, keepalive=60, ssl=mq.tls_context(self.config) or False), loop).result(15)
        except Exception as exc:
            raise ConnectionError(f"cannot reach the MQTT broker at {host}:{port}: {exc or type(exc).__name__}") from exc
        if not self._subscribed.wait(10):
            raise ConnectionError(f"the MQTT broker at {host}:{port} did not accept the subscriptions")
        return client

    def _announce_stored_topics(self) -> None:
        """What the units keep in their outboxes until it is acknowledged (retained: later units learn it)."""
        stored = json.dumps(sorted({mapping.topic for _, mapping, _ in self.router.mappings}))
        topic = f"{self._root}{self.unit}/$experiment/{self.job_name}/{STORED_TOPICS_SETTING}"
        self.mqtt.publish(topic, stored, qos=1, retain=True)

    # ------------------------------------------------------ plugin changes
    def on_mqtt_connect(self, client: Any) -> None:
        client.subscribe(plugins_changed_topic(self.unit, self.config), qos=1)
        if getattr(self, "router", None) is not None:  # a reconnect: the announcement goes out on this connection
            self._announce_stored_topics()

    def on_message(self, message: Any) -> None:
        if message.topic == plugins_changed_topic(self.unit, self.config) and not message.retain:
            # off paho's network thread: loading plugins imports modules and touches the database
            threading.Thread(target=self.reload_plugins, name="mqtt_to_db-reload", daemon=True).start()

    def reload_plugins(self) -> None:
        """Load the installed plugins anew: create their tables, store their topic mappings' topics
        (subscribing the new patterns, unsubscribing those no plugin maps any more) and announce the
        stored topics again. Nothing received meanwhile is lost: a message is routed by the mappings
        in force when its batch is written."""
        import importlib

        import gmqtt

        from reactorkit.plugin import Registry

        if getattr(self, "router", None) is None or getattr(self, "ingest", None) is None:
            return  # still starting: the plugins it loaded are the installed ones
        with self._reload_lock:
            importlib.invalidate_caches()  # a package pip installed since this process started
            registry = Registry.installed()
            self.db.registry = registry
            try:
                self.db.migrate()
            finally:
                self.db.close()  # this thread's connection
            router = TopicRouter(registry.topic_mappings, mq.topic_prefix(self.config))
            for mapping, error in router.broken:
                self.logger.error("mapping %s → %s from %s disabled: %s", mapping.topic, mapping.table, mapping.source,
                                  error)
            before, after = set(self.router.subscriptions), set(router.subscriptions)
            self.router = router
            added, removed = sorted(after - before), sorted(before - after)
            client = self.ingest
            if added:
                self._loop.call_soon_threadsafe(client.subscribe, [gmqtt.Subscription(t, qos=1) for t in added])
            if removed:
                self._loop.call_soon_threadsafe(client.unsubscribe, removed)
            self._announce_stored_topics()
        self.logger.info("Plugins loaded anew: storing %d topic pattern(s) (%d added, %d removed).",
                         len(after), len(added), len(removed))

    def _intake(self, topic: str, payload: bytes, properties: dict[str, Any], token: Any, qos: int = 1) -> int:
        """Take one message on the receiving thread: queue it for the writer (``acks.QUEUED``; ``token``
        is acknowledged after its batch's commit), or say it needs no storing (``acks.ACK_NOW``) or must
        stay with the broker (``acks.HOLD``, the job is stopping)."""
        if self._closing:
            return acks.HOLD
        self.messages_received += 1
        users = properties.get("user_property") or ()
        if should_skip(topic, payload, bool(properties.get("retain"))) or any(
                k == REANNOUNCE_PROPERTY for k, _ in users) or (
                topic.startswith(self._own_logs) and self._stored_by_this_job_in(users)):  # a line it stored
            self.messages_skipped += 1
            return acks.ACK_NOW
        number = sequence_from_pairs(users)
        if number is None:
            seen = self._recent.get(hash((topic, payload)))  # True: stored numbered, False: unnumbered
            if seen or (seen is False and properties.get("dup")):
                self.duplicates_dropped += 1  # stored already: the broker sent it again
                return acks.ACK_NOW
        self._pending.append((topic, payload, token, qos, number))
        self._enqueued += 1
        return acks.QUEUED

    def _stored_by_this_job_in(self, users: Iterable[tuple[str, str]]) -> bool:
        """Whether MQTT 5 user properties mark a line as stored by this job on this unit: :data:`STORED_PROPERTY`
        valued with this process's client id, or an earlier process's (its lines published with QoS 1 just as
        it stopped stay in the receiving client's persistent session, and come on the next start)."""
        prefix = self._stored_by_this_job
        return any(k == STORED_PROPERTY and v.startswith(prefix) and v[len(prefix):].isdigit() for k, v in users)

    def _write_loop(self) -> None:
        """Write what the receiving thread queued: a batch when ``batch_size`` messages wait or
        ``flush_interval_s`` passed since the last write; a failed write is kept and retried.

        On stop, the batch in hand is finished; what still waits is left unacknowledged (the broker
        sends it again to the next start, and the units keep it until it is stored), so a stop is quick.
        """
        try:  # the tables this job writes; in this thread, whose later allocations reuse what the migration freed
            self.db.migrate()
        except BaseException as exc:  # raised by the constructor
            self._migration_error = exc
            return
        finally:
            # the migration's connection holds its prepared statements (the sqlite3 module's statement cache),
            # page cache and parsed schema: closed, and the writer opens one of its own
            self.db.close()
            self._migrated.set()
        # until the job is ready (the constructor made the router, the batch writer and the queue), or stops
        self._go.wait()
        if self._stop.is_set():
            return
        # what the migration allocated stays in this thread's malloc arena (~2.5 MB) unless given back to the
        # system; after ready, as its first use imports ctypes (~2 ms of CPU the job's start would wait for)
        release_free_heap()
        pending = self._pending
        last_write = time.monotonic()
        checkpointer = False
        try:  # the checkpointer thread moves the WAL into the database: no commit waits for that (and its fsync)
            self.db.conn.execute("PRAGMA wal_autocheckpoint = 0")
            threading.Thread(target=self._checkpoint_loop, name="mqtt_to_db-checkpoint", daemon=True).start()
            checkpointer = True
        except sqlite3.Error as exc:
            self.logger.debug("WAL checkpoints stay with the commits: %s", exc)
        connected = True
        while True:
            if self._stop.is_set():
                self.db.close()
                return
            waiting = len(pending)
            if waiting == 0:
                if connected and time.monotonic() - last_write >= IDLE_CLOSE_S:
                    # nothing to write: the connection's parsed schema, page cache and statements are given back
                    self.db.close()
                    connected = False
                    release_free_heap()
                time.sleep(0.01)
                continue
            if waiting < self.batch_size and time.monotonic() - last_write < self.flush_interval_s:
                time.sleep(0.005)
                continue
            if not connected:  # opened again by the batch's first statement; checkpoints stay with the checkpointer
                connected = True
                if checkpointer:
                    try:
                        self.db.conn.execute("PRAGMA wal_autocheckpoint = 0")
                    except sqlite3.Error as exc:  # (the batch's write reports an unusable database)
                        self.logger.debug("WAL checkpoints: %s", exc)
            batch = [pending.popleft() for _ in range(min(waiting, self.batch_size))]
            while not self._flush(batch) and not self._stop.is_set():
                time.sleep(0.5)  # database busy: keep the batch and retry
            self._processed += len(batch)
            self._batches_written += 1
            last_write = time.monotonic()

    def _checkpoint_loop(self) -> None:
        """Every :data:`CHECKPOINT_INTERVAL_S`, a passive WAL checkpoint on a connection of its own.

        SQLite checkpoints in the committing connection by default (every 1000 pages): the writer
        would copy pages and wait for the database file's fsync between two batches, which on a
        busy disk holds the whole ingestion back for as long. A passive checkpoint never blocks the
        writer; commits keep their durability (WAL, ``synchronous = NORMAL``, as before).

        A round is skipped when the writer has committed nothing since a checkpoint that moved the
        whole WAL; after :data:`IDLE_CLOSE_S` of that, the connection is closed and its memory
        given back, and the next commit opens it again.
        """
        done_at = -1  # the writer's batch count when a checkpoint last moved the whole WAL
        idle_since: float | None = None
        is_open = False
        while not self._stop.wait(CHECKPOINT_INTERVAL_S):
            batches = self._batches_written
            if batches == done_at:
                if is_open and idle_since is not None and time.monotonic() - idle_since >= IDLE_CLOSE_S:
                    self.db.close()
                    is_open = False
                    release_free_heap()
                continue
            try:
                is_open = True
                _, frames, moved = self.db.conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            except sqlite3.Error as exc:
                self.logger.debug("WAL checkpoint: %s", exc)
                continue
            if frames == moved or frames < 0:  # all moved (-1: not in WAL mode); else a reader held it back
                done_at, idle_since = batches, time.monotonic()
        self.db.close()

    def _flush(self, messages: list[tuple[str, bytes, int, int, Any]]) -> bool:
        """Store one batch: rows of messages not stored before, the ledger and gap reports, in one
        transaction; then acknowledge the batch to the broker and to the units' outboxes."""
        rows: list[tuple[str, list[tuple[str, dict[str, Any]]], tuple[str, str, str, int] | None]] = []
        reports: list[tuple[str, str, dict[str, Any]]] = []
        for topic, payload, _, _, number in messages:
            parts = topic[len(self._root):].split("/") if topic.startswith(self._root) else []
            unit = parts[0] if parts else ""
            if len(parts) == 4 and parts[1:] == ["$experiment", "outbox", "gap"]:
                try:
                    report = json.loads(payload)
                    experiment = report["topic"][len(self._root):].split("/")[1]
                    reports.append((unit, experiment, report))
                except (ValueError, KeyError, IndexError, TypeError) as exc:
                    self._log_rate_limited(f"skipped a malformed gap report from {unit}: {exc}")
                continue
            produced, errors = rows_of(self.router, topic, payload)
            for error in errors:
                self.parse_errors += 1
                self._log_rate_limited(f"skipped a malformed message on {topic}: {error}")
            key = (unit, number[0], topic, number[1]) if number is not None else None
            rows.append((topic, produced, key))
        new_gaps: list[tuple[str, dict[str, Any]]] = []

        def within(conn: Any) -> list[tuple[str, dict[str, Any]]]:
            now = now_iso()
            fresh = ledger.claim(conn, [k for _, _, k in rows if k is not None], now)
            out: list[tuple[str, dict[str, Any]]] = []
            dropped = 0
            for _, produced, key in rows:
                if key is None:
                    out.extend(produced)
                elif key in fresh:
                    fresh.discard(key)  # a second copy in the same batch is a duplicate too
                    out.extend(produced)
                else:
                    dropped += 1
            self._dropped_in_batch = dropped
            new_gaps.clear()
            for unit, experiment, report in reports:
                if ledger.record_gap(conn, unit, experiment, report, now):
                    new_gaps.append((unit, report))
            return out

        try:
            self.writer.write([], within=within)
        except sqlite3.OperationalError as exc:
            self._log_rate_limited(f"database unavailable, will retry: {exc}")
            return False
        except Exception as exc:  # never let the writer thread die; say loudly what is lost
            self.logger.error("batch of %d message(s) not stored: %s: %s", len(rows), type(exc).__name__, exc)
        self.duplicates_dropped += getattr(self, "_dropped_in_batch", 0)
        for unit, report in new_gaps:
            self.gaps_recorded += 1
            self.logger.warning("%s could not keep %s message(s) on %s (numbers %s–%s, %s): they are lost",
                                unit, report.get("count"), report.get("topic"), report.get("first_seq"),
                                report.get("last_seq"), report.get("reason") or "outbox full")
        self._acknowledge(messages, reports)
        return True

    def _acknowledge(self, messages: list[tuple[str, bytes, int, int, Any]],
                     reports: list[tuple[str, str, dict[str, Any]]]) -> None:
        """After the commit: PUBACK each message to the broker, and tell each unit which of its
        numbered messages (and gap reports) are stored, so that its outbox forgets them."""
        by_unit: dict[tuple[str, str], dict[str, list[int]]] = {}
        done = []
        tokens = []
        for topic, payload, token, qos, number in messages:
            if token is not None:  # None: a log line of this job's own, stored without the broker
                (tokens if type(token) is tuple else done).append(token)
            if qos:
                h = hash((topic, payload))
                if h not in self._recent:
                    self._recent_order.append(h)
                self._recent[h] = self._recent.get(h, False) or number is not None
                if len(self._recent_order) > RECENT_MESSAGES:
                    self._recent.pop(self._recent_order.popleft(), None)
            if number is not None and topic.startswith(self._root):
                unit = topic[len(self._root):].split("/", 1)[0]
                by_unit.setdefault((unit, number[0]), {}).setdefault(topic, []).append(number[1])
        loop = getattr(self, "_loop", None)
        if loop is not None and not loop.is_closed():
            if done:
                loop.call_soon_threadsafe(_resolve, done)  # gmqtt sends each PUBACK as its future resolves
            if tokens:
                loop.call_soon_threadsafe(self._acks.send, tokens)  # the batch's PUBACKs in one write
        gaps_by_unit: dict[tuple[str, str], list[list[Any]]] = {}
        for unit, _, report in reports:
            try:
                gaps_by_unit.setdefault((unit, str(report["stream"])), []).append(
                    [report["topic"], int(report["first_seq"]), int(report["last_seq"])])
            except (KeyError, ValueError, TypeError):
                continue
        for unit, stream in set(by_unit) | set(gaps_by_unit):
            acks = [[topic, lo, hi] for topic, seqs in by_unit.get((unit, stream), {}).items()
                    for lo, hi in to_ranges(seqs)]
            payload = {"stream": stream, "acks": acks, "gaps": gaps_by_unit.get((unit, stream), [])}
            self.mqtt.publish(ack_topic(unit, self.config), json.dumps(payload), qos=1)

    def _log_rejected(self, message: str) -> None:
        self._log_rate_limited(message)

    def _log_rate_limited(self, message: str) -> None:
        now = time.monotonic()
        if now - self._last_error_log >= 1.0:
            extra = f" ({self._suppressed} similar message(s) suppressed)" if self._suppressed else ""
            self.logger.warning(message + extra)
            self._last_error_log, self._suppressed = now, 0
        else:
            self._suppressed += 1

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every message received so far is written. True if that happened within ``timeout`` s."""
        target = self._enqueued + self._own_queued
        deadline = time.monotonic() + timeout
        while self._processed < target:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    # -------------------------------------------------------------- lifecycle
    def on_disconnected(self) -> None:
        ingest = getattr(self, "ingest", None)
        self._closing = True  # take nothing more: what arrives now stays with the broker for the next start
        self._stop.set()  # the writer finishes its batch; the rest stays unacknowledged
        self._go.set()  # (a writer still waiting for the job to be ready ends)
        thread = getattr(self, "_writer_thread", None)
        if thread is not None and thread.is_alive() and thread is not threading.current_thread():
            thread.join(timeout=30)
        self._store_own_left()
        loop = getattr(self, "_loop", None)
        if ingest is not None and loop is not None:
            import asyncio

            try:
                # after the PUBACK writes already queued on the loop (the transport sends what it holds before closing)
                asyncio.run_coroutine_threadsafe(asyncio.sleep(0), loop).result(2)
                asyncio.run_coroutine_threadsafe(ingest.disconnect(), loop).result(2)
            except Exception as exc:  # the broker may be gone already
                self.logger.debug("disconnect: %s", exc)
            # the loop goes on for the job's own connection (its last publications); stopped with it
        db = getattr(self, "db", None)
        if db is not None:
            db.close()  # this thread's connection; the writer closed its own
