"""The LEDs plugin's descriptors (fresh plugin manager) and its pure helpers."""

import json

import pytest

from reactorkit.core.job import setting_specs

from reactorkit.builtin_plugins import leds
from reactorkit.builtin_plugins.leds.automations import phase_minutes
from reactorkit.builtin_plugins.leds.descriptors import parse_led_change_event
from reactorkit.builtin_plugins.leds.intensity import InvalidLedIntensity, parse_intensities
from reactorkit.core.descriptors import resolve
from reactorkit.core.plugins import Registry


def registry(plugin_manager):
    plugin_manager.register(leds, name="leds")
    return Registry.from_plugins(plugin_manager)


def test_led_intensity_is_an_action_taking_channel_options(plugin_manager):
    job = registry(plugin_manager).jobs["led_intensity"]
    assert job.runner is not None and job.accepts_extra_options and not job.display
    assert callable(resolve(job.runner))


def test_led_automation_host_job_and_its_automations(plugin_manager):
    reg = registry(plugin_manager)
    host = reg.jobs["led_automation"]
    assert host.accepts_extra_options and host.cli_options[0].name == "automation_name"
    automations = reg.automations["led"]
    assert set(automations) == {"silent", "light_dark_cycle"}
    fields = {f.key: f for f in automations["light_dark_cycle"].fields}
    assert fields["light_intensity"].unit == "%"
    assert fields["light_duration_minutes"].unit == fields["dark_duration_minutes"].unit == "min"
    for descriptor in automations.values():
        cls = resolve(descriptor.automation_class)
        assert (cls.job_name, cls.automation_name) == ("led_automation", descriptor.automation_name)
    light_dark = resolve(automations["light_dark_cycle"].automation_class)
    editable = {s.key for s in host.published_settings if s.editable}
    assert editable == {k for k, v in setting_specs(light_dark.published_settings).items() if v["settable"]}


def test_led_changes_and_automation_records_are_stored_and_exportable(plugin_manager):
    reg = registry(plugin_manager)
    expected = {"led_change_events", "led_automation_settings", "led_automation_events"}
    assert expected <= set(reg.tables) and expected <= set(reg.datasets)
    tables = {m.topic: m.table for m in reg.topic_mappings}
    assert tables["pioreactor/+/+/led_change_events"] == "led_change_events"
    assert tables["pioreactor/+/+/led_automation/led_automation_settings"] == "led_automation_settings"
    for mapping in reg.topic_mappings:
        assert callable(resolve(mapping.parse))


def test_led_change_event_becomes_a_row():
    payload = json.dumps({"channel": "C", "intensity": 40.0, "source_of_event": "led_automation:light_dark_cycle",
                          "timestamp": "2025-01-31T12:00:05.123456Z"}).encode()
    row = parse_led_change_event("pioreactor/w1/e1/led_change_events", payload)
    assert row == {"pioreactor_unit": "w1", "experiment": "e1", "timestamp": "2025-01-31T12:00:05.123Z",
                   "channel": "C", "intensity": 40.0, "source_of_event": "led_automation:light_dark_cycle"}


def test_channel_options_are_case_insensitive_percentages():
    assert parse_intensities({"A": "50", "b": 0}) == {"A": 50.0, "B": 0.0}
    with pytest.raises(InvalidLedIntensity, match="'E'"):
        parse_intensities({"E": "5"})
    with pytest.raises(InvalidLedIntensity, match="--A"):
        parse_intensities({"A": "150"})
    with pytest.raises(InvalidLedIntensity, match="--C"):
        parse_intensities({"C": "bright"})


def test_phase_lengths_accept_minutes_or_hours():
    assert phase_minutes("light", minutes="90") == 90.0
    assert phase_minutes("light", hours="16") == 960.0
    assert phase_minutes("dark", minutes=30, hours=0.5) == 30.0
    assert phase_minutes("dark", default=480.0) == 480.0
    with pytest.raises(ValueError, match="disagree"):
        phase_minutes("dark", minutes=30, hours=1)
    with pytest.raises(ValueError, match="light_duration_hours"):
        phase_minutes("light", hours="-2")
