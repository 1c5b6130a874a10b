"""Fault-drill kit: private services to break, a network link to cut, and a published-vs-stored tally.

Drills stop brokers, Redis and ingestion on purpose, so they never touch the
machine's shared services: each starts its own on a free port.

* :class:`PrivateBroker` — a mosquitto of its own (persistence on, as Debian
  ships it), stopped cleanly (SIGTERM), killed (SIGKILL) and restarted on the
  same port;
* :class:`PrivateRedis` — a redis-server of its own;
* :class:`CuttableLink` — a TCP relay between the units and a broker whose
  link can be cut (connections dropped and refused, as a pulled cable looks
  once TCP gives up) and restored;
* :func:`tally_series` — counts one series of readings: how many the unit's jobs
  published (the unit's outbox numbers every message on a stored topic when the
  job publishes it, before anything can be lost), how many rows the leader
  database holds, how many of those are distinct by the reading's own
  timestamp, hence lost and duplicated; :class:`Tally` prints
  ``published / stored / lost / duplicated``.

Pytest fixtures (available wherever ``reactorkit.core.testing`` is a plugin):
``private_broker`` (started, stopped at teardown) and ``private_redis``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from reactorkit.core.cluster import free_port
from reactorkit.core.sqlite import open_sqlite


def wait_until(predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.1,
               what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy; that value.

    Raises:
        TimeoutError: still falsy after ``timeout`` seconds (``what`` names it).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not met within {timeout} s")
        time.sleep(interval)


def port_accepts(port: int, host: str = "127.0.0.1") -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=0.3):
            return True
    except OSError:
        return False


def _executable(name: str, *fallbacks: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    return next((f for f in fallbacks if Path(f).exists()), None)


class PrivateBroker:
    """A mosquitto of a drill's own on a free port (restartable on the same port).

    Args:
        folder: Holds its config, persistence file and log.
        persistence: Keep retained messages and persistent sessions across a clean stop
            (``persistence true``, as the Debian package configures it).
        extra_conf: More lines for ``mosquitto.conf``.

    Raises:
        FileNotFoundError: mosquitto is not installed.
    """

    def __init__(self, folder: Path, *, persistence: bool = True, extra_conf: str = "") -> None:
        self.executable = _executable("mosquitto", "/usr/sbin/mosquitto")
        if self.executable is None:
            raise FileNotFoundError("mosquitto is not installed (apt-get install mosquitto)")
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.conf = self.folder / "mosquitto.conf"
        lines = [f"listener {self.port} 127.0.0.1", "allow_anonymous true",
                 f"log_dest file {self.folder / 'mosquitto.log'}"]
        if persistence:
            lines += ["persistence true", f"persistence_location {self.folder}/", "autosave_interval 1"]
        if os.geteuid() == 0:
            lines.append("user root")  # else mosquitto drops to a user that cannot write the folder
        self.conf.write_text("\n".join(lines) + "\n" + extra_conf)
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 10.0) -> "PrivateBroker":
        """Start (on the same port as before) and wait until it accepts connections."""
        if self.running:
            return self
        self.proc = subprocess.Popen([self.executable, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_until(lambda: port_accepts(self.port) or self.proc.poll() is not None, timeout, 0.05,
                   what=f"mosquitto on port {self.port}")
        if self.proc.poll() is not None:
            raise RuntimeError(f"mosquitto exited with {self.proc.returncode}; see {self.folder}/mosquitto.log")
        self.starts += 1
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        """Stop it (SIGTERM: clean, persistence written; SIGKILL: a crash) and wait until the port is free."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
        wait_until(lambda: not port_accepts(self.port), timeout, 0.05, what=f"port {self.port} released")

    def kill(self) -> None:
        """Crash it: SIGKILL, nothing saved since the last autosave."""
        self.stop(signal.SIGKILL)

    def config_ini(self) -> str:
        """The ``[mqtt]`` section pointing a unit at this broker."""
        return f"[mqtt]\nbroker_address = 127.0.0.1\nbroker_port = {self.port}\n"

    def __enter__(self) -> "PrivateBroker":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


class PrivateRedis:
    """A redis-server of a drill's own on a free port (no persistence).

    Raises:
        FileNotFoundError: redis-server is not installed.
    """

    def __init__(self, folder: Path) -> None:
        self.executable = _executable("redis-server", "/usr/bin/redis-server")
        if self.executable is None:
            raise FileNotFoundError("redis-server is not installed (apt-get install redis-server)")
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> "PrivateRedis":
        if self.proc is not None and self.proc.poll() is None:
            return self
        self.proc = subprocess.Popen(
            [self.executable, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.folder), "--logfile", str(self.folder / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: port_accepts(self.port), timeout, 0.05, what=f"redis on port {self.port}")
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def __enter__(self) -> "PrivateRedis":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


class CuttableLink:
    """A TCP relay ``127.0.0.1:port → 127.0.0.1:target_port`` whose link can be cut.

    Point a unit's ``[mqtt] broker_port`` at :attr:`port`; :meth:`cut` drops
    every relayed connection and refuses new ones (what the unit sees once a
    network cut outlasts TCP's patience), :meth:`restore` lets them through again.

    Args:
        target_port: The broker's port.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._lock = threading.Lock()
        self._up = threading.Event()
        self._up.set()
        self._closed = False
        self.cuts = 0
        threading.Thread(target=self._accept, name="cuttable-link", daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            if not self._up.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=2)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._pairs.append((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                if not self._up.is_set():
                    break
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    @property
    def is_cut(self) -> bool:
        return not self._up.is_set()

    def cut(self) -> None:
        """Drop every relayed connection and refuse new ones until :meth:`restore`."""
        self._up.clear()
        self.cuts += 1
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            for s in pair:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def restore(self) -> None:
        self._up.set()

    def close(self) -> None:
        self._closed = True
        self.cut()
        self._server.close()


# ------------------------------------------------------------------ counting
@dataclass(frozen=True)
class Tally:
    """Published vs stored for one series of readings.

    Attributes:
        series: What was counted (e.g. ``"worker1 <job>/<setting> → <table>"``).
        published: Messages the unit's jobs published (the outbox's sequence number of the topic).
        stored: Rows in the leader's table.
        distinct: Rows distinct by the reading's own timestamp.
        declared_lost: Messages the unit declared lost (its outbox was full), from ``ingestion_gaps``.
    """

    series: str
    published: int
    stored: int
    distinct: int
    declared_lost: int = 0

    @property
    def lost(self) -> int:
        return max(0, self.published - self.distinct)

    @property
    def duplicated(self) -> int:
        return self.stored - self.distinct

    def line(self) -> str:
        extra = f" (declared lost by the unit: {self.declared_lost})" if self.declared_lost else ""
        return (f"{self.series}: published {self.published} / stored {self.stored} / lost {self.lost} / "
                f"duplicated {self.duplicated}{extra}")


def _read(path: Path, sql: str, params: tuple = ()) -> list[tuple]:
    if not Path(path).exists():
        return []
    conn = open_sqlite(path, read_only=True)
    try:
        return conn.execute(sql, params).fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        conn.close()


def outbox_path(unit_root: Path) -> Path:
    """A unit's outbox database (under its ``$DOT_PIOREACTOR``)."""
    return Path(unit_root) / "storage" / "outbox.sqlite"


def leader_database_path(leader_root: Path) -> Path:
    return Path(leader_root) / "storage" / "pioreactor.sqlite"


def published_count(unit_root: Path, topic: str) -> int:
    """How many messages the unit's jobs published on ``topic`` (full topic, with any prefix),
    over every outbox stream the unit has had (numbered when published, dropped or not)."""
    rows = _read(outbox_path(unit_root), "SELECT last_seq FROM sequences WHERE topic = ?", (topic,))
    return int(rows[0][0]) if rows else 0


def outbox_waiting(unit_root: Path) -> int:
    """Messages of the unit not yet acknowledged by the leader's ingestion."""
    rows = _read(outbox_path(unit_root), "SELECT count(*) FROM messages")
    return int(rows[0][0]) if rows else 0


def not_yet_stored(unit_root: Path, leader_root: Path, unit: str) -> int:
    """Messages ``unit`` published on stored topics that the leader has neither stored nor been told are lost.

    Compares every number the unit's outbox gave (per topic, its current stream) with the
    leader's ledger (``ingestion_sequences``) and recorded gaps (``ingestion_gaps``).
    """
    import json

    import paho.mqtt.client as paho

    from reactorkit.core.outbox import in_ranges

    meta = dict(_read(outbox_path(unit_root), "SELECT key, value FROM meta"))
    if "stream" not in meta:
        return 0
    patterns = json.loads(meta["stored_patterns"]) if "stored_patterns" in meta else None
    db = leader_database_path(leader_root)
    missing = 0
    for topic, last in _read(outbox_path(unit_root), "SELECT topic, last_seq FROM sequences"):
        root = topic.split("pioreactor/", 1)[0]
        if patterns is not None and not any(paho.topic_matches_sub(root + p, topic) for p in patterns):
            continue
        rows = _read(db, "SELECT ranges FROM ingestion_sequences WHERE pioreactor_unit = ? AND stream = ? AND topic = ?",
                     (unit, meta["stream"], topic))
        ranges = json.loads(rows[0][0]) if rows else []
        gaps = [[a, b] for a, b in _read(db, "SELECT first_seq, last_seq FROM ingestion_gaps WHERE pioreactor_unit = ?"
                                             " AND stream = ? AND topic = ?", (unit, meta["stream"], topic))]
        missing += sum(1 for n in range(1, last + 1) if not in_ranges(ranges, n) and not in_ranges(sorted(gaps), n))
    return missing


def tally_series(unit_root: Path, leader_root: Path, *, unit: str, topic: str, table: str,
                 where: str = "1 = 1", params: tuple = ()) -> Tally:
    """Count one series: published on ``topic`` by ``unit`` vs rows of ``table`` (``WHERE pioreactor_unit
    = unit AND where``) in the leader database, distinct by ``timestamp``.

    Args:
        topic: Full topic (with the prefix), e.g. ``"t12/pioreactor/worker1/exp/<job>/<setting>"``.
        where: Extra SQL condition picking the series in ``table`` (e.g. ``"channel = 2"``).
    """
    db = leader_database_path(leader_root)
    rows = _read(db, f'SELECT count(*), count(DISTINCT timestamp) FROM "{table}" WHERE pioreactor_unit = ? AND ({where})',
                 (unit, *params))
    stored, distinct = rows[0] if rows else (0, 0)
    gaps = _read(db, "SELECT coalesce(sum(count), 0) FROM ingestion_gaps WHERE pioreactor_unit = ? AND topic = ?",
                 (unit, topic))
    rel = topic.split("pioreactor/", 1)[-1]
    return Tally(series=f"{rel} → {table}", published=published_count(unit_root, topic), stored=int(stored),
                 distinct=int(distinct), declared_lost=int(gaps[0][0]) if gaps else 0)


# ------------------------------------------------------------------ fixtures
try:
    import pytest
except ImportError:  # the kit works without pytest
    pytest = None  # type: ignore[assignment]

if pytest is not None:

    def _service(cls: type, folder: Path) -> Iterator[Any]:
        try:
            service = cls(folder)
        except FileNotFoundError as exc:
            pytest.skip(str(exc))
        service.start()
        yield service
        service.stop()

    @pytest.fixture
    def private_broker(tmp_path: Path) -> Iterator[PrivateBroker]:
        """A started mosquitto of the test's own (skips when mosquitto is not installed)."""
        yield from _service(PrivateBroker, tmp_path / "private-broker")

    @pytest.fixture
    def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
        """A started redis-server of the test's own (skips when Redis is not installed)."""
        yield from _service(PrivateRedis, tmp_path / "private-redis")

# ------------------------------------------------------------------ a small cluster to break
class DrillCluster:
    """A leader running ingestion and one worker running jobs, on a :class:`PrivateBroker`.

    Each has its own ``$DOT_PIOREACTOR`` under ``base``; the worker reaches the
    broker through a :class:`CuttableLink` (``link=True``) so that its network
    can be cut. Jobs run as real processes (``pio run …``) on the simulated
    vessel at ``speedup``.

    Args:
        base: Folder for everything (broker, units, logs).
        speedup: Simulated seconds per wall second for the jobs.
        link: Put a cuttable link between the worker and the broker.
        redis: Also start a :class:`PrivateRedis` (``REDIS_URL`` of both units).
        worker_config: More ``config.ini`` text for the worker (e.g. ``"[outbox]\nmax_messages = 50\n"``).
    """

    def __init__(self, base: Path, *, speedup: float = 60.0, link: bool = False, redis: bool = False,
                 worker: str = "worker1", leader: str = "leader", experiment: str = "drill",
                 worker_config: str = "") -> None:
        import uuid

        self.base = Path(base)
        self.broker = PrivateBroker(self.base / "broker")
        self.redis = PrivateRedis(self.base / "redis") if redis else None
        self.link: CuttableLink | None = None
        self.want_link = link
        self.speedup = speedup
        self.prefix = f"d{uuid.uuid4().hex[:8]}/"
        self.origin = time.time()
        self.leader_name, self.worker_name, self.experiment = leader, worker, experiment
        self.leader_root = self.base / leader
        self.worker_root = self.base / worker
        self.ingestion: subprocess.Popen | None = None
        self.jobs: dict[str, subprocess.Popen] = {}
        self.worker_config = worker_config
        self.keeper: subprocess.Popen | None = None

    def start(self) -> "DrillCluster":
        self.broker.start()
        if self.redis is not None:
            self.redis.start()
        if self.want_link:
            self.link = CuttableLink(self.broker.port)
        for root, port in ((self.leader_root, self.broker.port),
                           (self.worker_root, self.link.port if self.link else self.broker.port)):
            root.mkdir(parents=True, exist_ok=True)
            (root / "config.ini").write_text(
                f"[mqtt]\nbroker_address = 127.0.0.1\nbroker_port = {port}\n\n"
                f"[cluster.topology]\nleader_hostname = {self.leader_name}\nleader_address = 127.0.0.1\n\n"
                + (self.worker_config if root == self.worker_root else ""))
        # what the worker's task worker does: send what ended jobs left in its outbox
        self.keeper = subprocess.Popen([sys.executable, "-m", "reactorkit.core.outbox_keeper"],
                                       env=self.env(self.worker_name), stdout=open(self.worker_root / "keeper.log", "wb"),
                                       stderr=subprocess.STDOUT)
        return self

    def env(self, unit: str, **extra: str) -> dict[str, str]:
        """Environment of a process of ``unit`` (the leader's or the worker's name)."""
        root = self.leader_root if unit == self.leader_name else self.worker_root
        env = {k: v for k, v in os.environ.items() if k not in ("GLOBAL_CONFIG", "LOCAL_CONFIG")}
        env.update(DOT_PIOREACTOR=str(root), HOSTNAME=unit, EXPERIMENT=self.experiment, MQTT_TOPIC_PREFIX=self.prefix,
                   REACTORKIT_SPEEDUP=str(self.speedup), REACTORKIT_CLOCK_ORIGIN=repr(self.origin),
                   HARDWARE="simulated", PYTHONUNBUFFERED="1")
        if self.redis is not None:
            env["REDIS_URL"] = self.redis.url
        env.update(extra)
        return env

    def _spawn(self, unit: str, name: str, *args: str) -> subprocess.Popen:
        from reactorkit.core.testing import pio_command

        root = self.leader_root if unit == self.leader_name else self.worker_root
        log = open(root / f"{name}.{int(time.time() * 1000)}.log", "wb")
        return subprocess.Popen(pio_command("run", name, *args), env=self.env(unit), stdout=log, stderr=subprocess.STDOUT)

    def start_ingestion(self) -> subprocess.Popen:
        """Start the leader's ingestion job (:data:`INGESTION_JOB`) and wait until it says ``ready``."""
        from reactorkit.core.outbox import INGESTION_JOB

        self.ingestion = self._spawn(self.leader_name, INGESTION_JOB)
        self.wait_state(self.leader_name, "$experiment", INGESTION_JOB, "ready")
        return self.ingestion

    def stop_ingestion(self, sig: int = signal.SIGTERM) -> None:
        """Stop it (SIGTERM: clean; SIGKILL: a crash, batch taken but not committed included)."""
        from reactorkit.core.testing import stop_process

        if self.ingestion is not None:
            stop_process(self.ingestion, sig)
            self.ingestion = None

    def start_job(self, name: str, *args: str, ready: bool = True) -> subprocess.Popen:
        """Start ``pio run name args…`` on the worker (waits for ``$state = ready``)."""
        proc = self._spawn(self.worker_name, name, *args)
        self.jobs[name] = proc
        if ready:
            self.wait_state(self.worker_name, self.experiment, name, "ready")
        return proc

    def topic(self, unit: str, experiment: str, *parts: str) -> str:
        return "/".join((f"{self.prefix}pioreactor", unit, experiment, *parts))

    def retained(self, topic: str, timeout: float = 5.0) -> bytes | None:
        """The retained value of ``topic`` on the broker now (None when there is none)."""
        import paho.mqtt.client as paho
        from paho.mqtt.enums import CallbackAPIVersion

        got: list[bytes] = []
        done = threading.Event()
        client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2)
        client.on_connect = lambda c, *a: c.subscribe(topic, qos=1)
        client.on_subscribe = lambda *a: threading.Timer(0.5, done.set).start()

        def on_message(c: Any, u: Any, m: Any) -> None:
            if m.retain:
                got.append(m.payload)
                done.set()

        client.on_message = on_message
        try:
            client.connect("127.0.0.1", self.broker.port)
        except OSError:
            return None
        client.loop_start()
        done.wait(timeout)
        client.disconnect()
        client.loop_stop()
        return got[-1] if got else None

    def wait_state(self, unit: str, experiment: str, job: str, state: str, timeout: float = 60.0) -> None:
        """Wait until the retained ``$state`` of ``job`` is ``state``."""
        topic = self.topic(unit, experiment, job, "$state")
        wait_until(lambda: self.retained(topic, timeout=2.0) == state.encode(), timeout, 0.2,
                   what=f"{job} {state} on {topic}")

    def stop_jobs(self) -> None:
        from reactorkit.core.testing import stop_process

        for proc in self.jobs.values():
            stop_process(proc)
        self.jobs.clear()

    def wait_stored(self, timeout: float = 120.0) -> None:
        """Wait until the leader holds every message the worker published on a stored topic."""
        wait_until(lambda: not_yet_stored(self.worker_root, self.leader_root, self.worker_name) == 0, timeout, 0.25,
                   what="every published message stored")

    def tally(self, topic_parts: tuple[str, ...], table: str, where: str = "1 = 1") -> Tally:
        """Count a series of the worker: ``topic_parts`` after the experiment (e.g. ``("<job>", "<setting>")``)."""
        return tally_series(self.worker_root, self.leader_root, unit=self.worker_name,
                            topic=self.topic(self.worker_name, self.experiment, *topic_parts), table=table, where=where)

    def stop(self) -> None:
        from reactorkit.core.testing import stop_process

        self.stop_jobs()
        if self.keeper is not None:
            stop_process(self.keeper)
            self.keeper = None
        self.stop_ingestion()
        if self.link is not None:
            self.link.close()
        self.broker.stop()
        if self.redis is not None:
            self.redis.stop()

    def __enter__(self) -> "DrillCluster":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
