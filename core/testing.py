"""A test kit for reactorkit and for plugin authors.

Real parts: jobs run as real processes (``pio run …``) against the real MQTT
broker and the simulated vessel. Each test gets its own ``$DOT_PIOREACTOR``,
its own MQTT topic prefix (so tests never see each other's messages) and its
own Redis database number (one per pytest-xdist worker: ``TEST_REDIS_DB``).

Use the pytest fixtures by adding ``pytest_plugins = ["reactorkit.core.testing"]``
to a ``conftest.py``:

* ``unit_env`` — a :class:`UnitEnv` (environment for one simulated unit);
* ``mqtt_recorder`` — a :class:`MQTTRecorder` on that unit's prefix;
* ``spawn_job`` — start ``pio run <job> …`` as a subprocess (killed at teardown);
* ``private_broker`` / ``private_redis`` — a mosquitto / Redis of the test's own on a free
  port, for tests that stop them (see :mod:`reactorkit.core.fault_drills`, which also has
  :class:`~reactorkit.core.fault_drills.DrillCluster` and the published-vs-stored tally).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

def _test_redis_db() -> int:
    """Redis database number for this test process: 9, or 9 + n (wrapping within 9–15) for the pytest-xdist
    worker ``gw<n>``, so parallel workers never share a database (Redis has databases 0–15 by default)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    n = int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else 0
    return 9 + n % 7


TEST_REDIS_DB = _test_redis_db()


@dataclass
class UnitEnv:
    """Environment variables of one simulated unit for tests.

    Attributes:
        root: The unit's ``$DOT_PIOREACTOR``.
        unit, experiment: Names used by jobs started with :meth:`env`.
        prefix: MQTT topic prefix (ends with ``/``).
        speedup: Simulated seconds per wall second.
    """

    root: Path
    unit: str = "testunit"
    experiment: str = "test_exp"
    prefix: str = field(default_factory=lambda: f"t{uuid.uuid4().hex[:10]}/")
    speedup: float = 1.0
    origin: float = field(default_factory=time.time)
    extra: dict[str, str] = field(default_factory=dict)

    def env(self, **overrides: str) -> dict[str, str]:
        """``os.environ`` plus this unit's variables (and ``overrides``)."""
        env = dict(os.environ)
        env.update(
            DOT_PIOREACTOR=str(self.root),
            HOSTNAME=self.unit,
            EXPERIMENT=self.experiment,
            MQTT_TOPIC_PREFIX=self.prefix,
            REACTORKIT_SPEEDUP=str(self.speedup),
            REACTORKIT_CLOCK_ORIGIN=repr(self.origin),
            REDIS_URL=f"redis://127.0.0.1:6379/{TEST_REDIS_DB}",
            HARDWARE="simulated",
            PYTHONUNBUFFERED="1",
        )
        env.update(self.extra)
        env.update(overrides)
        return env

    def apply(self, monkeypatch: Any = None) -> None:
        """Put this unit's variables into ``os.environ`` of the test process.

        Args:
            monkeypatch: pytest's ``monkeypatch`` fixture: each variable is set through it, so the test's end puts
                the environment back as it was. Without it they stay in ``os.environ`` for every later test of the
                process (the caller restores them).
        """
        values = {k: v for k, v in self.env().items() if k not in ("PYTHONUNBUFFERED",)}
        if monkeypatch is None:
            os.environ.update(values)
            return
        for key, value in values.items():
            monkeypatch.setenv(key, value)

    def topic(self, *parts: str) -> str:
        """``{prefix}pioreactor/{unit}/{experiment}/{parts…}``."""
        return "/".join((f"{self.prefix}pioreactor", self.unit, self.experiment, *parts))

    def write_config(self, text: str, name: str = "config.ini") -> Path:
        path = self.root / name
        path.write_text(text)
        return path


class MQTTRecorder:
    """Records every message under a prefix and waits for the ones a test expects.

    Args:
        prefix: Topic prefix to subscribe under (``{prefix}pioreactor/#``).
    """

    def __init__(self, prefix: str, host: str = "127.0.0.1", port: int = 1883) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.prefix = prefix
        self.messages: list[tuple[str, bytes, bool, float]] = []
        self._cond = threading.Condition()
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=f"rec-{uuid.uuid4().hex[:8]}")
        ready = threading.Event()

        def on_connect(c: Any, *_: Any) -> None:
            # its acknowledgements (PUBREC, PUBCOMP, PUBACK) go out at once, on every connection: with Nagle's
            # algorithm on, a PUBREC written while the previous message's PUBCOMP is unacknowledged waits for the
            # broker's delayed ACK (~40 ms on Linux), and paho hands a QoS 2 message (a job's $state) over only
            # at the PUBREL that answers it: a job's `ready` was seen 40 ms late in about half of the starts
            # (benchmarks/job_start.py)
            sock = c.socket()
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            c.subscribe(f"{prefix}pioreactor/#", qos=2)

        def on_subscribe(*_: Any) -> None:
            ready.set()

        def on_message(c: Any, u: Any, m: Any) -> None:
            with self._cond:
                self.messages.append((m.topic, m.payload, bool(m.retain), time.monotonic()))
                self._cond.notify_all()

        self.client.on_connect = on_connect
        self.client.on_subscribe = on_subscribe
        self.client.on_message = on_message
        self.client.connect(host, port)
        self.client.loop_start()
        if not ready.wait(5):
            raise ConnectionError("MQTT recorder could not subscribe")

    def publish(self, topic: str, payload: str | bytes, qos: int = 1, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=qos, retain=retain).wait_for_publish(5)

    def wait_for(self, topic: str, predicate: Callable[[bytes], bool] = lambda p: True, timeout: float = 60.0,
                 since: float = 0.0) -> bytes:
        """The first payload on ``topic`` (received after monotonic time ``since``) satisfying ``predicate``.

        ``timeout`` only guards against a hang (a busy machine may take long; returning is immediate once it
        arrives), so keep it generous.

        Raises:
            TimeoutError: none arrived within ``timeout`` seconds (lists the topics seen).
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for t, payload, _, at in self.messages:
                    if t == topic and at >= since and predicate(payload):
                        return payload
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = sorted({t for t, *_ in self.messages})[-20:]
                    raise TimeoutError(f"nothing on {topic} within {timeout} s; topics seen: {seen}")
                self._cond.wait(left)

    def values(self, topic: str) -> list[bytes]:
        with self._cond:
            return [p for t, p, *_ in self.messages if t == topic]

    def json_values(self, topic: str) -> list[Any]:
        return [json.loads(p) for p in self.values(topic) if p]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def pio_command(*args: str) -> list[str]:
    """``pio …`` run with this interpreter (works in any virtualenv)."""
    return [sys.executable, "-m", "reactorkit.core.cli.main", *args]


def stop_process(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
    """Signal ``proc`` and wait; SIGKILL if it does not exit within ``timeout`` s. Returns the exit code."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    return proc.returncode


# ---------------------------------------------------------------- pytest fixtures
try:
    import pytest
except ImportError:  # the kit's helpers work without pytest
    pytest = None  # type: ignore[assignment]

MARKERS = {
    "integration": "needs a real mosquitto/Redis and spawns job processes",
}

if pytest is not None:

    def pytest_configure(config: Any) -> None:
        """Register the kit's markers, so a plugin's suite runs with ``--strict-markers``."""
        for name, meaning in MARKERS.items():
            config.addinivalue_line("markers", f"{name}: {meaning}")

    @pytest.fixture
    def unit_env(tmp_path: Path) -> UnitEnv:
        """A fresh simulated unit: its own folder, names, MQTT prefix and Redis DB.

        The folder's name is short: the job launcher's socket lies in it, and a Unix socket's path may not exceed
        107 bytes (pytest-xdist workers put ``tmp_path`` one level deeper)."""
        root = tmp_path / "dot"
        root.mkdir()
        return UnitEnv(root=root)

    @pytest.fixture
    def mqtt_recorder(unit_env: UnitEnv) -> Iterator[MQTTRecorder]:
        recorder = MQTTRecorder(unit_env.prefix)
        yield recorder
        recorder.close()

    @pytest.fixture
    def spawn_job(unit_env: UnitEnv) -> Iterator[Callable[..., subprocess.Popen]]:
        """``spawn_job("my_job", "--my-option", "400", env=None)`` → Popen; all are stopped at teardown."""
        procs: list[subprocess.Popen] = []

        def spawn(job: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
            log = open(unit_env.root / f"{job}.{len(procs)}.log", "wb")
            proc = subprocess.Popen(pio_command("run", job, *args), env=env or unit_env.env(), stdout=log,
                                    stderr=subprocess.STDOUT)
            procs.append(proc)
            return proc

        yield spawn
        for proc in procs:
            stop_process(proc)

    from reactorkit.core.fault_drills import private_broker, private_redis  # noqa: E402,F401  (fixtures)


# ------------------------------------------------------- a cluster on this machine
from reactorkit.core.cluster import free_port  # noqa: E402  (re-exported for tests)


@dataclass
class LocalUnit:
    """One unit of a :class:`LocalCluster`: its ``$DOT_PIOREACTOR``, port and processes."""

    name: str
    root: Path
    port: int
    env: dict[str, str]
    procs: list[subprocess.Popen] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class LocalCluster:
    """A leader and workers on this machine, each with its own ``$DOT_PIOREACTOR``, port,
    gunicorn (``pio serve``) and rq worker (``pio worker``); one MQTT prefix, one Redis DB
    (queues kept apart by a queue prefix of their own), one simulated clock.

    Args:
        base: Folder for the units' state folders and logs.
        workers: Worker names (the leader is ``leader``, not a worker unless listed).
        speedup: Simulated seconds per wall second for the jobs.
        extra_addresses: More ``[cluster.addresses]`` entries (e.g. a unit that is down).
        prefix: MQTT topic prefix (default: a new one), e.g. ``unit_env.prefix`` so that
            the ``mqtt_recorder`` fixture sees the cluster's messages.
        api_workers: gunicorn worker processes of each unit's API (``pio serve --workers``; 1 by default,
            ``pio serve``'s own default is 2).

    Use as a context manager (``with LocalCluster(tmp_path, ["worker1"]) as cluster:``);
    :meth:`stop` ends every process and job it started.

    Authentication is on, as on a real cluster: :meth:`start` gives the units a cluster token and
    an ``admin`` token (``token``); ``headers`` carries it, ``client()`` is an ``httpx.Client`` that
    sends it, and ``token_for(scope)`` makes a token of a smaller scope.
    """

    def __init__(self, base: Path, workers: tuple[str, ...] | list[str] = ("worker1",), *, leader: str = "leader",
                 speedup: float = 1.0, extra_addresses: dict[str, str] | None = None, prefix: str | None = None,
                 api_workers: int = 1) -> None:
        self.base = Path(base)
        self.api_workers = int(api_workers)
        self.leader_name = leader
        self.worker_names = list(workers)
        self.prefix = prefix or f"t{uuid.uuid4().hex[:10]}/"
        self.queue_prefix = f"q{uuid.uuid4().hex[:8]}-"
        self.speedup = speedup
        self.origin = time.time()
        self.extra_addresses = dict(extra_addresses or {})
        self.token = ""
        names = [leader] + [w for w in self.worker_names if w != leader]
        self.units: dict[str, LocalUnit] = {}
        for name in names:
            root = self.base / name
            root.mkdir(parents=True, exist_ok=True)
            self.units[name] = LocalUnit(name=name, root=root, port=free_port(), env={})
        for unit in self.units.values():
            unit.env = self._env(unit)

    @property
    def leader(self) -> LocalUnit:
        return self.units[self.leader_name]

    @property
    def workers(self) -> list[LocalUnit]:
        return [self.units[name] for name in self.worker_names if name != self.leader_name]

    @property
    def nodes(self) -> list[LocalUnit]:
        """The leader, then the workers."""
        return list(self.units.values())

    def config_text(self) -> str:
        addresses = {n: f"127.0.0.1:{u.port}" for n, u in self.units.items()}
        addresses.update(self.extra_addresses)
        lines = ["[cluster.topology]", f"leader_hostname = {self.leader_name}", "leader_address = 127.0.0.1", "",
                 "[cluster.addresses]", *(f"{n} = {a}" for n, a in addresses.items()), ""]
        return "\n".join(lines)

    def _env(self, unit: LocalUnit) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("EXPERIMENT", "GLOBAL_CONFIG", "LOCAL_CONFIG")}
        env.update(
            DOT_PIOREACTOR=str(unit.root), HOSTNAME=unit.name, MQTT_TOPIC_PREFIX=self.prefix,
            REDIS_URL=f"redis://127.0.0.1:6379/{TEST_REDIS_DB}", REACTORKIT_QUEUE_PREFIX=self.queue_prefix,
            REACTORKIT_SPEEDUP=str(self.speedup), REACTORKIT_CLOCK_ORIGIN=repr(self.origin), HARDWARE="simulated",
            PYTHONUNBUFFERED="1", REACTORKIT_API_AUTH="on",
        )
        return env

    def provision_tokens(self) -> str:
        """Give every unit the cluster token and the leader's list; returns the ``admin`` token."""
        from reactorkit.core.auth.provision import provision

        self.token = provision(self.leader.root, [u.root for u in self.workers], admin_file=self.base / "admin_token")
        return self.token

    @property
    def headers(self) -> dict[str, str]:
        """``Authorization: Bearer <admin token>``."""
        return {"Authorization": f"Bearer {self.token}"}

    def client(self, unit: str | None = None, **kwargs: Any) -> Any:
        """An ``httpx.Client`` on ``unit`` (default the leader) that sends the admin token."""
        import httpx

        return httpx.Client(base_url=self.units[unit or self.leader_name].url, headers=self.headers, **kwargs)

    def token_for(self, scope: str, name: str | None = None) -> str:
        """A new token of ``scope`` (``read``, ``control`` or ``admin``), known to every unit."""
        from reactorkit.core.auth.tokens import TokenStore

        token, _ = TokenStore(self.leader.root).create(name or f"test-{scope}", scope)
        rows = TokenStore(self.leader.root).rows()
        for unit in self.workers:
            TokenStore(unit.root).replace(rows)
        return token

    def start(self, timeout: float = 60.0) -> "LocalCluster":
        """Write each unit's config.ini, start its API and task worker, wait for ``/unit_api/health``."""
        try:
            return self._start(timeout)
        except BaseException:
            self.stop()
            raise

    def _start(self, timeout: float) -> "LocalCluster":
        from reactorkit.core.cluster import wait_until_answering

        self.provision_tokens()
        for unit in self.units.values():
            (unit.root / "config.ini").write_text(self.config_text())
            unit.procs.append(self._serve(unit))
            log = open(unit.root / "worker.log", "wb")
            unit.procs.append(subprocess.Popen(pio_command("worker"), env=unit.env, stdout=log, stderr=subprocess.STDOUT))
        deadline = time.monotonic() + timeout
        for unit in self.units.values():
            exited = lambda procs=unit.procs: any(p.poll() is not None for p in procs)  # noqa: E731
            if not wait_until_answering(unit.url, deadline, exited):
                raise RuntimeError(f"{unit.name} did not start; see {unit.root}/serve.log and worker.log")
        return self

    def _serve(self, unit: LocalUnit) -> subprocess.Popen:
        log = open(unit.root / "serve.log", "ab")
        return subprocess.Popen(pio_command("serve", "--port", str(unit.port), "--workers", str(self.api_workers)),
                                env=unit.env, stdout=log, stderr=subprocess.STDOUT)

    def restart_api(self, unit: str | None = None, timeout: float = 60.0) -> None:
        """Stop ``unit``'s API (default the leader's) and start it again; returns once it answers.

        Raises:
            RuntimeError: it did not answer within ``timeout`` seconds.
        """
        from reactorkit.core.cluster import wait_until_answering

        node = self.units[unit or self.leader_name]
        stop_process(node.procs[0])
        node.procs[0] = self._serve(node)
        if not wait_until_answering(node.url, time.monotonic() + timeout, lambda: node.procs[0].poll() is not None):
            raise RuntimeError(f"{node.name}'s API did not start again; see {node.root}/serve.log")

    def leader_db(self) -> Any:
        """The leader's ``LeaderDB`` (opened in this process)."""
        from reactorkit.core.config import DEFAULTS, Config
        from reactorkit.core.leader_db import LeaderDB

        config = Config()
        config.read_string(DEFAULTS)
        config.read_string(self.config_text())
        return LeaderDB(self.leader.root / "storage" / "pioreactor.sqlite", config=config)

    def add_workers(self, *names: str, experiment: str | None = None) -> None:
        """Put ``names`` (default: every worker) in the inventory, and assign them to ``experiment``
        (created if needed)."""
        db = self.leader_db()
        try:
            if experiment is not None and not db.experiment_exists(experiment):
                db.execute("INSERT INTO experiments (experiment, created_at) VALUES (?, ?)",
                           (experiment, time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())))
            for name in names or self.worker_names:
                db.add_worker(name)
                if experiment is not None:
                    db.assign(name, experiment)
        finally:
            db.close()

    def wait_task(self, accepted: dict[str, Any], timeout: float = 40.0, unit: str | None = None) -> dict[str, Any]:
        """Poll ``accepted["result_url_path"]`` on ``unit`` (default the leader) until it is done; the final body."""
        import httpx

        base = self.units[unit or self.leader_name].url
        deadline = time.monotonic() + timeout
        while True:
            body = httpx.get(base + accepted["result_url_path"], headers=self.headers, timeout=5).json()
            if body.get("status") in ("succeeded", "partial", "failed"):
                return body
            if time.monotonic() > deadline:
                raise TimeoutError(f"task {accepted['task_id']} still {body.get('status')} after {timeout} s")
            time.sleep(0.1)

    def stop(self) -> None:
        """Stop every job of every unit, then the APIs and task workers."""
        from reactorkit.core.job_registry import JobRegistry
        from reactorkit.core.jobs_control import stop_jobs

        for unit in self.units.values():
            path = unit.root / "storage" / "local_intermittent_pioreactor_metadata.sqlite"
            if path.exists():
                registry = JobRegistry(path)
                for row in registry.running():
                    stop_jobs(job_id=row.job_id, registry=registry)
                registry.close()
        for unit in self.units.values():
            for proc in unit.procs:
                stop_process(proc)

    def __enter__(self) -> "LocalCluster":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def processes_under(root: Path) -> list[int]:
    """Pids of live processes whose ``$DOT_PIOREACTOR`` lies under ``root`` (to check nothing was left behind)."""
    from reactorkit.core.localcluster.commands import processes_under as under

    return under(root)
