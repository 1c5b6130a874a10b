"""Stirring as a real process on the simulated vessel, checked against the model's true RPM."""

import time

import pytest

pytestmark = pytest.mark.integration


def wait_until(predicate, timeout=30.0, interval=0.1):
    """Poll ``predicate`` until it returns something truthy; returns it (None after ``timeout`` s)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return None


def true_rpms(ground_truth, n=6, every=0.3):
    out = []
    for _ in range(n):
        out.append(ground_truth()["rpm"])
        time.sleep(every)
    return out


def start(unit_env, mqtt_recorder, spawn_job, *args):
    proc = spawn_job("stirring", *args)
    mqtt_recorder.wait_for(unit_env.topic("stirring", "$state"), lambda p: p == b"ready", timeout=20)
    return proc


def test_stirring_settles_within_5_percent_of_target(unit_env, mqtt_recorder, spawn_job, ground_truth):
    unit_env.speedup = 50
    start(unit_env, mqtt_recorder, spawn_job, "--target-rpm", "500")
    topic = unit_env.topic("stirring", "measured_rpm")
    started = ground_truth()["t"]
    wait_until(lambda: ground_truth()["t"] > started + 6 * 23, timeout=30)  # start-up and six updates
    rpms = true_rpms(ground_truth)
    assert all(abs(rpm - 500) <= 25 for rpm in rpms), rpms
    assert abs(mqtt_recorder.json_values(topic)[-1]["measured_rpm"] - 500) <= 25


def test_stirring_follows_a_new_target_rpm(unit_env, mqtt_recorder, spawn_job, ground_truth):
    unit_env.speedup = 100
    start(unit_env, mqtt_recorder, spawn_job, "--target-rpm", "500")
    mqtt_recorder.publish(unit_env.topic("stirring", "target_rpm", "set"), "800")
    mqtt_recorder.wait_for(unit_env.topic("stirring", "target_rpm"), lambda p: p == b"800.0")
    # the loop moves the duty cycle at most 7.5 % per 23 s: give it ~25 updates
    wait_until(lambda: abs(ground_truth()["rpm"] - 800) <= 20, timeout=60)
    rpms = true_rpms(ground_truth)
    assert all(abs(rpm - 800) <= 40 for rpm in rpms), rpms


def test_sleeping_stops_the_motor_and_waking_restarts_it(unit_env, mqtt_recorder, spawn_job, ground_truth):
    unit_env.speedup = 50
    start(unit_env, mqtt_recorder, spawn_job, "--target-rpm", "400")
    state = unit_env.topic("stirring", "$state")
    mqtt_recorder.publish(unit_env.topic("stirring", "$state", "set"), "sleeping")
    mqtt_recorder.wait_for(state, lambda p: p == b"sleeping")
    assert ground_truth()["pwm"]["1"] == 0.0
    wait_until(lambda: ground_truth()["rpm"] < 1, timeout=30)
    assert ground_truth()["rpm"] < 1
    since = time.monotonic()
    mqtt_recorder.publish(unit_env.topic("stirring", "$state", "set"), "ready")
    mqtt_recorder.wait_for(state, lambda p: p == b"ready", since=since)
    wait_until(lambda: abs(ground_truth()["rpm"] - 400) <= 20, timeout=30)
    assert abs(ground_truth()["rpm"] - 400) <= 40


def test_disconnecting_leaves_the_motor_off(unit_env, mqtt_recorder, spawn_job, ground_truth):
    from reactorkit.core.testing import stop_process

    unit_env.speedup = 50
    proc = start(unit_env, mqtt_recorder, spawn_job, "--target-rpm", "400")
    mqtt_recorder.wait_for(unit_env.topic("stirring", "measured_rpm"), lambda p: p != b"")
    assert ground_truth()["pwm"]["1"] > 0
    assert stop_process(proc) == 0
    assert ground_truth()["pwm"]["1"] == 0.0


def test_dodging_stops_the_stirrer_around_each_od_reading(unit_env, mqtt_recorder, spawn_job, ground_truth):
    unit_env.speedup = 10
    pre, post, interval = 5.0, 3.0, 30.0  # windows [read − 5 s, read + 1 s + 3 s)
    unit_env.write_config(f"[stirring.config]\npre_delay_duration = {pre}\npost_delay_duration = {post}\n")
    first_read = ground_truth()["t"] + 20.0
    od_topics = [unit_env.topic("od_reading", "interval"), unit_env.topic("od_reading", "first_od_obs_time")]
    mqtt_recorder.publish(od_topics[0], str(interval), retain=True)
    mqtt_recorder.publish(od_topics[1], repr(first_read), retain=True)
    try:
        start(unit_env, mqtt_recorder, spawn_job, "--target-rpm", "500", "--enable-dodging-od", "true")
        mqtt_recorder.wait_for(unit_env.topic("stirring", "currently_dodging_od"), lambda p: p == b"True")
        assert mqtt_recorder.wait_for(unit_env.topic("stirring", "target_rpm_during_od_reading")) == b"0.0"
        samples = []
        t_end = first_read + 2 * interval
        while ground_truth()["t"] < t_end:
            truth = ground_truth()
            samples.append(((truth["t"] - first_read) % interval, truth["pwm"]["1"]))
            time.sleep(0.03)
        inside = [dc for phase, dc in samples if phase > interval - pre + 1.5 or phase < 1.0 + post - 1.5]
        outside = [dc for phase, dc in samples if 1.0 + post + 2.5 < phase < interval - pre - 2.5]
        assert inside and outside
        assert all(dc == 0.0 for dc in inside), inside
        assert all(dc > 0.0 for dc in outside), outside

        # switching dodging off restores continuous stirring
        since = time.monotonic()
        mqtt_recorder.publish(unit_env.topic("stirring", "enable_dodging_od", "set"), "false")
        mqtt_recorder.wait_for(unit_env.topic("stirring", "currently_dodging_od"), lambda p: p == b"False", since=since)
        assert mqtt_recorder.wait_for(unit_env.topic("stirring", "target_rpm_during_od_reading"), since=since) == b""
        t_end = ground_truth()["t"] + interval / 2
        after = []
        while ground_truth()["t"] < t_end:
            after.append((ground_truth()["t"] - first_read, ground_truth()["pwm"]["1"]))
            time.sleep(0.05)
        assert all(dc > 0.0 for _, dc in after), after
    finally:
        for topic in od_topics:
            mqtt_recorder.publish(topic, b"", retain=True)


def test_dodging_follows_a_real_od_reading_job(unit_env, mqtt_recorder, spawn_job):
    unit_env.speedup = 20
    spawn_job("od_reading", "--interval", "10")
    mqtt_recorder.wait_for(unit_env.topic("od_reading", "first_od_obs_time"), lambda p: p != b"", timeout=20)
    start(unit_env, mqtt_recorder, spawn_job, "--enable-dodging-od", "true")
    mqtt_recorder.wait_for(unit_env.topic("stirring", "currently_dodging_od"), lambda p: p == b"True", timeout=20)


def test_dodging_reads_od_reading_settings_from_the_job_registry(unit_env, mqtt_recorder, spawn_job, ground_truth):
    """Without retained MQTT settings (e.g. a broker restart), the unit's job registry is used."""
    import os

    from reactorkit.core.config import load_config
    from reactorkit.core.job_registry import JobRegistry

    unit_env.speedup = 20
    registry = JobRegistry(config=load_config())
    job_id = registry.register(unit=unit_env.unit, experiment=unit_env.experiment, job_name="od_reading",
                               pid=os.getpid(), started_at="2025-01-31T12:00:00.000000Z")
    registry.set_setting(job_id, "interval", 30.0)
    registry.set_setting(job_id, "first_od_obs_time", ground_truth()["t"] + 5.0)
    try:
        start(unit_env, mqtt_recorder, spawn_job, "--enable-dodging-od", "true")
        mqtt_recorder.wait_for(unit_env.topic("stirring", "currently_dodging_od"), lambda p: p == b"True", timeout=20)
    finally:
        registry.remove(job_id)
        registry.close()
