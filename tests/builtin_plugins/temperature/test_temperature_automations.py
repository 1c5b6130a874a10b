"""Temperature automations as real processes on the simulated vessel (heater gain 50 ℃ at 100 %, τ = 600 s)."""

import base64
import json
import time

import pytest

from reactorkit.core.testing import stop_process

pytestmark = pytest.mark.integration

JOB = "temperature_automation"


def wait_until(predicate, timeout=30.0, interval=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return None


def start(unit_env, mqtt_recorder, spawn_job, *args):
    proc = spawn_job(JOB, *args)
    mqtt_recorder.wait_for(unit_env.topic(JOB, "$state"), lambda p: p == b"ready", timeout=20)
    return proc


def test_thermostat_holds_30_degrees_after_settling(unit_env, mqtt_recorder, spawn_job, ground_truth):
    # 150×: a stall of the job on a busy machine (a second or two) is a few simulated minutes, well inside the
    # vessel's τ = 600 s and the 200 s cycle, so the thermostat still settles on time
    unit_env.speedup = 150
    # the default 200 s cycle, with a shorter sample burst: at a speed-up each of the 21 default samples
    # costs simulated seconds of file I/O, which would stretch the burst beyond the cycle
    unit_env.write_config("[temperature_automation.config]\nsamples_per_reading = 5\nseconds_between_samples = 2\n")
    start(unit_env, mqtt_recorder, spawn_job, "--automation-name", "thermostat", "--target-temperature", "30")
    t0 = ground_truth()["t"]  # the vessel starts at ambient, 22 ℃
    wait_until(lambda: ground_truth()["t"] > t0 + 0.6 * 3600, timeout=120)  # settling: ~25 simulated minutes
    samples = []
    # from 0.6 h to 1.2 h at least, and on until 20 samples are taken (a busy machine takes fewer per wall second)
    while not samples or samples[-1]["t"] < t0 + 1.2 * 3600 or len(samples) <= 20:
        samples.append(ground_truth())
        time.sleep(0.1)
    assert samples[-1]["t"] - samples[0]["t"] >= 0.55 * 3600  # the samples cover the half hour after settling
    held = [s["temperature_c"] for s in samples]
    assert all(abs(t - 30.0) <= 0.5 for t in held), (min(held), max(held))
    reading = mqtt_recorder.json_values(unit_env.topic(JOB, "temperature"))[-1]
    assert set(reading) == {"temperature", "timestamp"}
    assert abs(reading["temperature"] - 30.0) <= 0.5 and round(reading["temperature"], 2) == reading["temperature"]
    event = mqtt_recorder.json_values(unit_env.topic(JOB, "latest_event"))[-1]
    assert event["event_name"] == "UpdatedHeaterDC"
    assert set(event["data"]) == {"current_dc", "delta_dc", "target_temperature", "latest_temperature"}
    assert 0 < event["data"]["current_dc"] < 100


def test_a_malformed_set_is_logged_and_the_thermostat_keeps_running(unit_env, mqtt_recorder, spawn_job):
    unit_env.speedup = 20
    proc = start(unit_env, mqtt_recorder, spawn_job, "--automation-name", "thermostat", "--target-temperature", "30")
    target = unit_env.topic(JOB, "target_temperature")
    mqtt_recorder.wait_for(target, lambda p: p == b"30.0")
    since = time.monotonic()
    mqtt_recorder.publish(unit_env.topic(JOB, "target_temperature", "set"), "very hot")
    error = json.loads(mqtt_recorder.wait_for(unit_env.topic("logs", "app", "error"), since=since))
    assert "target_temperature" in error["message"]
    mqtt_recorder.publish(unit_env.topic(JOB, "target_temperature", "set"), "-5")
    mqtt_recorder.publish(unit_env.topic(JOB, "target_temperature", "set"), b"\xff\xfe")
    mqtt_recorder.publish(unit_env.topic(JOB, "$state", "set"), "banana")
    mqtt_recorder.publish(unit_env.topic(JOB, "target_temperature", "set"), "35")
    mqtt_recorder.wait_for(target, lambda p: p == b"35.0")
    assert b"-5.0" not in mqtt_recorder.values(target)
    assert proc.poll() is None
    def settings_of(payload):
        return json.loads(base64.b64decode(json.loads(payload)["settings"]))

    record = mqtt_recorder.wait_for(unit_env.topic(JOB, f"{JOB}_settings"),
                                    lambda p: settings_of(p).get("target_temperature") == 35.0)
    assert json.loads(record)["automation_name"] == "thermostat"


def test_target_above_the_model_limit_is_capped(unit_env, mqtt_recorder, spawn_job):
    unit_env.speedup = 20
    start(unit_env, mqtt_recorder, spawn_job, "--automation-name", "thermostat", "--target-temperature", "95")
    assert mqtt_recorder.wait_for(unit_env.topic(JOB, "target_temperature"), lambda p: p != b"") == b"78.0"


def test_only_record_temperature_never_heats(unit_env, mqtt_recorder, spawn_job, ground_truth):
    unit_env.speedup = 400
    start(unit_env, mqtt_recorder, spawn_job, "--automation-name", "only_record_temperature")
    topic = unit_env.topic(JOB, "temperature")
    wait_until(lambda: len(mqtt_recorder.json_values(topic)) >= 3, timeout=20)
    readings = mqtt_recorder.json_values(topic)
    assert len(readings) >= 3
    truth = ground_truth()
    assert truth["pwm"].get("5", 0.0) == 0.0
    assert all(abs(r["temperature"] - 22.0) < 0.3 for r in readings)  # ambient


def test_safety_cut_off_forces_the_heater_off_and_keeps_it_off(unit_env, mqtt_recorder, spawn_job, ground_truth):
    unit_env.speedup = 100
    unit_env.write_config(
        "[temperature_automation.config]\n"
        "max_temp_to_reduce_heating = 26\nmax_temp_to_disable_heating = 27\n"
        "reading_interval_seconds = 100\nsamples_per_reading = 3\n"
    )
    start(unit_env, mqtt_recorder, spawn_job, "--automation-name", "thermostat", "--target-temperature", "25")
    heater = unit_env.topic(JOB, "heater_duty_cycle")
    mqtt_recorder.wait_for(heater, lambda p: p not in (b"", b"0.0"))
    # the vial suddenly overheats (hot media, a stuck heater driver …)
    from reactorkit.core.clock import Clock
    from reactorkit.core.config import load_config
    from reactorkit.core.hardware.simulated import SimulatedHardware

    hardware = SimulatedHardware(load_config(), unit_env.unit, clock=Clock(unit_env.speedup, unit_env.origin))
    with hardware.vessel() as vessel:
        vessel.s.temperature_c = 29.0
    error = json.loads(mqtt_recorder.wait_for(unit_env.topic("logs", "app", "error"), timeout=20))
    assert "max_temp_to_disable_heating" in error["message"]
    assert ground_truth()["pwm"]["5"] == 0.0
    # it cools below the 25 ℃ target, where the thermostat would heat again — but heating stays disabled
    assert wait_until(lambda: ground_truth()["temperature_c"] < 24.5, timeout=30)
    since = time.monotonic()
    mqtt_recorder.wait_for(unit_env.topic(JOB, "latest_event"), since=since, timeout=20)
    assert ground_truth()["pwm"]["5"] == 0.0
    assert mqtt_recorder.json_values(unit_env.topic(JOB, "latest_event"))[-1]["event_name"] == "ErrorOccurred"
    assert mqtt_recorder.values(heater)[-1] == b"0.0"


def test_stopping_leaves_the_heater_off(unit_env, mqtt_recorder, spawn_job, ground_truth):
    unit_env.speedup = 100
    proc = start(unit_env, mqtt_recorder, spawn_job, "--automation-name", "thermostat", "--target-temperature", "35")
    mqtt_recorder.wait_for(unit_env.topic(JOB, "heater_duty_cycle"), lambda p: p not in (b"", b"0.0"))
    assert ground_truth()["pwm"]["5"] > 0
    assert stop_process(proc) == 0
    assert ground_truth()["pwm"]["5"] == 0.0
    mqtt_recorder.wait_for(unit_env.topic(JOB, "$state"), lambda p: p == b"disconnected")


def test_unknown_automation_and_missing_target_are_refused(unit_env, spawn_job):
    assert spawn_job(JOB, "--automation-name", "sauna").wait(30) == 2
    assert spawn_job(JOB, "--automation-name", "thermostat").wait(30) == 2
    assert spawn_job(JOB, "--automation-name", "thermostat", "--target-temperature", "warm").wait(30) == 2


def test_heating_stops_when_temperature_readings_stop_and_resumes_with_them(unit_env, mqtt_recorder, spawn_job,
                                                                           ground_truth):
    unit_env.speedup = 100
    unit_env.write_config("[temperature_automation.config]\nreading_interval_seconds = 60\nsamples_per_reading = 3\n"
                          "seconds_between_samples = 2\nmax_temperature_age_seconds = 150\n"
                          "safety_check_interval_seconds = 20\n")
    start(unit_env, mqtt_recorder, spawn_job, "--automation-name", "thermostat", "--target-temperature", "40")
    heater = lambda: ground_truth()["pwm"].get("5", 0.0)  # noqa: E731 ([PWM] 5 = heating)
    assert wait_until(lambda: heater() > 0, timeout=30), "the thermostat never heated"
    faults = unit_env.root / "storage" / f"simulated_faults_{unit_env.unit}.json"
    faults.write_text(json.dumps({"temperature_sensor": True}))  # the sensor stops answering
    assert wait_until(lambda: heater() == 0.0, timeout=30), "the heater stayed on without readings"
    error = mqtt_recorder.wait_for(unit_env.topic("logs", "app", "error"), lambda p: b"Heating stopped" in p,
                                   timeout=10)
    assert b"temperature sensor" in error or b"max_temperature_age_seconds" in error
    t_off = ground_truth()["t"]
    wait_until(lambda: ground_truth()["t"] > t_off + 180, timeout=30)
    assert heater() == 0.0  # three reading intervals later, still off
    faults.unlink()
    mqtt_recorder.wait_for(unit_env.topic("logs", "app", "info"), lambda p: b"heating resumes" in p, timeout=30)
    assert wait_until(lambda: heater() > 0, timeout=30), "heating did not resume with the readings"
