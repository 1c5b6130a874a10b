"""The MQTT client of a unit's processes: messages on stored topics go through the unit's outbox.

:class:`OutboxClient` is a paho 2.x client (MQTT 5) whose :meth:`publish`
first keeps a message on a topic the leader stores in the unit's
:class:`~reactorkit.core.outbox.Outbox` (committed to disk, numbered), then
sends it. Every other message (``$state``, settings the leader does not store,
``/set`` commands) is published exactly as paho would.

Sending, per process:

* connected and nothing of this process waiting: the message is handed to
  paho at once (same latency as before);
* otherwise it waits in the outbox, and a sender thread hands the waiting
  messages to paho in order once the broker is back (QoS ≥ 1, not retained:
  a late copy must never replace a retained value);
* each message stays in the outbox until the leader's ingestion acknowledges
  it (after its database commit). A message unacknowledged ``[outbox]
  resend_after_s`` (30 s) after it was sent, while the leader's ingestion is
  ``ready`` (and has been for 5 s), is sent again; the leader stores it once.
* messages of processes that ended before their acknowledgement arrived are
  adopted by a live process of the unit that has run for 10 s (checked every
  10 s while the leader's ingestion is ``ready``) and resent.

Which topics are stored: the leader's ingestion announces its topic patterns
(retained, ``…/<ingestion job>/stored_topics``); the unit remembers the
last announcement in its outbox. Before any announcement every message with a
payload (except ``$state``, ``/set`` and the outbox's own topics) is kept.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from reactorkit.core.outbox import (INGESTION_JOB, STORED_TOPICS_SETTING, STREAM_PROPERTY, SEQ_PROPERTY, Outbox,
                                    ack_topic, gap_topic, ingestion_topics, process_token)

logger = logging.getLogger("reactorkit.outbox")

DEFAULT_RESEND_AFTER_S = 30.0
INGESTION_SETTLE_S = 5.0
ADOPT_EVERY_S = 10.0
GAP_REPORT_EVERY_S = 5.0
HANDOFF_WINDOW = 1000  # most messages handed to paho and not yet acknowledged by the broker


class _Done(paho.MQTTMessageInfo):
    """What :meth:`OutboxClient.publish` returns for a message kept for later: already "published"
    as far as the caller is concerned (it is on disk and will be sent)."""

    def __init__(self) -> None:
        super().__init__(0)
        self.rc = paho.MQTTErrorCode.MQTT_ERR_SUCCESS
        self._published = True


class OutboxClient(paho.Client):
    """A paho client (use MQTT 5) whose messages on stored topics survive broker, leader and network faults.

    Configure with :meth:`use_outbox` before connecting; without it this is a plain paho client.
    """

    def use_outbox(self, *, unit: str, config: Any) -> None:
        """Keep this unit's messages on stored topics in its outbox (opened on the first such message).

        Args:
            unit: This unit's name (where the leader's acknowledgements arrive).
            config: Merged config (``[outbox]``, ``[mqtt]`` prefix).
        """
        from reactorkit.core.mqtt import root_topic, topic_prefix

        self._ob_unit = unit
        self._ob_config = config
        self._ob_prefix = topic_prefix(config)
        self._ob_root = root_topic(config) + "/"
        self._ob_store: Outbox | None = None
        self._ob_owner = process_token()
        self._ob_lock = threading.RLock()
        self._ob_wake = threading.Event()
        self._ob_stop = threading.Event()
        self._ob_thread: threading.Thread | None = None
        self._ob_patterns: list[str] | None = None
        self._ob_patterns_applied = False  # the leader's announcement was applied to the outbox file by this client
        self._ob_stored_cache: dict[str, bool] = {}
        self._ob_handed: dict[int, tuple[float, str, int]] = {}  # row id -> (monotonic sent, topic, seq)
        self._ob_by_topic: dict[str, dict[int, int]] = {}  # topic -> seq -> row id (handed, unacknowledged)
        self._ob_inflight: list[tuple[int, paho.MQTTMessageInfo]] = []
        self._ob_cursor = 0  # every row of ours with a smaller id has been handed at least once
        self._ob_waiting = False  # rows of ours above the cursor wait to be handed
        self._ob_ready_since: float | None = None
        self._ob_acks: list[dict[str, Any]] = []
        self._ob_new_patterns: list[str] | None = None
        self._ob_last_adopt = 0.0
        self._ob_last_gap_report = 0.0
        self.resend_after_s = config.getfloat("outbox", "resend_after_s", fallback=DEFAULT_RESEND_AFTER_S)
        self.message_callback_add(ack_topic(unit, config), self._ob_on_ack)
        self.message_callback_add(ingestion_topics(config), self._ob_on_ingestion)

    # ---------------------------------------------------------------- publish
    @property
    def outbox(self) -> Outbox | None:
        """The unit's outbox once this client has used it."""
        return getattr(self, "_ob_store", None)

    def _ob_is_stored(self, topic: str, payload: bytes) -> bool:
        if not payload or not topic.startswith(self._ob_root):
            return False
        known = self._ob_stored_cache.get(topic)
        if known is not None:
            return known
        tail = topic.rsplit("/", 1)[-1]
        if tail in ("$state", "set") or "/outbox/" in topic or f"/{INGESTION_JOB}/" in topic:
            stored = False
        elif self._ob_patterns is None:
            stored = True  # the leader has not said yet: keep it (dropped if it turns out unstored)
        else:
            stored = any(paho.topic_matches_sub(self._ob_prefix + p, topic) for p in self._ob_patterns)
        if len(self._ob_stored_cache) > 10_000:
            self._ob_stored_cache.clear()
        self._ob_stored_cache[topic] = stored
        return stored

    def open_outbox(self) -> Outbox:
        """Open the unit's outbox now (without publishing): this client then adopts and sends
        what ended processes left there (see :mod:`reactorkit.core.outbox_keeper`)."""
        with self._ob_lock:
            store = self._ob_store if self._ob_store is not None else self._ob_activate()
            self._ob_last_adopt = 0.0  # adopt as soon as the leader's ingestion is ready
            return store

    def _ob_activate(self) -> Outbox:
        store = Outbox.for_unit(self._ob_config)
        self._ob_patterns = store.stored_patterns()
        self._ob_stored_cache.clear()
        self._ob_store = store
        self._ob_last_adopt = time.monotonic()  # a short-lived process (a pump run) never adopts
        self._ob_thread = threading.Thread(target=self._ob_run, name="outbox-sender", daemon=True)
        self._ob_thread.start()
        if self.is_connected():
            self._ob_subscribe()
        return store

    def publish(self, topic: str, payload: Any = None, qos: int = 0, retain: bool = False,
                properties: Properties | None = None) -> paho.MQTTMessageInfo:
        """Publish as paho does; a message on a stored topic is first kept in the outbox (see the module doc).

        A message given MQTT 5 ``properties`` (e.g. a re-announcement) is published as is, outside the outbox.

        Returns:
            paho's message info when handed to paho now, else an info that is already
            "published" (the message is on disk and will be sent).
        """
        if getattr(self, "_ob_unit", None) is None or properties is not None:
            return super().publish(topic, payload, qos, retain, properties)
        data = payload.encode("utf-8") if isinstance(payload, str) else (
            b"" if payload is None else bytes(payload) if isinstance(payload, (bytes, bytearray)) else str(payload).encode())
        with self._ob_lock:
            if self._ob_store is None:
                if self._ob_stop.is_set() or not self._ob_is_stored(topic, data):
                    return super().publish(topic, payload, qos, retain, properties)
                try:
                    self._ob_activate()
                except Exception as exc:  # no outbox (disk full, read-only): publish as before, and say so
                    logger.error("outbox unavailable, publishing without it: %s", exc)
                    self._ob_unit = None
                    return super().publish(topic, payload, qos, retain, properties)
                # decided again with the stored topics the outbox file knows (the check above had none yet): a
                # process's first message, often a retained setting, is not kept and sent again over newer values
                if not self._ob_is_stored(topic, data):
                    return super().publish(topic, payload, qos, retain, properties)
            elif not self._ob_is_stored(topic, data):
                return super().publish(topic, payload, qos, retain, properties)
            row_id, seq = self._ob_store.append(topic, data, qos=max(qos, 1), retain=retain, owner=self._ob_owner)
            if row_id is None:
                self._ob_last_gap_report = 0.0  # report it at once
                logger.warning("outbox full (%d messages): %s #%d not kept; the gap is reported to the leader",
                               self._ob_store.max_messages, topic, seq)
                return _Done()
            if self.is_connected() and not self._ob_waiting and len(self._ob_inflight) < HANDOFF_WINDOW:
                info = self._ob_hand(row_id, topic, seq, data, max(qos, 1), retain)
                self._ob_cursor = max(self._ob_cursor, row_id)
                return info
            self._ob_waiting = True
        self._ob_wake.set()
        return _Done()

    def _ob_hand(self, row_id: int, topic: str, seq: int, data: bytes, qos: int, retain: bool) -> paho.MQTTMessageInfo:
        props = Properties(PacketTypes.PUBLISH)
        props.UserProperty = [(STREAM_PROPERTY, self._ob_store.stream), (SEQ_PROPERTY, str(seq))]
        info = super().publish(topic, data, min(max(qos, 1), 2), retain, props)
        self._ob_handed[row_id] = (time.monotonic(), topic, seq)
        self._ob_by_topic.setdefault(topic, {})[seq] = row_id
        self._ob_inflight.append((row_id, info))
        return info

    # ---------------------------------------------------------------- MQTT side (paho's thread: no disk work)
    def _ob_subscribe(self) -> None:
        self.subscribe([(ack_topic(self._ob_unit, self._ob_config), 1), (ingestion_topics(self._ob_config), 1)])

    def outbox_on_connect(self) -> None:
        """Called on every (re)connect: subscribe to acknowledgements and wake the sender."""
        if getattr(self, "_ob_store", None) is not None:
            self._ob_subscribe()
            self._ob_last_gap_report = 0.0
            self._ob_wake.set()

    def _ob_on_ack(self, client: Any, userdata: Any, message: Any) -> None:
        try:
            data = json.loads(message.payload)
        except ValueError:
            return
        if isinstance(data, dict):
            self._ob_acks.append(data)
            self._ob_wake.set()

    def _ob_on_ingestion(self, client: Any, userdata: Any, message: Any) -> None:
        setting = message.topic.rsplit("/", 1)[-1]
        if setting == "$state":
            ready = message.payload == b"ready"
            if ready and self._ob_ready_since is None:
                self._ob_ready_since = time.monotonic()
            elif not ready:
                self._ob_ready_since = None
        elif setting == STORED_TOPICS_SETTING and message.payload:
            try:
                patterns = json.loads(message.payload)
            except ValueError:
                return
            if isinstance(patterns, list) and all(isinstance(p, str) for p in patterns):
                self._ob_new_patterns = patterns
                self._ob_wake.set()

    @property
    def ingestion_ready(self) -> bool:
        """True when the leader's ingestion has said ``ready`` (and not ``lost``/``disconnected`` since)."""
        return getattr(self, "_ob_ready_since", None) is not None

    # ---------------------------------------------------------------- sender thread
    def _ob_run(self) -> None:
        while not self._ob_stop.is_set():
            self._ob_wake.wait(0.2)
            self._ob_wake.clear()
            try:
                self._ob_step()
            except Exception as exc:  # the sender never dies: a busy disk is retried
                logger.warning("outbox: %s: %s", type(exc).__name__, exc)
                time.sleep(0.5)

    def _ob_step(self) -> None:
        store = self._ob_store
        with self._ob_lock:
            self._ob_inflight = [(r, i) for r, i in self._ob_inflight if not i.is_published()]
        if self._ob_new_patterns is not None:
            patterns, self._ob_new_patterns = self._ob_new_patterns, None
            # the first announcement this process receives is applied even when the file already knew it: messages
            # an earlier process kept before it knew (on topics the leader never acknowledges) are dropped
            if patterns != self._ob_patterns or not self._ob_patterns_applied:
                self._ob_patterns_applied = True
                dropped = store.set_stored_patterns(patterns, self._ob_prefix)
                with self._ob_lock:
                    self._ob_patterns = patterns
                    self._ob_stored_cache.clear()
                if dropped:
                    logger.info("outbox: %d kept message(s) on topics the leader does not store were dropped", dropped)
        while self._ob_acks:
            self._ob_apply_ack(self._ob_acks.pop(0))
        if not self.is_connected():
            return
        now = time.monotonic()
        if self.ingestion_ready and now - self._ob_last_adopt >= ADOPT_EVERY_S:
            self._ob_last_adopt = now
            lowest = store.adopt_orphans(self._ob_owner)
            if lowest is not None:
                with self._ob_lock:
                    self._ob_cursor = min(self._ob_cursor, lowest - 1)
                    self._ob_waiting = True
        settled = self._ob_ready_since is not None and now - self._ob_ready_since >= INGESTION_SETTLE_S
        if settled:
            with self._ob_lock:
                due = [r for r, (t, _, _) in self._ob_handed.items() if now - t >= self.resend_after_s]
                if due:
                    for r in due:
                        self._ob_forget(r)
                    self._ob_cursor = min(self._ob_cursor, min(due) - 1)
                    self._ob_waiting = True
        if now - self._ob_last_gap_report >= GAP_REPORT_EVERY_S:
            self._ob_last_gap_report = now
            for gap in store.gaps():
                super().publish(gap_topic(self._ob_unit, self._ob_config),
                                json.dumps({"stream": store.stream, **gap}), 1, False)
        self._ob_send_waiting()

    def _ob_send_waiting(self) -> None:
        store = self._ob_store
        while self._ob_waiting and self.is_connected() and not self._ob_stop.is_set():
            with self._ob_lock:
                room = HANDOFF_WINDOW - len(self._ob_inflight)
                if room <= 0:
                    return
                rows = store.pending(self._ob_owner, self._ob_cursor, min(room, 500))
                for row_id, topic, seq, data, qos in rows:
                    if row_id not in self._ob_handed:
                        self._ob_hand(row_id, topic, seq, data, qos, False)
                    self._ob_cursor = row_id
                if len(rows) < min(room, 500):
                    self._ob_waiting = False
                self._ob_inflight = [(r, i) for r, i in self._ob_inflight if not i.is_published()]

    def _ob_forget(self, row_id: int) -> None:
        entry = self._ob_handed.pop(row_id, None)
        if entry is not None:
            seqs = self._ob_by_topic.get(entry[1])
            if seqs is not None:
                seqs.pop(entry[2], None)

    def _ob_apply_ack(self, ack: dict[str, Any]) -> None:
        store = self._ob_store
        if ack.get("stream") != store.stream:
            return
        mine: list[int] = []
        with self._ob_lock:
            for item in ack.get("acks") or []:
                try:
                    topic, lo, hi = item[0], int(item[1]), int(item[2])
                except (TypeError, ValueError, IndexError):
                    continue
                seqs = self._ob_by_topic.get(topic)
                if not seqs:
                    continue
                if hi - lo < len(seqs):
                    found = [seqs[s] for s in range(lo, hi + 1) if s in seqs]
                else:
                    found = [r for s, r in seqs.items() if lo <= s <= hi]
                mine += found
            for row_id in mine:
                self._ob_forget(row_id)
        if mine:
            store.delete(mine)
        reported = [(g[0], g[1], g[2]) for g in ack.get("gaps") or [] if isinstance(g, list) and len(g) == 3]
        if reported:
            store.forget_gaps(reported)

    def outbox_waiting(self) -> int:
        """This process's messages not yet acknowledged by the leader (handed or waiting)."""
        store = getattr(self, "_ob_store", None)
        if store is None:
            return 0
        with self._ob_lock:
            return len(self._ob_handed) + (1 if self._ob_waiting else 0)

    # ---------------------------------------------------------------- shutdown
    def loop_stop(self) -> Any:
        """Stop the sender thread and paho's network thread (kept messages stay on disk for later)."""
        stop = getattr(self, "_ob_stop", None)
        if stop is not None:
            stop.set()
            self._ob_wake.set()
            thread = self._ob_thread
            if thread is not None and thread is not threading.current_thread():
                thread.join(timeout=5)
        return super().loop_stop()
