"""A test kit for reactorkit and for plugin authors.

Real parts: jobs run as real processes (``pio run …``) against the real MQTT
broker and the simulated vessel. Each test gets its own ``$DOT_PIOREACTOR``,
its own MQTT topic prefix (so tests never see each other's messages) and its
own Redis database number.

Use the pytest fixtures by adding ``pytest_plugins = ["reactorkit.core.testing"]``
to a ``conftest.py``:

* ``unit_env`` — a :class:`UnitEnv` (environment for one simulated unit);
* ``mqtt_recorder`` — a :class:`MQTTRecorder` on that unit's prefix;
* ``spawn_job`` — start ``pio run <job> …`` as a subprocess (killed at teardown).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

TEST_REDIS_DB = 9


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

    def apply(self) -> None:
        """Put this unit's variables into ``os.environ`` of the test process (use with monkeypatch)."""
        os.environ.update({k: v for k, v in self.env().items() if k not in ("PYTHONUNBUFFERED",)})

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

    def wait_for(self, topic: str, predicate: Callable[[bytes], bool] = lambda p: True, timeout: float = 10.0,
                 since: float = 0.0) -> bytes:
        """The first payload on ``topic`` (received after monotonic time ``since``) satisfying ``predicate``.

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

if pytest is not None:

    @pytest.fixture
    def unit_env(tmp_path: Path) -> UnitEnv:
        """A fresh simulated unit: its own folder, names, MQTT prefix and Redis DB."""
        root = tmp_path / "dot_pioreactor"
        root.mkdir()
        return UnitEnv(root=root)

    @pytest.fixture
    def mqtt_recorder(unit_env: UnitEnv) -> Iterator[MQTTRecorder]:
        recorder = MQTTRecorder(unit_env.prefix)
        yield recorder
        recorder.close()

    @pytest.fixture
    def spawn_job(unit_env: UnitEnv) -> Iterator[Callable[..., subprocess.Popen]]:
        """``spawn_job("stirring", "--target-rpm", "400", env=None)`` → Popen; all are stopped at teardown."""
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
