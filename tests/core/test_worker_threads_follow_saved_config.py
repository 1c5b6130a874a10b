"""The task worker's own threads (the outbox keeper, the PWM watchdog) use the config files as they are at each
round, not as the worker read them when it started: a broker saved through the API is the one the keeper sends
the unit's orphaned messages to. Unit tests: the broker client, the outbox and the sweep are faked; the files are
real and replaced as a save does (temp file + rename)."""

from __future__ import annotations

import queue
import threading

import pytest

from reactorkit.core import outbox_keeper
from reactorkit.core.config import forget_config_files
from reactorkit.core.hardware import leases
from reactorkit.core.paths import atomic_write

WAIT_S = 60  # the longest wait for the thread's next round (a limit on waiting for the event)
SHARED = "[cluster.topology]\nleader_hostname = leader\nleader_address = 127.0.0.1\n"


@pytest.fixture
def unit_files(tmp_path, monkeypatch):
    """This process reads a unit folder of the test's own (its config forgotten before and after)."""
    monkeypatch.setenv("DOT_PIOREACTOR", str(tmp_path))
    for key in ("GLOBAL_CONFIG", "LOCAL_CONFIG"):
        monkeypatch.delenv(key, raising=False)
    forget_config_files()
    yield tmp_path
    forget_config_files()


class FakeClient:
    def __init__(self, port: int) -> None:
        self.port = port
        self.closed = False

    def open_outbox(self) -> None:
        pass

    def outbox_waiting(self) -> int:
        return 1  # still sending: the keeper keeps its connection

    def disconnect(self) -> None:
        self.closed = True

    def loop_stop(self) -> None:
        pass


def test_the_outbox_keeper_connects_to_the_broker_saved_since_it_started(unit_files, monkeypatch):
    atomic_write(unit_files / "config.ini", SHARED + "[mqtt]\nbroker_port = 1111\n")
    connected: queue.Queue = queue.Queue()

    def create_client(client_id=None, config=None):
        client = FakeClient(config.getint("mqtt", "broker_port"))
        connected.put(client)
        return client

    monkeypatch.setattr(outbox_keeper, "orphans", lambda config=None: 1)
    monkeypatch.setattr("reactorkit.core.mqtt.create_client", create_client)
    stop = threading.Event()
    thread = threading.Thread(target=outbox_keeper.keep, args=(stop,), kwargs={"interval_s": 0.01}, daemon=True)
    thread.start()
    try:
        first = connected.get(timeout=WAIT_S)
        assert first.port == 1111
        atomic_write(unit_files / "unit_config.ini", "[mqtt]\nbroker_port = 2222\n")  # as a save through the API
        second = connected.get(timeout=WAIT_S)
        assert second.port == 2222
        assert first.closed  # the connection with the old settings was closed first
    finally:
        stop.set()
        thread.join(WAIT_S)
    assert not thread.is_alive()


def test_the_pwm_watchdog_sweeps_with_the_config_saved_since_it_started(unit_files, monkeypatch):
    atomic_write(unit_files / "config.ini", SHARED + "[PWM]\n1 = stirring\n")
    swept: queue.Queue = queue.Queue()
    go = threading.Semaphore(0)  # each sweep waits for the test: rounds happen only when it lets them

    def sweep(config):
        swept.put(config.get("PWM", "1"))
        go.acquire()

    monkeypatch.setattr(leases, "sweep", sweep)
    stop = threading.Event()
    thread = threading.Thread(target=leases.watch, args=(stop,), kwargs={"interval_s": 0.01}, daemon=True)
    thread.start()
    try:
        assert swept.get(timeout=WAIT_S) == "stirring"
        atomic_write(unit_files / "unit_config.ini", "[PWM]\n1 = media\n")  # as a save through the API
        go.release()  # the next round starts after the save
        assert swept.get(timeout=WAIT_S) == "media"
    finally:
        stop.set()
        go.release()
        thread.join(WAIT_S)
    assert not thread.is_alive()


def test_a_typo_saved_in_the_watchdogs_interval_does_not_stop_it(unit_files, monkeypatch):
    atomic_write(unit_files / "config.ini", SHARED + "[safety]\nwatchdog_interval_s = two\n")
    swept: queue.Queue = queue.Queue()
    monkeypatch.setattr(leases, "sweep", lambda config: swept.put(True))
    stop = threading.Event()
    thread = threading.Thread(target=leases.watch, args=(stop,), daemon=True)
    thread.start()
    try:
        assert swept.get(timeout=WAIT_S) and swept.get(timeout=WAIT_S)  # swept again (after the default 2 s)
    finally:
        stop.set()
        thread.join(WAIT_S)
    assert not thread.is_alive()
