"""The ``$state`` lifecycle of a short action (a pump run), without a job class.

Pumps are actions, not background jobs, but they follow the same conventions
(domain facts §2.5): a row in the unit's job registry while they run (so
``pio kill`` and ``/unit_api/jobs/stop`` find them), ``$state`` published
retained ``init → ready → disconnected`` with the last will ``lost`` (re-announced after a reconnect, so a broker restart mid-run does not
leave the last will's ``lost`` standing), and a
``disconnected`` (or ``sleeping``) on ``…/{action}/$state/set`` — from this unit
or ``$broadcast`` — stops the action early.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from reactorkit.plugin import mqtt as mq
from reactorkit.plugin import get_leader_hostname
from reactorkit.plugin import JobRegistry
from reactorkit.plugin import create_logger

STOP_WORDS = ("disconnected", "sleeping")


def _no_delay(client: Any) -> None:
    """Send small packets at once (``TCP_NODELAY``): a log message (QoS 0, unanswered)
    followed by a QoS 2 publish otherwise waits ~40 ms for a delayed TCP acknowledgement."""
    import socket

    try:
        sock = client.socket()
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, AttributeError):
        pass


class ActionLifecycle:
    """Register, announce and listen for a stop while an action runs.

    Args:
        action: The action's job name, e.g. ``"add_media"``.
        unit, experiment: Where it runs.
        config: Merged config. clock: The clock (for the registry's ``started_at``).
        job_source: Who started it (default ``$JOB_SOURCE`` or ``"user"``).
        stop_event: Event set when a stop is requested (default: a new one).
        source: Log source (``"app"`` for built-ins).

    Raises:
        JobAlreadyRunning: the same action is already running on this unit.
        ConnectionError: the MQTT broker cannot be reached (the registry row is removed).

    Use as a context manager; :meth:`close` publishes ``disconnected``, flushes
    every QoS ≥ 1 publish, disconnects and removes the registry row.
    """

    def __init__(self, action: str, unit: str, experiment: str, *, config: Any, clock: Any,
                 job_source: str | None = None, stop_event: threading.Event | None = None,
                 source: str = "app") -> None:
        self.action = action
        self.unit = unit
        self.experiment = experiment
        self.config = config
        self.stop_event = stop_event or threading.Event()
        self._pending: list[Any] = []
        self._closed = False
        self._state: str | None = None
        self.state_topic = mq.job_topic(unit, experiment, action, "$state", config=config)
        self.registry = JobRegistry(config=config)
        try:
            self.job_id = self.registry.register(
                unit=unit, experiment=experiment, job_name=action, pid=os.getpid(),
                job_source=job_source or os.environ.get("JOB_SOURCE", "user"),
                leader=get_leader_hostname(config), started_at=clock.utc_iso(),
            )
        except BaseException:
            self.registry.close()
            raise
        try:
            self.client = mq.create_client(
                client_id=f"{action}-{unit}-{experiment}-{os.getpid()}-{threading.get_ident() % 100000}",
                will=(self.state_topic, "lost", mq.QOS_EXACTLY_ONCE, True),
                on_connect=self._subscribe,
                on_message=self._on_message,
                config=config,
            )
        except BaseException:
            self.registry.remove(self.job_id)
            self.registry.close()
            raise
        _no_delay(self.client)
        self.logger = create_logger(action, unit=unit, experiment=experiment, mqtt_client=self.client,
                                    source=source, config=config, clock=clock)
        self._set_state("init")
        self._set_state("ready")

    # ------------------------------------------------------------------ MQTT
    def _subscribe(self, client: Any) -> None:
        root = mq.root_topic(self.config)
        for unit in (self.unit, "$broadcast"):
            client.subscribe(f"{root}/{unit}/{self.experiment}/{self.action}/$state/set", qos=mq.QOS_AT_LEAST_ONCE)
        state = getattr(self, "_state", None)
        if state is not None:  # a reconnect: the broker may hold our last will's "lost"
            client.publish(self.state_topic, state, qos=mq.QOS_EXACTLY_ONCE, retain=True)

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        if message.retain:  # retained /set messages are ignored (§2.4)
            return
        if message.payload.decode("utf-8", errors="replace").strip().lower() in STOP_WORDS:
            self.stop_event.set()

    def publish(self, topic: str, payload: str | bytes, *, qos: int = mq.QOS_EXACTLY_ONCE, retain: bool = False,
                wait_s: float = 2.0) -> Any:
        """Publish on the action's client; a QoS ≥ 1 message is awaited (≤ ``wait_s`` s) before returning.

        One message at a time: a burst of QoS 2 messages can stall ~40 ms on TCP
        delayed acknowledgements, which a sped-up clock turns into minutes.
        Messages not yet acknowledged are flushed again by :meth:`close`.
        """
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        if qos > 0:
            try:
                info.wait_for_publish(wait_s)
            except (RuntimeError, ValueError):  # not connected: paho keeps it queued
                pass
            self._pending = [i for i in self._pending if not i.is_published()]
            if not info.is_published():
                self._pending.append(info)
        return info

    def _set_state(self, state: str) -> None:
        self._state = state
        self.publish(self.state_topic, state, qos=mq.QOS_EXACTLY_ONCE, retain=True)
        try:
            self.registry.set_setting(self.job_id, "$state", state)
        except Exception:  # the registry is a cache: never fatal
            pass

    # -------------------------------------------------------------- closing
    def close(self, flush_timeout_s: float = 5.0) -> None:
        """State ``disconnected``, flush publishes, disconnect, remove the registry row (idempotent)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._state = "disconnected"
            self.publish(self.state_topic, "disconnected", qos=mq.QOS_EXACTLY_ONCE, retain=True)
            deadline = time.monotonic() + flush_timeout_s
            for info in self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    info.wait_for_publish(left)
                except (RuntimeError, ValueError):
                    pass
        finally:
            try:
                self.client.disconnect()  # a clean disconnect discards the last will
                self.client.loop_stop()
            finally:
                try:
                    self.registry.remove(self.job_id)
                finally:
                    self.registry.close()

    def __enter__(self) -> "ActionLifecycle":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
