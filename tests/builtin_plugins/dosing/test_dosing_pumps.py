"""Pump actions as real processes (``pio run add_media …``) against mosquitto and the simulated vessel."""

import json
import subprocess
import time

import pytest

from reactorkit.core.testing import pio_command, stop_process

pytestmark = pytest.mark.integration


def pio(unit, *args, timeout=60):
    return subprocess.run(pio_command("run", *args), env=unit.env.env(), capture_output=True, text=True,
                          timeout=timeout)


def events(recorder, unit):
    return recorder.json_values(unit.env.topic("dosing_events"))


def wait_for_events(recorder, unit, n, timeout=60):
    """The dosing events, once ``n`` of them arrived and the last pump action's ``disconnected`` (published after them)."""
    deadline = time.monotonic() + timeout
    while len(events(recorder, unit)) < n and time.monotonic() < deadline:
        time.sleep(0.02)
    evs = events(recorder, unit)
    for action in {e["event"] for e in evs}:
        recorder.wait_for(unit.env.topic(action, "$state"), lambda p: p == b"disconnected", timeout=timeout)
    return events(recorder, unit)


def test_add_media_by_volume_doses_the_vessel_and_books_it(dosing_unit, mqtt_recorder):
    unit = dosing_unit(speedup=20)
    result = pio(unit, "add_media", "--ml", "1.0")
    assert result.returncode == 0, result.stderr
    evs = wait_for_events(mqtt_recorder, unit, 1)
    assert evs and all(e["event"] == "add_media" and e["source_of_event"] == "CLI" for e in evs)
    assert set(evs[0]) == {"volume_change", "event", "source_of_event", "timestamp"}
    assert sum(e["volume_change"] for e in evs) == pytest.approx(1.0, rel=0.02)
    truth, books = unit.truth(), unit.bookkeeping()
    assert truth["volume_ml"] == pytest.approx(15.0, rel=0.02)
    assert books["current_volume_ml"] == pytest.approx(truth["volume_ml"], rel=0.02)
    assert books["cumulative_media_added_ml"] == pytest.approx(truth["cumulative_media_ml"], rel=0.02)
    assert truth["pwm"]["2"] == 0.0  # pump left off
    states = [p for p in mqtt_recorder.values(unit.env.topic("add_media", "$state"))]
    assert states[:2] == [b"init", b"ready"] and states[-1] == b"disconnected"
    topic = unit.env.topic("bioreactor", "current_volume_ml")
    mqtt_recorder.wait_for(topic, lambda p: float(p) > 14.9)
    assert float(mqtt_recorder.values(topic)[-1]) == pytest.approx(books["current_volume_ml"], abs=1e-5)


def test_alt_media_then_waste_matches_the_true_fraction_and_the_efflux_level(dosing_unit, mqtt_recorder):
    unit = dosing_unit(speedup=20)
    assert pio(unit, "add_alt_media", "--ml", "1.5").returncode == 0
    assert pio(unit, "add_media", "--ml", "0.5").returncode == 0
    assert pio(unit, "remove_waste", "--ml", "3").returncode == 0
    truth, books = unit.truth(), unit.bookkeeping()
    assert truth["volume_ml"] == pytest.approx(14.0, rel=0.01)  # back to the efflux tube
    assert books["current_volume_ml"] == pytest.approx(truth["volume_ml"], rel=0.02)
    assert truth["alt_media_fraction"] == pytest.approx(1.5 / 16, rel=0.03)
    assert books["alt_media_fraction"] == pytest.approx(truth["alt_media_fraction"], rel=0.02)
    assert books["cumulative_alt_media_added_ml"] == pytest.approx(truth["cumulative_alt_media_ml"], rel=0.02)
    waste = [e for e in wait_for_events(mqtt_recorder, unit, 3) if e["event"] == "remove_waste"]
    assert waste and all(e["volume_change"] > 0 for e in waste)  # waste volumes are positive


def test_a_volume_without_calibration_fails_naming_the_calibration_to_create(dosing_unit, mqtt_recorder):
    unit = dosing_unit(speedup=20, calibrate=False)
    result = pio(unit, "add_media", "--ml", "1.0")
    assert result.returncode == 1
    assert "media_pump" in result.stderr and "calibration" in result.stderr
    assert result.stderr.startswith("Error: ") and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert unit.truth()["cumulative_media_ml"] == 0.0
    # a duration still works, at 100 % duty cycle and the default 0.0911 mL/s
    assert pio(unit, "add_media", "--duration", "2").returncode == 0
    evs = wait_for_events(mqtt_recorder, unit, 1)
    assert sum(e["volume_change"] for e in evs) == pytest.approx(2 * 0.0911, rel=0.03)
    assert unit.truth()["cumulative_media_ml"] == pytest.approx(2 * 0.5, rel=0.03)


def test_exactly_one_of_ml_duration_continuously(dosing_unit):
    unit = dosing_unit(speedup=20)
    result = pio(unit, "add_media", "--ml", "1", "--duration", "2")
    assert result.returncode == 1
    assert "exactly one" in result.stderr
    assert pio(unit, "remove_waste").returncode == 1


def test_a_pump_missing_from_pwm_fails_clearly(dosing_unit):
    unit = dosing_unit(speedup=20)
    result = pio(unit, "add_alt_media", "--ml", "1", "--config-override", "PWM", "3", "unused")
    assert result.returncode == 1
    assert "[PWM]" in result.stderr and "alt_media" in result.stderr


def test_an_addition_that_would_overflow_is_refused(dosing_unit, mqtt_recorder):
    unit = dosing_unit("[bioreactor]\nmax_volume_to_warn = 16\nmax_volume_to_stop = 16.5\n", speedup=20)
    assert pio(unit, "add_media", "--ml", "2.0").returncode == 0
    result = pio(unit, "add_media", "--ml", "1.0")
    assert result.returncode == 1
    assert "max_volume_to_stop" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr  # one Error: line, not the log line again
    error = mqtt_recorder.wait_for(unit.env.topic("logs", "app", "error"), timeout=30)
    assert "max_volume_to_stop" in json.loads(error)["message"]  # the UI sees why
    assert unit.truth()["volume_ml"] == pytest.approx(16.0, rel=0.02)
    warning = mqtt_recorder.wait_for(unit.env.topic("logs", "app", "warning"),
                                     lambda p: b"max_volume_to_warn" in p, timeout=30)
    assert json.loads(warning)["task"] == "add_media"


def test_a_continuous_pump_stops_on_state_set_and_books_what_it_moved(dosing_unit, mqtt_recorder, spawn_job):
    unit = dosing_unit(speedup=10)
    proc = spawn_job("remove_waste", "--continuously")
    state = unit.env.topic("remove_waste", "$state")
    mqtt_recorder.wait_for(state, lambda p: p == b"ready")
    assert pio(unit, "add_media", "--ml", "1.0").returncode == 0  # while waste runs, volume goes back to 14
    mqtt_recorder.publish(state + "/set", "disconnected")
    assert proc.wait(15) == 0
    mqtt_recorder.wait_for(state, lambda p: p == b"disconnected")
    truth, books = unit.truth(), unit.bookkeeping()
    assert truth["pwm"]["4"] == 0.0
    assert truth["volume_ml"] == pytest.approx(14.0, abs=0.05)
    assert books["current_volume_ml"] == pytest.approx(14.0, abs=0.05)
    waste = [e["volume_change"] for e in events(mqtt_recorder, unit) if e["event"] == "remove_waste"]
    assert sum(waste) > 1.0  # it ran the whole time, chunk by chunk


def test_pio_kill_stops_a_continuous_pump(dosing_unit, mqtt_recorder, spawn_job):
    unit = dosing_unit(speedup=10)
    proc = spawn_job("add_media", "--continuously")
    mqtt_recorder.wait_for(unit.env.topic("add_media", "$state"), lambda p: p == b"ready")
    deadline = time.monotonic() + 30  # until the vessel has received some media (not a fixed wait: a busy machine)
    while unit.truth()["cumulative_media_ml"] <= 0.1 and time.monotonic() < deadline:
        time.sleep(0.05)
    subprocess.run(pio_command("kill", "--job-name", "add_media"), env=unit.env.env(), check=True,
                   capture_output=True, timeout=30)
    assert proc.wait(15) == 0
    truth, books = unit.truth(), unit.bookkeeping()
    assert truth["pwm"]["2"] == 0.0
    assert truth["cumulative_media_ml"] > 0.1
    assert books["cumulative_media_added_ml"] == pytest.approx(truth["cumulative_media_ml"], rel=0.02)


def test_a_continuous_inflow_stops_at_the_maximum_volume(dosing_unit, mqtt_recorder, spawn_job):
    unit = dosing_unit("[bioreactor]\nmax_volume_to_warn = 14.5\nmax_volume_to_stop = 15\n", speedup=20)
    proc = spawn_job("add_media", "--continuously")
    try:
        assert proc.wait(30) == 0
    finally:
        stop_process(proc)
    truth = unit.truth()
    assert truth["volume_ml"] == pytest.approx(15.0, abs=0.1)
    assert unit.bookkeeping()["current_volume_ml"] == pytest.approx(truth["volume_ml"], rel=0.02)
    error = mqtt_recorder.wait_for(unit.env.topic("logs", "app", "error"), timeout=30)
    assert "max_volume_to_stop" in json.loads(error)["message"]


def test_a_dose_is_stamped_when_the_pump_stopped_not_when_its_process_woke(dosing_unit):
    # the vessel's own timer stops a timed run; a process that wakes late (a busy machine under a speed-up) must
    # still date the dose when it ended: the growth-rate filter looks for the dilution just before the timestamp
    from reactorkit.builtin_plugins.dosing.pumps import pump_action
    from reactorkit.core.clock import Clock, parse_iso
    from reactorkit.core.config import load_config
    from reactorkit.core.hardware.simulated import SimulatedHardware

    unit = dosing_unit(speedup=100)
    clock = Clock(unit.env.speedup, unit.env.origin)
    vessel = SimulatedHardware(load_config(), unit.env.unit, clock=clock)
    started = []

    class LateWaker:
        def set_pwm_for(self, channel, duty_cycle, seconds):
            started.append(vessel.set_pwm_for(channel, duty_cycle, seconds))
            return started[-1]

        def set_pwm(self, channel, duty_cycle):
            if duty_cycle == 0.0 and started:
                time.sleep(0.6)  # 60 simulated seconds late
            return vessel.set_pwm(channel, duty_cycle)

        def __getattr__(self, name):
            return getattr(vessel, name)

    published = []
    moved = pump_action("add_media", ml=1.0, clock=clock, hardware=LateWaker(), source_of_event="test",
                        on_event=lambda event, books: published.append(event))
    assert moved == pytest.approx(1.0, rel=0.02)
    assert unit.truth()["cumulative_media_ml"] == pytest.approx(1.0, rel=0.02)
    run_s = 1.0 / unit.ml_per_second
    assert parse_iso(published[-1]["timestamp"]) == pytest.approx(started[0] + run_s, abs=0.01)
