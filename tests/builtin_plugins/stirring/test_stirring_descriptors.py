"""The stirring plugin's descriptors, collected through a fresh plugin manager."""

import json

from reactorkit.builtin_plugins import stirring
from reactorkit.builtin_plugins.stirring.descriptors import parse_measured_rpm
from reactorkit.core.descriptors import resolve
from reactorkit.core.plugins import Registry


def registry(plugin_manager):
    plugin_manager.register(stirring, name="stirring")
    return Registry.from_plugins(plugin_manager)


def test_stirring_job_publishes_its_speeds_in_rpm(plugin_manager):
    job = registry(plugin_manager).jobs["stirring"]
    settings = {s.key: s for s in job.published_settings}
    assert settings["target_rpm"].unit == "RPM" and settings["target_rpm"].editable
    assert settings["target_rpm_during_od_reading"].unit == "RPM"
    assert settings["duty_cycle"].unit == "%"
    assert settings["enable_dodging_od"].type == "boolean" and settings["enable_dodging_od"].editable
    assert not settings["currently_dodging_od"].editable
    assert job.source == "app"


def test_the_job_publishes_the_settings_its_descriptor_declares(plugin_manager):
    job = registry(plugin_manager).jobs["stirring"]
    job_class = resolve(job.job_class)
    assert job_class.published_settings == job.published_settings  # declared once, on the descriptor


def test_cli_offers_dodging_and_target(plugin_manager):
    job = registry(plugin_manager).jobs["stirring"]
    assert {o.name for o in job.cli_options} >= {"target_rpm", "enable_dodging_od", "duty_cycle"}


def test_measured_rpm_is_charted_and_stored(plugin_manager):
    reg = registry(plugin_manager)
    chart = reg.charts["stirring_rates"]
    assert chart.mqtt_topic == "stirring/measured_rpm" and chart.payload_key == "measured_rpm"
    assert "stirring_rates" in reg.tables
    [mapping] = [m for m in reg.topic_mappings if m.table == "stirring_rates"]
    assert mapping.topic == "pioreactor/+/+/stirring/measured_rpm"
    assert reg.datasets["stirring_rates"].table == "stirring_rates"


def test_measured_rpm_payload_becomes_a_row_with_millisecond_timestamp():
    payload = json.dumps({"measured_rpm": 498.7, "timestamp": "2025-01-31T12:00:05.123456Z"}).encode()
    row = parse_measured_rpm("pioreactor/worker1/exp1/stirring/measured_rpm", payload)
    assert row == {"pioreactor_unit": "worker1", "experiment": "exp1", "timestamp": "2025-01-31T12:00:05.123Z",
                   "measured_rpm": 498.7}
