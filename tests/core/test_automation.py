"""The automation base class: periodic execute, pause/resume, duration, settings record, events."""

import base64
import json
import threading

import pytest

from reactorkit.core.automation import AutomationJob, NoEvent, cast_automation_kwargs
from reactorkit.core.clock import Clock
from reactorkit.core.config import load_config
from reactorkit.core.descriptors import AutomationDescriptor, AutomationField

pytestmark = pytest.mark.integration


class Counting(AutomationJob):
    job_name = "dosing_automation"
    automation_name = "counting"
    published_settings = {"volume": {"datatype": "float", "settable": True, "unit": "mL"},
                          "signal": {"datatype": "string", "settable": False},  # chosen at start
                          "latest_count": {"datatype": "float", "settable": False}}  # a reading

    def __init__(self, *args, volume=1.0, signal="od", **kwargs):
        self.runs = 0
        self.ran = threading.Event()
        super().__init__(*args, **kwargs)
        self.volume = volume
        self.signal = signal
        self.latest_count = 0.0

    def execute(self):
        self.runs += 1
        if self.runs >= 3:
            self.ran.set()
        return NoEvent(message=f"run {self.runs}", data={"volume": self.volume})


@pytest.fixture
def automation(unit_env, monkeypatch):
    unit_env.apply(monkeypatch)
    config = load_config()
    job = Counting(unit_env.unit, unit_env.experiment, duration=0.5, config=config, clock=Clock(speedup=120.0))
    yield job
    job.clean_up()


def test_execute_runs_every_duration_and_publishes_its_event(automation, unit_env, mqtt_recorder):
    assert automation.ran.wait(10)
    # the first message may be the empty latest_event of the start (still on its way when the recorder subscribed)
    event = json.loads(mqtt_recorder.wait_for(unit_env.topic("dosing_automation", "latest_event"), lambda p: bool(p)))
    assert event["event_name"] == "NoEvent"
    assert event["data"] == {"volume": 1.0}


def test_sleeping_pauses_the_automation(automation):
    automation.set_state("sleeping")
    runs = automation.runs
    automation.clock.sleep(120)
    assert automation.runs == runs
    automation.set_state("ready")
    assert automation.ran.wait(10)


def test_a_settings_change_publishes_a_base64_settings_record(automation, unit_env, mqtt_recorder):
    mqtt_recorder.publish(unit_env.topic("dosing_automation", "volume", "set"), "2.5")
    topic = unit_env.topic("dosing_automation", "dosing_automation_settings")
    record = json.loads(mqtt_recorder.wait_for(topic, lambda p: b'"settings"' in p and json.loads(
        base64.b64decode(json.loads(p)["settings"]))["volume"] == 2.5))
    assert record["automation_name"] == "counting"
    assert record["pioreactor_unit"] == unit_env.unit
    settings = json.loads(base64.b64decode(record["settings"]))
    assert settings["signal"] == "od"  # chosen at start, not editable: still one of the run's settings
    assert "latest_count" not in settings and "latest_event" not in settings and "automation_name" not in settings


def test_negative_duration_is_refused(unit_env, monkeypatch):
    unit_env.apply(monkeypatch)
    with pytest.raises(ValueError, match="duration"):
        Counting(unit_env.unit, unit_env.experiment, duration=-1, config=load_config())


def test_cli_strings_are_cast_with_the_field_types():
    descriptor = AutomationDescriptor(
        automation_type="dosing", automation_name="x", display_name="X", automation_class=Counting,
        fields=(AutomationField(key="volume", label="Volume", unit="mL"), AutomationField(key="note", label="Note", type="string")),
    )
    assert cast_automation_kwargs(descriptor, {"volume": "1.5", "note": "hi", "duration": "20"}) == {
        "volume": 1.5, "note": "hi", "duration": 20.0}
    with pytest.raises(ValueError, match="--volume"):
        cast_automation_kwargs(descriptor, {"volume": "lots"})


def test_a_refused_construction_leaves_no_registry_row(unit_env, monkeypatch):
    from reactorkit.core.job_registry import JobRegistry

    unit_env.apply(monkeypatch)
    with pytest.raises(ValueError):
        Counting(unit_env.unit, unit_env.experiment, duration=-1, config=load_config())
    assert JobRegistry(config=load_config()).running() == []
