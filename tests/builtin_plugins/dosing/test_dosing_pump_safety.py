"""Pump hard limits (per call, per hour) and pumps left on by processes that died — real processes, the simulated vessel."""

import signal
import subprocess
import time
import uuid

import pytest

from reactorkit.core.testing import pio_command, stop_process

pytestmark = pytest.mark.integration


def pio(unit, *args, timeout=60):
    return subprocess.run(pio_command("run", *args), env=unit.env.env(), capture_output=True, text=True,
                          timeout=timeout)


def waste_pumped(unit):
    """mL the simulated waste pump head moved (efflux or air)."""
    return unit.truth()["pumped_ml"].get("waste", 0.0)


def wait_for(predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    return predicate()


def test_a_pump_request_above_one_vial_is_refused_and_nothing_moves(dosing_unit):
    unit = dosing_unit(speedup=20)
    for args in (("remove_waste", "--ml", "1e9"), ("add_media", "--duration", "1e6"), ("remove_waste", "--ml", "20.5")):
        result = pio(unit, *args)
        assert result.returncode == 1, args
        assert "max_ml_per_call = 20 mL" in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr  # one Error: line
    assert waste_pumped(unit) == 0.0 and unit.truth()["cumulative_media_ml"] == 0.0
    assert unit.bookkeeping()["cumulative_waste_removed_ml"] == 0.0


def test_the_hourly_limit_counts_what_the_pump_moved_in_the_last_hour(dosing_unit):
    unit = dosing_unit("[pump_limits]\nwaste_max_ml_per_hour = 3\n", speedup=20)
    assert pio(unit, "remove_waste", "--ml", "2").returncode == 0
    refused = pio(unit, "remove_waste", "--ml", "2")
    assert refused.returncode == 1
    assert "waste_max_ml_per_hour = 3 mL" in refused.stderr and "last hour" in refused.stderr
    assert pio(unit, "remove_waste", "--ml", "0.5").returncode == 0  # what is left this hour is allowed
    assert waste_pumped(unit) == pytest.approx(2.5, rel=0.02)
    assert unit.bookkeeping()["cumulative_waste_removed_ml"] == pytest.approx(2.5, rel=0.02)


def test_a_continuous_pump_stops_by_itself_at_the_per_call_limit(dosing_unit, spawn_job):
    unit = dosing_unit("[pump_limits]\nmax_ml_per_call = 1.5\n", speedup=20)
    proc = spawn_job("remove_waste", "--continuously")
    try:
        assert proc.wait(60) == 0
    finally:
        stop_process(proc)
    truth, books = unit.truth(), unit.bookkeeping()
    assert truth["pwm"]["4"] == 0.0
    assert waste_pumped(unit) == pytest.approx(1.5, rel=0.03)
    assert books["cumulative_waste_removed_ml"] == pytest.approx(waste_pumped(unit), rel=0.02)


def test_a_refused_pump_request_over_the_api_fails_its_task_with_the_reason(dosing_unit, monkeypatch):
    from reactorkit.core.task_functions import TaskFailed, start_job

    unit = dosing_unit(speedup=20)
    with pytest.raises(TaskFailed) as refused:
        # the task waits for the process to refuse (a loaded machine may need more than the usual 1 s to start it)
        start_job("remove_waste", {"ml": 1e9}, env={"EXPERIMENT": unit.env.experiment}, alive_check_s=60)
    assert "max_ml_per_call" in refused.value.cause
    assert waste_pumped(unit) == 0.0


def _unit_api(unit):
    import falcon.testing

    from reactorkit.api.app import create_app
    from reactorkit.core.plugins import Registry

    return falcon.testing.TestClient(create_app(Registry.installed(), unit=unit.env.unit, leader=False))


@pytest.mark.parametrize("leftover_clock", [False, True], ids=["fresh-process", "clock-left-by-an-earlier-test"])
def test_the_unit_api_refuses_a_pump_request_above_the_limits_before_queueing_it(unit_env, dosing_unit,
                                                                                  leftover_clock):
    from reactorkit.core.clock import Clock, set_clock
    from reactorkit.core.tasks import get_queue

    if leftover_clock:  # what a test with speed-up 20 left in this process 400 s earlier: its 'now' is 2 h ahead
        set_clock(Clock(20.0, time.time() - 400))
    unit_env.extra["REACTORKIT_QUEUE_PREFIX"] = f"p{uuid.uuid4().hex[:8]}-"  # a queue of its own in the test database
    unit = dosing_unit("[pump_limits]\nwaste_max_ml_per_hour = 3\n", speedup=20)
    api = _unit_api(unit)
    per_call = api.simulate_post("/unit_api/jobs/run/job_name/remove_waste", json={"options": {"ml": 1e9}})
    assert per_call.status_code == 400, per_call.text
    assert "options" in per_call.json["cause"] and "max_ml_per_call = 20 mL" in per_call.json["cause"]
    assert pio(unit, "remove_waste", "--ml", "2").returncode == 0
    hourly = api.simulate_post("/unit_api/jobs/run/job_name/remove_waste", json={"options": {"ml": 2}})
    assert hourly.status_code == 400, hourly.text
    assert "waste_max_ml_per_hour = 3 mL" in hourly.json["cause"] and "last hour" in hourly.json["cause"]
    not_a_number = api.simulate_post("/unit_api/jobs/run/job_name/add_media", json={"options": {"ml": "lots"}})
    assert not_a_number.status_code == 400 and "options.ml" in not_a_number.json["cause"]
    assert waste_pumped(unit) == pytest.approx(2.0, rel=0.02)  # only the CLI's 2 mL moved
    assert get_queue(unit.env.unit).count == 0  # nothing refused was queued


def _kill_mid_run(unit, spawn_job, mqtt_recorder, left_on=True):
    """A continuous waste pump killed with SIGKILL while it runs; returns once it is dead."""
    proc = spawn_job("remove_waste", "--continuously")
    mqtt_recorder.wait_for(unit.env.topic("remove_waste", "$state"), lambda p: p == b"ready", timeout=30)
    assert wait_for(lambda: unit.bookkeeping()["cumulative_waste_removed_ml"] > 0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    if left_on:  # (a running watchdog may already have switched it off)
        assert unit.truth()["pwm"]["4"] > 0  # nothing in the dead process switched it off
    return proc


def test_the_next_pump_action_switches_off_a_pump_left_on_and_books_what_it_moved(dosing_unit, spawn_job,
                                                                                  mqtt_recorder):
    unit = dosing_unit(speedup=10)
    _kill_mid_run(unit, spawn_job, mqtt_recorder)
    assert pio(unit, "add_media", "--ml", "0.5").returncode == 0
    truth, books = unit.truth(), unit.bookkeeping()
    assert truth["pwm"]["4"] == 0.0
    assert books["cumulative_waste_removed_ml"] == pytest.approx(waste_pumped(unit), rel=0.02)
    assert books["current_volume_ml"] == pytest.approx(truth["volume_ml"], abs=0.05)
    topic = unit.env.topic("dosing_events")
    assert wait_for(lambda: sum(e["volume_change"] for e in mqtt_recorder.json_values(topic)
                                if e["event"] == "remove_waste") == pytest.approx(waste_pumped(unit), rel=0.02),
                    timeout=10)
    warning = mqtt_recorder.wait_for(unit.env.topic("logs", "app", "warning"), lambda p: b"left on" in p, timeout=10)
    assert b"remove_waste" in warning


def test_the_units_watchdog_switches_off_a_pump_whose_process_was_killed(dosing_unit, spawn_job, mqtt_recorder):
    unit = dosing_unit(speedup=10)
    unit.env.extra["REACTORKIT_QUEUE_PREFIX"] = f"w{uuid.uuid4().hex[:8]}-"
    log = open(unit.env.root / "worker.log", "wb")
    worker = subprocess.Popen(pio_command("worker"), env=unit.env.env(), stdout=log, stderr=subprocess.STDOUT)
    try:
        _kill_mid_run(unit, spawn_job, mqtt_recorder, left_on=False)
        assert wait_for(lambda: unit.truth()["pwm"]["4"] == 0.0, timeout=60), "the watchdog left the pump on"
        assert wait_for(lambda: abs(unit.bookkeeping()["cumulative_waste_removed_ml"] - waste_pumped(unit))
                        < 0.02 * waste_pumped(unit))
    finally:
        stop_process(worker)


def test_an_exchange_volume_above_the_bound_is_refused(dosing_unit, spawn_job):
    unit = dosing_unit(speedup=20)
    proc = spawn_job("dosing_automation", "--automation-name", "chemostat", "--exchange-volume-ml", "1e9",
                     "--duration", "1")
    assert proc.wait(60) != 0
    log = next(unit.env.root.glob("dosing_automation.*.log")).read_text()
    assert "max_exchange_volume_ml" in log
    assert unit.truth()["cumulative_media_ml"] == 0.0


