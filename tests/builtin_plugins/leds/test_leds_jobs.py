"""led_intensity and led_automation as real processes on the simulated vessel."""

import json
import time

import pytest

from reactorkit.core.testing import stop_process

pytestmark = pytest.mark.integration


def change_events(mqtt_recorder, unit_env):
    return mqtt_recorder.json_values(f"{unit_env.prefix}pioreactor/{unit_env.unit}/{unit_env.experiment}/led_change_events")


def wait_until(predicate, timeout=30.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return None


def test_led_intensity_sets_channels_and_publishes_state_and_one_event_per_change(
        unit_env, mqtt_recorder, spawn_job, ground_truth):
    assert spawn_job("led_intensity", "--A", "50", "--B", "20").wait(30) == 0
    assert ground_truth()["leds"] == {"A": 50.0, "B": 20.0, "C": 0.0, "D": 0.0}
    state = mqtt_recorder.wait_for(unit_env.topic("leds", "intensity"))
    assert json.loads(state) == {"A": 50.0, "B": 20.0, "C": 0.0, "D": 0.0}
    assert wait_until(lambda: len(change_events(mqtt_recorder, unit_env)) == 2, timeout=30)
    assert {(e["channel"], e["intensity"], e["source_of_event"]) for e in change_events(mqtt_recorder, unit_env)} == {
        ("A", 50.0, "CLI"), ("B", 20.0, "CLI")}

    second = time.monotonic()
    assert spawn_job("led_intensity", "--A", "50", "--C", "10", "--source-of-event", "UI").wait(30) == 0
    assert ground_truth()["leds"] == {"A": 50.0, "B": 20.0, "C": 10.0, "D": 0.0}
    assert wait_until(lambda: len(change_events(mqtt_recorder, unit_env)) == 3, timeout=30)
    time.sleep(0.2)
    assert [(e["channel"], e["source_of_event"]) for e in change_events(mqtt_recorder, unit_env)][2:] == [("C", "UI")]
    assert json.loads(mqtt_recorder.wait_for(unit_env.topic("leds", "intensity"), since=second))["C"] == 10.0


@pytest.mark.parametrize("args", [["--E", "5"], ["--A", "150"], ["--B", "dim"], []])
def test_led_intensity_refuses_bad_channels_and_intensities(unit_env, spawn_job, ground_truth, args):
    assert spawn_job("led_intensity", *args).wait(30) == 2
    assert ground_truth()["leds"] == {"A": 0.0, "B": 0.0, "C": 0.0, "D": 0.0}


def test_light_dark_cycle_switches_at_the_right_simulated_times(unit_env, mqtt_recorder, spawn_job, ground_truth):
    unit_env.speedup = 200  # a simulated minute (the tolerance below) is 0.3 s of wall time
    light_min, dark_min = 15.0, 7.5
    proc = spawn_job("led_automation", "--automation-name", "light_dark_cycle", "--light-intensity", "40",
                     "--light-duration-hours", "0.25", "--dark-duration-hours", "0.125")
    mqtt_recorder.wait_for(unit_env.topic("led_automation", "$state"), lambda p: p == b"ready", timeout=20)
    assert mqtt_recorder.wait_for(unit_env.topic("led_automation", "light_duration_minutes")) == b"15.0"

    def d_events():
        return [e for e in change_events(mqtt_recorder, unit_env) if e["channel"] == "D"]

    # it starts lit; mid-light and mid-dark the vessel's LEDs are as expected
    assert wait_until(lambda: d_events(), timeout=10)
    start = d_events()[0]
    assert start["intensity"] == 40.0 and start["source_of_event"] == "led_automation:light_dark_cycle"
    from reactorkit.core.clock import parse_iso

    t_start = parse_iso(start["timestamp"])
    wait_until(lambda: ground_truth()["t"] > t_start + light_min * 30, timeout=20)
    assert ground_truth()["leds"]["C"] == ground_truth()["leds"]["D"] == 40.0
    wait_until(lambda: ground_truth()["t"] > t_start + (light_min + dark_min / 2) * 60, timeout=20)
    assert ground_truth()["leds"]["C"] == ground_truth()["leds"]["D"] == 0.0

    # boundaries: dark after 15 min, light again after 22.5 min, dark after 37.5 min (±1 simulated minute)
    assert wait_until(lambda: len(d_events()) >= 4, timeout=30)
    events = d_events()[:4]
    assert [e["intensity"] for e in events] == [40.0, 0.0, 40.0, 0.0]
    offsets = [(parse_iso(e["timestamp"]) - t_start) / 60 for e in events]
    for offset, expected in zip(offsets, [0.0, light_min, light_min + dark_min, 2 * light_min + dark_min]):
        assert abs(offset - expected) <= 1.0, offsets
    latest = mqtt_recorder.json_values(unit_env.topic("led_automation", "latest_event"))[-1]
    assert latest["event_name"] == "ChangedLedIntensity"

    # lit again at the next boundary, then stopping turns the touched LEDs off
    wait_until(lambda: ground_truth()["leds"]["D"] == 40.0, timeout=20)
    assert ground_truth()["leds"]["D"] == 40.0
    stopping = time.monotonic()
    assert stop_process(proc) == 0
    assert ground_truth()["leds"]["C"] == ground_truth()["leds"]["D"] == 0.0
    assert ground_truth()["leds"]["A"] == 0.0  # untouched channels are left alone
    # the state published while stopping reaches this recorder through the broker, maybe after the exit
    intensity = unit_env.topic("leds", "intensity")
    mqtt_recorder.wait_for(intensity, lambda p: json.loads(p)["D"] == 0.0, since=stopping, timeout=10)
    assert json.loads(mqtt_recorder.values(intensity)[-1])["D"] == 0.0


def test_light_dark_cycle_refuses_bad_parameters(unit_env, spawn_job):
    job = ("led_automation", "--automation-name", "light_dark_cycle")
    assert spawn_job(*job, "--light-intensity", "140").wait(30) == 2
    assert spawn_job(*job, "--light-duration-minutes", "60", "--light-duration-hours", "2").wait(30) == 2
    assert spawn_job(*job, "--light-duration-minutes", "0", "--dark-duration-minutes", "0").wait(30) == 2


def test_light_intensity_change_applies_during_the_light_phase(unit_env, mqtt_recorder, spawn_job, ground_truth):
    unit_env.speedup = 10
    spawn_job("led_automation", "--automation-name", "light_dark_cycle", "--light-intensity", "40")
    mqtt_recorder.wait_for(unit_env.topic("led_automation", "$state"), lambda p: p == b"ready", timeout=20)
    mqtt_recorder.wait_for(unit_env.topic("led_automation", "light_active"), lambda p: p == b"True")
    mqtt_recorder.publish(unit_env.topic("led_automation", "light_intensity", "set"), "70")
    mqtt_recorder.wait_for(unit_env.topic("led_automation", "light_intensity"), lambda p: p == b"70.0")
    wait_until(lambda: ground_truth()["leds"]["D"] == 70.0, timeout=30)
    assert ground_truth()["leds"] == {"A": 0.0, "B": 0.0, "C": 70.0, "D": 70.0}
    mqtt_recorder.publish(unit_env.topic("led_automation", "light_intensity", "set"), "lots")
    mqtt_recorder.publish(unit_env.topic("led_automation", "state", "set"), "sleeping")  # as $state/set
    mqtt_recorder.publish(unit_env.topic("led_automation", "$state", "set"), "sleeping")
    mqtt_recorder.wait_for(unit_env.topic("led_automation", "$state"), lambda p: p == b"sleeping")
    assert ground_truth()["leds"]["D"] == 0.0
    since = time.monotonic()
    mqtt_recorder.publish(unit_env.topic("led_automation", "$state", "set"), "ready")
    mqtt_recorder.wait_for(unit_env.topic("led_automation", "$state"), lambda p: p == b"ready", since=since)
    wait_until(lambda: ground_truth()["leds"]["D"] == 70.0, timeout=30)
    assert ground_truth()["leds"]["D"] == 70.0


def test_silent_leaves_the_leds_alone(unit_env, mqtt_recorder, spawn_job, ground_truth):
    assert spawn_job("led_intensity", "--B", "30").wait(30) == 0
    proc = spawn_job("led_automation", "--automation-name", "silent")
    mqtt_recorder.wait_for(unit_env.topic("led_automation", "$state"), lambda p: p == b"ready", timeout=20)
    assert mqtt_recorder.wait_for(unit_env.topic("led_automation", "automation_name")) == b"silent"
    assert stop_process(proc) == 0
    assert ground_truth()["leds"]["B"] == 30.0
