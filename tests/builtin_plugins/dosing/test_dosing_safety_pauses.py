"""Dosing automations pause on stale OD, an unreachable broker and uncertain books, resume by themselves without a
burst, and complete a dilution interrupted by a crash — real processes, the simulated vessel."""

import json
import signal
import time
from datetime import datetime, timezone

import pytest

from reactorkit.core.fault_drills import PrivateBroker

pytestmark = pytest.mark.integration


def wait_until(condition, timeout=60.0, every=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    return condition()


def add_media_events(recorder, unit):
    return [e for e in recorder.json_values(unit.env.topic("dosing_events")) if e["event"] == "add_media"]


def reading(od: float, at: float) -> str:
    stamp = datetime.fromtimestamp(at, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return json.dumps({"od_filtered": od, "timestamp": stamp})


def sim_now(unit) -> float:
    return unit.truth()["t"]


def test_a_turbidostat_pauses_on_stale_readings_and_resumes_with_one_dose(dosing_unit, mqtt_recorder, spawn_job):
    unit = dosing_unit("[dosing_automation.config]\nmax_od_age_seconds = 120\npause_between_subdoses_seconds = 1\n",
                       speedup=60)
    spawn_job("dosing_automation", "--automation-name", "turbidostat", "--target-biomass", "1.0",
              "--exchange-volume-ml", "0.5", "--biomass-signal", "normalized_od")
    base = unit.env.topic("dosing_automation")
    signal_topic = unit.env.topic("growth_rate_calculating", "od_filtered")
    mqtt_recorder.wait_for(base + "/$state", lambda p: p == b"ready", timeout=30)
    mqtt_recorder.publish(signal_topic, reading(0.5, sim_now(unit)))  # below target: no dose, but fresh
    # no reading for more than 120 simulated seconds: paused, logged and published
    pause = mqtt_recorder.wait_for(base + "/safety_pause", lambda p: bool(p) and b"od_stale" in p, timeout=60)
    assert "max_od_age_seconds = 120" in json.loads(pause)["message"]
    mqtt_recorder.wait_for(unit.env.topic("logs", "app", "warning"), lambda p: b"Doses paused" in p, timeout=10)
    # a reading that is itself old (an outbox resending after an outage) neither ends the pause nor is dosed on
    mqtt_recorder.publish(signal_topic, reading(2.0, sim_now(unit) - 600))
    time.sleep(0.5)
    assert add_media_events(mqtt_recorder, unit) == []
    # fresh readings above target: the pause ends and one dilution follows, not one per missed reading
    for _ in range(5):
        mqtt_recorder.publish(signal_topic, reading(2.0, sim_now(unit)))
        time.sleep(0.05)
    mqtt_recorder.wait_for(base + "/safety_pause", lambda p: p == b"", timeout=20)
    mqtt_recorder.wait_for(unit.env.topic("logs", "app", "info"), lambda p: b"Doses resumed" in p, timeout=10)
    assert wait_until(lambda: add_media_events(mqtt_recorder, unit))
    time.sleep(0.3)  # 18 simulated seconds, inside the turbidostat's 30 s quiet period
    media = sum(e["volume_change"] for e in add_media_events(mqtt_recorder, unit))
    assert media == pytest.approx(0.5, rel=0.05)


def test_a_chemostat_pauses_while_the_broker_is_down_and_does_not_catch_up(dosing_unit, mqtt_recorder, spawn_job,
                                                                            tmp_path):
    try:
        broker = PrivateBroker(tmp_path / "broker").start()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    try:
        unit = dosing_unit(broker.config_ini() + "\n[dosing_automation.config]\npause_between_subdoses_seconds = 1\n",
                           speedup=60)
        proc = spawn_job("dosing_automation", "--automation-name", "chemostat", "--exchange-volume-ml", "0.5",
                         "--duration", "2")  # every 2 simulated minutes (2 wall seconds)
        log = unit.env.root / "logs" / "pioreactor.log"
        assert wait_until(lambda: unit.truth()["cumulative_media_ml"] > 0.4, timeout=60)
        broker.kill()
        assert wait_until(lambda: log.exists() and "Doses paused: the MQTT broker cannot be reached" in log.read_text(),
                          timeout=30)
        before = unit.truth()["cumulative_media_ml"]
        time.sleep(6)  # six simulated minutes: three doses would have been due
        assert unit.truth()["cumulative_media_ml"] == pytest.approx(before, abs=1e-6)  # nothing dosed while paused
        broker.start()
        assert wait_until(lambda: "Doses resumed" in log.read_text(), timeout=60)
        resumed_at = unit.truth()["t"]
        media_at_resume = unit.truth()["cumulative_media_ml"]
        assert wait_until(lambda: unit.truth()["t"] > resumed_at + 100, timeout=30)
        # in the 100 simulated seconds after the broker's return: at most the one regular dose, no catch-up
        assert unit.truth()["cumulative_media_ml"] - media_at_resume <= 0.5 + 0.05
        assert proc.poll() is None
    finally:
        broker.stop()


def test_a_dilution_interrupted_by_sigkill_is_completed_by_the_books_on_restart(dosing_unit, mqtt_recorder, spawn_job):
    unit = dosing_unit("[dosing_automation.config]\npause_between_subdoses_seconds = 600\n", speedup=60)
    args = ("dosing_automation", "--automation-name", "chemostat", "--exchange-volume-ml", "1.0", "--duration", "60")
    proc = spawn_job(*args)
    # the media went in, the automation waits 600 s before removing the waste: kill it there
    assert wait_until(lambda: unit.bookkeeping()["cumulative_media_added_ml"] >= 0.99, timeout=60)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert unit.bookkeeping()["current_volume_ml"] == pytest.approx(15.0, abs=0.02)  # half done
    assert unit.truth()["volume_ml"] == pytest.approx(15.0, abs=0.05)
    restarted = spawn_job(*args[:-2], "--duration", "600", "--skip-first-run", "1")  # no dose of its own soon
    warning = mqtt_recorder.wait_for(unit.env.topic("logs", "app", "warning"), lambda p: b"interrupted" in p,
                                     timeout=60)
    assert b"owes 1 mL of waste" in warning
    assert wait_until(lambda: unit.bookkeeping()["current_volume_ml"] <= 14.0 + 1e-6, timeout=60)
    assert wait_until(lambda: unit.truth()["pwm"].get("4", 0.0) == 0.0 and unit.truth()["volume_ml"] < 14.05)
    truth, books = unit.truth(), unit.bookkeeping()
    assert books["current_volume_ml"] == pytest.approx(truth["volume_ml"], abs=0.05)
    assert books["cumulative_media_added_ml"] == pytest.approx(truth["cumulative_media_ml"], rel=0.02)
    assert restarted.poll() is None
