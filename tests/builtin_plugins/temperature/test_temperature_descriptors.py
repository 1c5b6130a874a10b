"""The temperature plugin's descriptors, collected through a fresh plugin manager."""

import json

from reactorkit.core.job import setting_specs
from reactorkit.builtin_plugins import temperature
from reactorkit.builtin_plugins.temperature.descriptors import parse_temperature
from reactorkit.core.descriptors import resolve
from reactorkit.core.plugins import Registry
from reactorkit.core.storage_rows import automation_event_row, automation_settings_row


def registry(plugin_manager):
    plugin_manager.register(temperature, name="temperature")
    return Registry.from_plugins(plugin_manager)


def test_host_job_runs_automations_by_name_with_extra_options(plugin_manager):
    job = registry(plugin_manager).jobs["temperature_automation"]
    assert job.runner is not None and job.accepts_extra_options
    [option] = job.cli_options
    assert option.name == "automation_name" and option.required
    assert callable(resolve(job.runner))
    settings = {s.key: s for s in job.published_settings}
    assert settings["temperature"].unit == "℃" and not settings["temperature"].editable
    assert settings["target_temperature"].editable


def test_thermostat_and_only_record_temperature_are_offered(plugin_manager):
    automations = registry(plugin_manager).automations["temperature"]
    assert set(automations) == {"thermostat", "only_record_temperature"}
    [field] = automations["thermostat"].fields
    assert (field.key, field.unit, field.default, field.type) == ("target_temperature", "℃", 30, "numeric")
    assert automations["only_record_temperature"].fields == ()
    assert automations["thermostat"].to_dict()["display_name"] == "Thermostat"


def test_automation_classes_are_temperature_automation_jobs(plugin_manager):
    for descriptor in registry(plugin_manager).automations["temperature"].values():
        cls = resolve(descriptor.automation_class)
        assert cls.job_name == "temperature_automation"
        assert cls.automation_name == descriptor.automation_name
        assert {"temperature", "heater_duty_cycle"} <= set(setting_specs(cls.published_settings)) | set(
            setting_specs(cls.__mro__[1].published_settings))


def test_every_setting_of_the_job_descriptor_is_published_by_some_automation(plugin_manager):
    reg = registry(plugin_manager)
    published = set()
    for descriptor in reg.automations["temperature"].values():
        for cls in resolve(descriptor.automation_class).__mro__:
            published |= set(setting_specs(getattr(cls, "published_settings", {}) or {}))
    assert {s.key for s in reg.jobs["temperature_automation"].published_settings} <= published


def test_temperature_is_charted_exported_and_stored(plugin_manager):
    reg = registry(plugin_manager)
    chart = reg.charts["temperature"]
    assert (chart.data_source, chart.mqtt_topic, chart.payload_key) == (
        "temperature_readings", "temperature_automation/temperature", "temperature")
    assert {"temperature_readings", "temperature_automation_settings", "temperature_automation_events"} <= set(
        reg.datasets)
    assert {"temperature_readings", "temperature_automation_settings", "temperature_automation_events"} <= set(
        reg.tables)
    tables = {m.topic: m.table for m in reg.topic_mappings}
    assert tables["pioreactor/+/+/temperature_automation/temperature"] == "temperature_readings"
    assert tables["pioreactor/+/+/temperature_automation/latest_event"] == "temperature_automation_events"
    for mapping in reg.topic_mappings:
        assert callable(resolve(mapping.parse))


def test_temperature_payload_becomes_a_row_in_celsius():
    payload = json.dumps({"timestamp": "2025-01-31T12:00:05.123456Z", "temperature": 30.12}).encode()
    row = parse_temperature("pioreactor/worker1/exp1/temperature_automation/temperature", payload)
    assert row == {"pioreactor_unit": "worker1", "experiment": "exp1", "timestamp": "2025-01-31T12:00:05.123Z",
                   "temperature_c": 30.12}


def test_settings_record_and_events_become_rows():
    record = {"pioreactor_unit": "w1", "experiment": "e1", "started_at": "2025-01-31T12:00:00.000001Z",
              "ended_at": None, "automation_name": "thermostat", "settings": "eyJ0YXJnZXRfdGVtcGVyYXR1cmUiOiAzMH0="}
    row = automation_settings_row("pioreactor/w1/e1/temperature_automation/temperature_automation_settings",
                                  json.dumps(record).encode())
    assert row["started_at"] == "2025-01-31T12:00:00.000Z" and row["ended_at"] is None
    assert row["settings"] == record["settings"] and row["automation_name"] == "thermostat"
    event = {"event_name": "UpdatedHeaterDC", "message": "m", "data": {"current_dc": 16.0}}
    row = automation_event_row("pioreactor/w1/e1/temperature_automation/latest_event", json.dumps(event).encode())
    assert (row["event_name"], json.loads(row["data"])) == ("UpdatedHeaterDC", {"current_dc": 16.0})
    assert automation_event_row("pioreactor/w1/e1/temperature_automation/latest_event", b"") is None
