"""dosing_automation as a real process: safety, /set and pause/resume, start-up errors, plugin automations."""

import base64
import json
import subprocess
import time

import pytest

from reactorkit.core.clock import Clock, parse_iso

from reactorkit.core.testing import pio_command

pytestmark = pytest.mark.integration


def add_media_events(recorder, unit):
    return [e for e in recorder.json_values(unit.env.topic("dosing_events")) if e["event"] == "add_media"]


def wait_until(condition, timeout=30.0, every=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(every)
    return False


def log_messages(recorder, unit, level):
    return [json.loads(p)["message"] for p in recorder.values(unit.env.topic("logs", "app", level))]


def test_fed_batch_stops_before_overflowing_and_logs_an_error(dosing_unit, mqtt_recorder, spawn_job):
    unit = dosing_unit("[bioreactor]\nmax_volume_to_warn = 16\nmax_volume_to_stop = 17\n", speedup=200)
    proc = spawn_job("dosing_automation", "--automation-name", "fed_batch", "--dosing-volume-ml", "1.0",
                     "--duration", "1")
    state = unit.env.topic("dosing_automation", "$state")
    mqtt_recorder.wait_for(state, lambda p: p == b"sleeping", timeout=60)
    assert wait_until(lambda: any("max_volume_to_stop" in m for m in log_messages(mqtt_recorder, unit, "error")))
    assert wait_until(lambda: any("max_volume_to_warn" in m for m in log_messages(mqtt_recorder, unit, "warning")))
    doses = len(add_media_events(mqtt_recorder, unit))
    truth = unit.truth()
    assert truth["volume_ml"] == pytest.approx(16.0, rel=0.02)  # 14 + 2 × 1 mL; a third would reach 17
    assert truth["volume_ml"] < 17.0
    assert unit.bookkeeping()["current_volume_ml"] == pytest.approx(truth["volume_ml"], rel=0.02)
    latest = mqtt_recorder.wait_for(unit.env.topic("dosing_automation", "latest_event"),
                                    lambda p: p and json.loads(p)["event_name"] == "ErrorOccurred", timeout=30)
    assert "max_volume_to_stop" in json.loads(latest)["message"]
    time.sleep(0.5)  # 100 simulated seconds: asleep, nothing more is added
    assert len(add_media_events(mqtt_recorder, unit)) == doses
    assert proc.poll() is None


def test_an_over_volume_reported_by_the_bookkeeping_pauses_the_automation(dosing_unit, mqtt_recorder, spawn_job):
    unit = dosing_unit(speedup=50)
    spawn_job("dosing_automation", "--automation-name", "chemostat", "--exchange-volume-ml", "0.5", "--duration", "60",
              "--skip-first-run", "1")
    state = unit.env.topic("dosing_automation", "$state")
    mqtt_recorder.wait_for(state, lambda p: p == b"ready", timeout=20)
    mqtt_recorder.publish(unit.env.topic("bioreactor", "current_volume_ml"), "18.5", retain=True)
    try:
        mqtt_recorder.wait_for(state, lambda p: p == b"sleeping", timeout=10)
        assert wait_until(lambda: any("max_volume_to_stop" in m for m in log_messages(mqtt_recorder, unit, "error")),
                          timeout=30)
    finally:
        mqtt_recorder.publish(unit.env.topic("bioreactor", "current_volume_ml"), b"", retain=True)


def test_settings_change_while_running_and_sleeping_pauses_dosing(dosing_unit, mqtt_recorder, spawn_job):
    unit = dosing_unit(speedup=100)
    proc = spawn_job("dosing_automation", "--automation-name", "chemostat", "--exchange-volume-ml", "0.5",
                     "--duration", "1")
    base = unit.env.topic("dosing_automation")
    mqtt_recorder.wait_for(base + "/$state", lambda p: p == b"ready", timeout=20)
    assert wait_until(lambda: len(add_media_events(mqtt_recorder, unit)) >= 2)
    mqtt_recorder.publish(base + "/exchange_volume_ml/set", "0.25")
    mqtt_recorder.wait_for(base + "/exchange_volume_ml", lambda p: p == b"0.25")
    settings = mqtt_recorder.wait_for(
        base + "/dosing_automation_settings", timeout=30,
        predicate=lambda p: json.loads(base64.b64decode(json.loads(p)["settings"])).get("exchange_volume_ml") == 0.25)
    assert json.loads(settings)["automation_name"] == "chemostat"
    n = len(add_media_events(mqtt_recorder, unit))
    assert wait_until(lambda: len(add_media_events(mqtt_recorder, unit)) >= n + 2)
    later = add_media_events(mqtt_recorder, unit)[n + 1:]
    assert later and all(e["volume_change"] == pytest.approx(0.25, rel=0.05) for e in later)
    # a bad value is refused and the job keeps running
    mqtt_recorder.publish(base + "/exchange_volume_ml/set", "-3")
    assert wait_until(lambda: any("exchange_volume_ml" in m for m in log_messages(mqtt_recorder, unit, "error")))
    # pause: no dosing while sleeping; resume: dosing again
    mqtt_recorder.publish(base + "/$state/set", "sleeping")
    mqtt_recorder.wait_for(base + "/$state", lambda p: p == b"sleeping")
    asleep_at = Clock(unit.env.speedup, unit.env.origin).now()
    time.sleep(1.5)  # 150 simulated seconds, more than two periods

    # a dose under way when the pause came ends (and is reported) a little later, later still on a busy
    # machine: only a dose ending well after the pause (30 simulated s; the period is 60 s) was started asleep
    late = [e for e in add_media_events(mqtt_recorder, unit) if parse_iso(e["timestamp"]) > asleep_at + 30]
    assert late == []
    paused_at = len(add_media_events(mqtt_recorder, unit))
    mqtt_recorder.publish(base + "/$state/set", "ready")
    assert wait_until(lambda: len(add_media_events(mqtt_recorder, unit)) > paused_at)
    mqtt_recorder.publish(base + "/duration/set", "2")
    mqtt_recorder.wait_for(base + "/duration", lambda p: p == b"2.0")
    assert proc.poll() is None
    mqtt_recorder.publish(base + "/$state/set", "disconnected")
    assert proc.wait(20) == 0
    assert unit.truth()["pwm"].get("2", 0.0) == 0.0 and unit.truth()["pwm"].get("4", 0.0) == 0.0


def test_an_automation_needing_an_uncalibrated_pump_refuses_to_start(dosing_unit, mqtt_recorder):
    unit = dosing_unit(speedup=20, calibrate=False)
    result = subprocess.run(pio_command("run", "dosing_automation", "--automation-name", "chemostat",
                                        "--exchange-volume-ml", "0.5"),
                            env=unit.env.env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "media_pump" in result.stderr and "calibration" in result.stderr
    mqtt_recorder.wait_for(unit.env.topic("dosing_automation", "$state"), lambda p: p == b"disconnected")
    assert wait_until(lambda: any("media_pump" in m for m in log_messages(mqtt_recorder, unit, "error")), timeout=30)


def test_an_unknown_automation_or_bad_option_is_refused(dosing_unit):
    unit = dosing_unit(speedup=20)
    unknown = subprocess.run(pio_command("run", "dosing_automation", "--automation-name", "nope"),
                             env=unit.env.env(), capture_output=True, text=True, timeout=60)
    assert unknown.returncode == 2 and "turbidostat" in unknown.stderr
    bad = subprocess.run(pio_command("run", "dosing_automation", "--automation-name", "turbidostat",
                                     "--target-biomass", "high"),
                         env=unit.env.env(), capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "target-biomass" in bad.stderr


PLUGIN = '''
"""A third-party dosing automation: adds alt media every period."""
from reactorkit.core.descriptors import AutomationDescriptor, AutomationField
from reactorkit.core.hooks import hookimpl
from reactorkit.builtin_plugins.dosing.automation import DosingAutomationJob
from reactorkit.core.automation import AddAltMediaEvent

__plugin_name__ = "alt_pulse"


class AltPulse(DosingAutomationJob):
    automation_name = "alt_pulse"
    pumps = ("add_alt_media", "remove_waste")
    published_settings = {"pulse_ml": {"datatype": "float", "settable": True, "unit": "mL"}}

    def __init__(self, unit, experiment, *, pulse_ml, **kwargs):
        super().__init__(unit, experiment, **kwargs)
        self.pulse_ml = float(pulse_ml)

    def execute(self):
        moved = self.execute_io_action(alt_media_ml=self.pulse_ml, waste_ml=self.pulse_ml)
        return AddAltMediaEvent(message="pulse", data=moved)


@hookimpl
def register_automations():
    yield AutomationDescriptor(automation_type="dosing", automation_name="alt_pulse", display_name="Alt pulse",
                               fields=(AutomationField(key="pulse_ml", label="Pulse", unit="mL", default=0.5),),
                               automation_class=AltPulse)
'''


def test_a_plugin_automation_runs_in_the_same_host_job_and_books_alt_media(dosing_unit, mqtt_recorder, spawn_job):
    unit = dosing_unit(speedup=100)
    (unit.env.root / "plugins").mkdir()
    (unit.env.root / "plugins" / "alt_pulse.py").write_text(PLUGIN)
    proc = spawn_job("dosing_automation", "--automation-name", "alt_pulse", "--pulse-ml", "0.7", "--duration", "2")
    assert wait_until(lambda: len([e for e in mqtt_recorder.json_values(unit.env.topic("dosing_events"))
                                   if e["event"] == "remove_waste"]) >= 6, timeout=60)
    mqtt_recorder.publish(unit.env.topic("dosing_automation", "$state", "set"), "disconnected")
    assert proc.wait(20) == 0
    events = mqtt_recorder.json_values(unit.env.topic("dosing_events"))
    assert {e["source_of_event"] for e in events} == {"dosing_automation:alt_pulse"}
    truth, books = unit.truth(), unit.bookkeeping()
    assert truth["alt_media_fraction"] > 0.05
    assert books["alt_media_fraction"] == pytest.approx(truth["alt_media_fraction"], rel=0.02)
    assert books["current_volume_ml"] == pytest.approx(truth["volume_ml"], rel=0.02)
    assert books["cumulative_alt_media_added_ml"] == pytest.approx(truth["cumulative_alt_media_ml"], rel=0.02)
    assert mqtt_recorder.values(unit.env.topic("dosing_automation", "automation_name"))[0] == b"alt_pulse"


def test_large_exchanges_are_split_into_sub_doses_and_end_at_the_efflux_level(dosing_unit, mqtt_recorder, spawn_job):
    unit = dosing_unit("[dosing_automation.config]\nmax_subdose = 0.5\n", speedup=100)
    proc = spawn_job("dosing_automation", "--automation-name", "chemostat", "--exchange-volume-ml", "1.5",
                     "--duration", "30")
    base = unit.env.topic("dosing_automation")
    mqtt_recorder.wait_for(base + "/latest_event", lambda p: b"DilutionEvent" in p, timeout=60)
    mqtt_recorder.publish(base + "/$state/set", "disconnected")
    assert proc.wait(20) == 0
    runs = mqtt_recorder.values(unit.env.topic("add_media", "$state")).count(b"init")
    assert runs == 4  # 1.5 mL → 4 × 0.375 mL, each ≤ max_subdose
    truth, books = unit.truth(), unit.bookkeeping()
    assert truth["cumulative_media_ml"] == pytest.approx(1.5, rel=0.02)
    assert truth["volume_ml"] == pytest.approx(14.0, rel=0.01)  # waste after each add: back to the efflux tube
    assert books["current_volume_ml"] == pytest.approx(truth["volume_ml"], rel=0.02)
    published = [float(p) for p in mqtt_recorder.values(unit.env.topic("bioreactor", "current_volume_ml")) if p]
    assert max(published) == pytest.approx(14.375, abs=0.02)  # never more than one sub-dose above the tube


def test_silent_needs_no_calibration_and_never_doses(dosing_unit, mqtt_recorder, spawn_job):
    unit = dosing_unit(speedup=100, calibrate=False)
    proc = spawn_job("dosing_automation", "--automation-name", "silent", "--duration", "1")
    base = unit.env.topic("dosing_automation")
    mqtt_recorder.wait_for(base + "/latest_event", lambda p: b"NoEvent" in p, timeout=20)
    assert mqtt_recorder.values(base + "/automation_name")[0] == b"silent"
    mqtt_recorder.publish(base + "/$state/set", "disconnected")
    assert proc.wait(20) == 0
    assert mqtt_recorder.values(unit.env.topic("dosing_events")) == []
