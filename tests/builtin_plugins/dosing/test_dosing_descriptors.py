"""What the dosing plugin contributes, through a fresh plugin manager; storage parsers."""

import base64
import json

import pytest

import reactorkit.builtin_plugins.dosing as dosing
from reactorkit.core.job import setting_specs
from reactorkit.core.descriptors import resolve
from reactorkit.core.plugins import Registry


@pytest.fixture
def registry(plugin_manager):
    plugin_manager.register(dosing, name="dosing")
    return Registry.from_plugins(plugin_manager)


def test_pumps_and_the_automation_host_are_jobs(registry):
    jobs = registry.jobs
    for action in ("add_media", "add_alt_media", "remove_waste"):
        options = {o.name: o for o in jobs[action].cli_options}
        assert {"ml", "duration", "continuously"} <= set(options)
        assert options["continuously"].type == "flag"
        assert callable(resolve(jobs[action].runner))
    host = jobs["dosing_automation"]
    assert host.accepts_extra_options
    assert any(o.name == "automation_name" and o.required for o in host.cli_options)
    assert callable(resolve(host.runner))


def test_every_dosing_automation_has_its_fields_and_class(registry):
    automations = registry.automations["dosing"]
    assert set(automations) == {"silent", "turbidostat", "chemostat", "pid_morbidostat", "fed_batch"}
    fields = {name: {f.key: f for f in a.fields} for name, a in automations.items()}
    assert set(fields["turbidostat"]) == {"target_biomass", "exchange_volume_ml", "biomass_signal"}
    assert fields["turbidostat"]["biomass_signal"].options == ("auto", "normalized_od", "od", "od_fused")
    assert fields["chemostat"]["duration"].default == 20
    assert fields["pid_morbidostat"]["duration"].default == 60
    assert fields["fed_batch"]["duration"].default == 720
    assert fields["chemostat"]["exchange_volume_ml"].unit == "mL"
    for descriptor in automations.values():
        cls = resolve(descriptor.automation_class)
        assert cls.job_name == "dosing_automation"
        assert cls.automation_name == descriptor.automation_name
        assert set(fields[descriptor.automation_name]) - {"duration"} <= set(setting_specs(cls.published_settings))


def test_charts_datasets_tables_and_route(registry):
    chart = registry.charts["fraction_of_volume_that_is_alternative_media"].to_dict()
    assert chart["data_source"] == "alt_media_fractions"
    assert chart["mqtt_topic"] == "bioreactor/alt_media_fraction"
    assert {"dosing_events", "liquid_volumes", "alt_media_fractions", "dosing_automation_settings",
            "dosing_automation_events"} <= set(registry.tables)
    assert {"dosing_events", "liquid_volumes", "alt_media_fractions"} <= set(registry.datasets)
    topics = {m.topic: m.table for m in registry.topic_mappings}
    assert topics["pioreactor/+/+/dosing_events"] == "dosing_events"
    assert topics["pioreactor/+/+/bioreactor/current_volume_ml"] == "liquid_volumes"
    assert "/unit_api/bioreactor/experiments/{experiment}" in registry.routes
    assert registry.failures == []


def test_tables_create_in_sqlite(registry):
    import sqlite3

    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE experiments (experiment TEXT PRIMARY KEY)")
    for table in registry.tables.values():
        conn.executescript(table.create_sql)
    cols = [r[1] for r in conn.execute("PRAGMA table_info(dosing_events)")]
    assert cols == ["experiment", "pioreactor_unit", "timestamp", "event", "volume_change_ml", "source_of_event"]


def parse(registry, topic_pattern, topic, payload):
    mapping = next(m for m in registry.topic_mappings if m.topic == topic_pattern)
    return resolve(mapping.parse)(topic, payload)


def test_parsers_turn_messages_into_rows(registry):
    event = json.dumps({"volume_change": 0.5, "event": "remove_waste", "source_of_event": "CLI",
                        "timestamp": "2025-01-31T12:00:05.123456Z"}).encode()
    row = parse(registry, "pioreactor/+/+/dosing_events", "pioreactor/u1/exp1/dosing_events", event)
    assert row == {"pioreactor_unit": "u1", "experiment": "exp1", "timestamp": "2025-01-31T12:00:05.123Z",
                   "event": "remove_waste", "volume_change_ml": 0.5, "source_of_event": "CLI"}
    volume = parse(registry, "pioreactor/+/+/bioreactor/current_volume_ml",
                   "pre/pioreactor/u1/exp1/bioreactor/current_volume_ml", b"14.5")
    assert volume["liquid_volume"] == 14.5 and volume["pioreactor_unit"] == "u1"
    assert volume["timestamp"].endswith("Z")
    settings = {"pioreactor_unit": "u1", "experiment": "exp1", "started_at": "2025-01-31T12:00:00.000000Z",
                "ended_at": None, "automation_name": "chemostat",
                "settings": base64.b64encode(b'{"duration": 20}').decode()}
    row = parse(registry, "pioreactor/+/+/dosing_automation/dosing_automation_settings",
                "pioreactor/u1/exp1/dosing_automation/dosing_automation_settings", json.dumps(settings).encode())
    assert row["automation_name"] == "chemostat" and row["ended_at"] is None
    assert json.loads(base64.b64decode(row["settings"])) == {"duration": 20}
    latest = parse(registry, "pioreactor/+/+/dosing_automation/latest_event",
                   "pioreactor/u1/exp1/dosing_automation/latest_event",
                   json.dumps({"event_name": "DilutionEvent", "message": "m", "data": {"v": 1}}).encode())
    assert latest["event_name"] == "DilutionEvent" and json.loads(latest["data"]) == {"v": 1}
    assert parse(registry, "pioreactor/+/+/dosing_automation/latest_event",
                 "pioreactor/u1/exp1/dosing_automation/latest_event", b"") is None
