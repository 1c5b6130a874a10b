"""A real job process against the real broker: states, /set, registry, signals, last will."""

import json
import signal
import sqlite3
import time

import pytest

from reactorkit.core.testing import stop_process

pytestmark = pytest.mark.integration


def registry_rows(unit_env, job_name="stirring"):
    path = unit_env.root / "storage" / "local_intermittent_pioreactor_metadata.sqlite"
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT job_id FROM pio_job_metadata WHERE job_name = ?", (job_name,)).fetchall()


def registry_setting(unit_env, setting):
    path = unit_env.root / "storage" / "local_intermittent_pioreactor_metadata.sqlite"
    with sqlite3.connect(path) as conn:
        row = conn.execute("SELECT value FROM pio_job_published_settings WHERE setting = ?", (setting,)).fetchone()
    return row[0] if row else None


def test_job_reaches_ready_and_publishes_its_settings(unit_env, mqtt_recorder, spawn_job):
    spawn_job("stirring", "--target-rpm", "400")
    mqtt_recorder.wait_for(unit_env.topic("stirring", "$state"), lambda p: p == b"ready")
    assert mqtt_recorder.wait_for(unit_env.topic("stirring", "target_rpm")) == b"400.0"
    assert len(registry_rows(unit_env)) == 1


def test_set_updates_the_setting_and_the_registry(unit_env, mqtt_recorder, spawn_job):
    spawn_job("stirring", "--target-rpm", "400")
    mqtt_recorder.wait_for(unit_env.topic("stirring", "$state"), lambda p: p == b"ready")
    mqtt_recorder.publish(unit_env.topic("stirring", "target_rpm", "set"), "450")
    mqtt_recorder.wait_for(unit_env.topic("stirring", "target_rpm"), lambda p: p == b"450.0")
    deadline = time.monotonic() + 5
    while registry_setting(unit_env, "target_rpm") != 450.0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert registry_setting(unit_env, "target_rpm") == 450.0


def test_a_malformed_set_is_logged_and_the_job_keeps_running(unit_env, mqtt_recorder, spawn_job):
    proc = spawn_job("stirring", "--target-rpm", "400")
    mqtt_recorder.wait_for(unit_env.topic("stirring", "$state"), lambda p: p == b"ready")
    mqtt_recorder.publish(unit_env.topic("stirring", "target_rpm", "set"), "fast please")
    error = mqtt_recorder.wait_for(unit_env.topic("logs", "app", "error"))
    assert "target_rpm" in json.loads(error)["message"]
    mqtt_recorder.publish(unit_env.topic("stirring", "target_rpm", "set"), "300")
    mqtt_recorder.wait_for(unit_env.topic("stirring", "target_rpm"), lambda p: p == b"300.0")
    assert proc.poll() is None


def test_a_retained_set_is_ignored(unit_env, mqtt_recorder, spawn_job):
    topic = unit_env.topic("stirring", "target_rpm", "set")
    mqtt_recorder.publish(topic, "999", retain=True)
    try:
        spawn_job("stirring", "--target-rpm", "400")
        mqtt_recorder.wait_for(unit_env.topic("stirring", "$state"), lambda p: p == b"ready")
        time.sleep(0.5)
        assert b"999.0" not in mqtt_recorder.values(unit_env.topic("stirring", "target_rpm"))
    finally:
        mqtt_recorder.publish(topic, b"", retain=True)


def test_sigterm_disconnects_cleanly_and_removes_the_registry_row(unit_env, mqtt_recorder, spawn_job):
    proc = spawn_job("stirring", "--target-rpm", "400")
    mqtt_recorder.wait_for(unit_env.topic("stirring", "$state"), lambda p: p == b"ready")
    assert stop_process(proc, signal.SIGTERM) == 0
    mqtt_recorder.wait_for(unit_env.topic("stirring", "$state"), lambda p: p == b"disconnected")
    assert registry_rows(unit_env) == []
    vessel = json.loads((unit_env.root / "storage" / f"simulated_vessel_{unit_env.unit}.json").read_text())
    assert vessel["pwm"]["1"] == 0.0  # motor left off


def test_sigint_stops_it_too(unit_env, mqtt_recorder, spawn_job):
    proc = spawn_job("stirring")
    mqtt_recorder.wait_for(unit_env.topic("stirring", "$state"), lambda p: p == b"ready")
    assert stop_process(proc, signal.SIGINT) == 0
    mqtt_recorder.wait_for(unit_env.topic("stirring", "$state"), lambda p: p == b"disconnected")


def test_sigkill_makes_the_broker_publish_lost(unit_env, mqtt_recorder, spawn_job):
    proc = spawn_job("stirring")
    mqtt_recorder.wait_for(unit_env.topic("stirring", "$state"), lambda p: p == b"ready")
    proc.send_signal(signal.SIGKILL)
    proc.wait(5)
    mqtt_recorder.wait_for(unit_env.topic("stirring", "$state"), lambda p: p == b"lost", timeout=15)


def test_a_second_copy_of_a_running_job_is_refused(unit_env, mqtt_recorder, spawn_job):
    spawn_job("stirring")
    mqtt_recorder.wait_for(unit_env.topic("stirring", "$state"), lambda p: p == b"ready")
    second = spawn_job("stirring")
    assert second.wait(15) == 1


def test_a_crashed_job_does_not_block_a_restart(unit_env, mqtt_recorder, spawn_job):
    first = spawn_job("stirring")
    mqtt_recorder.wait_for(unit_env.topic("stirring", "$state"), lambda p: p == b"ready")
    first.send_signal(signal.SIGKILL)
    first.wait(5)
    since = time.monotonic()
    spawn_job("stirring")
    mqtt_recorder.wait_for(unit_env.topic("stirring", "$state"), lambda p: p == b"ready", since=since)
    assert len(registry_rows(unit_env)) == 1



def test_state_commands_are_applied_in_the_order_they_came(unit_env, monkeypatch):
    """``$state/set`` sleeping, sleeping, ready ends ready whatever order the threads the job starts for them run in.

    The job's threads are held when started, then run last first (as a busy machine may schedule them). A thread per
    command let the last ``ready`` run before a ``sleeping`` received before it: the job ended asleep (seen as the
    light_dark_cycle's LEDs left off after ``$state/set`` ready).
    """
    import threading
    import types

    from reactorkit.core import job as job_module
    from reactorkit.core.config import load_config

    class Probe(job_module.BackgroundJob):
        job_name = "state_probe"

        def __init__(self, *args, **kwargs):
            self.transitions = []
            super().__init__(*args, **kwargs)

        def on_ready_to_sleeping(self):
            self.transitions.append("sleeping")

        def on_sleeping_to_ready(self):
            self.transitions.append("ready")

    unit_env.apply(monkeypatch)
    job = Probe(unit_env.unit, unit_env.experiment, config=load_config())
    held = []

    class HeldThread(threading.Thread):
        def start(self):
            held.append(self)

    held_threading = types.SimpleNamespace(**{name: getattr(threading, name) for name in dir(threading)
                                              if not name.startswith("__")})
    held_threading.Thread = HeldThread
    try:
        monkeypatch.setattr(job_module, "threading", held_threading)
        for command in ("sleeping", "sleeping", "ready"):
            job._on_message(None, None, types.SimpleNamespace(topic=f"{job._topic_base}/$state/set",
                                                                payload=command.encode(), retain=False,
                                                                properties=None))
        monkeypatch.setattr(job_module, "threading", threading)
        for thread in reversed(held):
            threading.Thread.start(thread)
            thread.join(10)
        assert job.transitions == ["sleeping", "ready"]
        assert job.state == "ready"
    finally:
        job.clean_up()
