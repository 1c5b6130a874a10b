"""What the od_reading plugin registers: job, charts, datasets, tables and topic mappings."""

import json
import sqlite3
import subprocess
import sys

import pytest

from reactorkit.builtin_plugins import od_reading
from reactorkit.core.descriptors import TableDescriptor, TopicMapping, resolve
from reactorkit.core.plugins import Registry


@pytest.fixture
def registry(plugin_manager):
    plugin_manager.register(od_reading, name="od_reading")
    return Registry.from_plugins(plugin_manager)


def test_job_descriptor_matches_the_contract(registry):
    job = registry.jobs["od_reading"].to_dict()
    assert job["display_name"] == "Optical density"
    assert job["description"] == "Collect optical density measurements of the culture over time."
    settings = {s["key"]: s for s in job["published_settings"]}
    assert settings["interval"]["unit"] == "s" and settings["interval"]["editable"]
    assert settings["ir_led_intensity"]["unit"] == "%"


def test_job_class_resolves_to_the_reader(registry):
    cls = resolve(registry.jobs["od_reading"].job_class)
    assert cls.job_name == "od_reading"
    assert {"ods", "od1", "od4", "raw_od2", "calibrated_od3", "od_fused", "first_od_obs_time",
            "relative_intensity_of_ir_led"} <= set(cls.published_settings)
    assert cls.published_settings["interval"]["settable"] and cls.published_settings["ir_led_intensity"]["settable"]


def test_charts_and_datasets(registry):
    assert {"optical_density", "raw_optical_density"} <= set(registry.charts)
    assert registry.charts["optical_density"].mqtt_topic == ("od_reading/od1", "od_reading/od2", "od_reading/od3",
                                                             "od_reading/od4")
    assert {"od_readings", "raw_od_readings", "od_readings_fused"} <= set(registry.datasets)


def test_tables_create_in_sqlite(registry):
    conn = sqlite3.connect(":memory:")
    for table in registry.tables.values():
        conn.executescript(table.create_sql)
    columns = {r[1] for r in conn.execute("PRAGMA table_info(od_readings)")}
    assert columns == {"experiment", "pioreactor_unit", "timestamp", "od_reading", "angle", "channel"}
    assert {r[1] for r in conn.execute("PRAGMA table_info(ir_led_intensities)")} >= {"relative_intensity"}
    assert {r[1] for r in conn.execute("PRAGMA table_info(od_blanks)")} >= {"channel", "angle", "od_reading"}


def mapping(registry, suffix):
    return next(m for m in registry.topic_mappings if m.topic.endswith(suffix))


READING = {"calibrated": 0, "timestamp": "2025-01-31T12:00:05.123456Z", "angle": "90", "od": 0.0123, "channel": "2",
           "ir_led_intensity": 80.0}


def test_od_reading_rows(registry):
    parse = resolve(mapping(registry, "od_reading/od2").parse)
    row = parse("pioreactor/pio1/exp1/od_reading/od2", json.dumps(READING).encode())
    assert row == {"pioreactor_unit": "pio1", "experiment": "exp1", "timestamp": "2025-01-31T12:00:05.123Z",
                   "od_reading": 0.0123, "angle": 90, "channel": 2}


def test_raw_fused_intensity_and_blank_rows(registry):
    raw = resolve(mapping(registry, "raw_od3").parse)("p/pioreactor/u/e/od_reading/raw_od3",
                                                     json.dumps(READING | {"channel": "3"}).encode())
    assert raw["channel"] == 3 and raw["od_reading"] == 0.0123 and raw["pioreactor_unit"] == "u"
    fused = resolve(mapping(registry, "od_fused").parse)(
        "pioreactor/u/e/od_reading/od_fused", b'{"od_fused": 0.5, "timestamp": "2025-01-31T12:00:05Z"}')
    assert fused["od_reading"] == 0.5
    intensity = resolve(mapping(registry, "relative_intensity_of_ir_led").parse)(
        "pioreactor/u/e/od_reading/relative_intensity_of_ir_led",
        b'{"relative_intensity_of_ir_led": 0.98, "timestamp": "2025-01-31T12:00:05Z"}')
    assert intensity["relative_intensity"] == 0.98
    blank = resolve(mapping(registry, "od_blank/mean/+").parse)(
        "pioreactor/u/e/od_blank/mean/2", b'{"od_reading": 0.03, "angle": "90", "timestamp": "2025-01-31T12:00:05Z"}')
    assert blank["channel"] == "2" and blank["angle"] == 90 and blank["od_reading"] == 0.03


@pytest.mark.parametrize("payload", [b"not json", b"[1, 2]", b'{"od": 0.1}'])
def test_malformed_payloads_raise_for_the_writer_to_skip(registry, payload):
    parse = resolve(mapping(registry, "od_reading/od1").parse)
    with pytest.raises((ValueError, KeyError)):
        parse("pioreactor/u/e/od_reading/od1", payload)


def test_registering_imports_nothing_heavy():
    code = ("import sys, reactorkit.builtin_plugins.od_reading as p; "
            "print([m for m in ('numpy', 'scipy', 'paho', 'falcon') if m in sys.modules])")
    assert subprocess.check_output([sys.executable, "-c", code], text=True).strip() == "[]"


def test_the_job_module_does_not_import_scipy():
    code = "import sys, reactorkit.builtin_plugins.od_reading.job; print('scipy' in sys.modules)"
    assert subprocess.check_output([sys.executable, "-c", code], text=True).strip() == "False"


def test_every_record_is_typed(registry):
    assert all(isinstance(t, TableDescriptor) for t in registry.tables.values())
    assert all(isinstance(m, TopicMapping) for m in registry.topic_mappings)
