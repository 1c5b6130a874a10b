"""What the growth_rate plugin registers: job, charts, datasets, tables and topic mappings."""

import json
import subprocess
import sys

import pytest

from reactorkit.builtin_plugins import growth_rate
from reactorkit.core.descriptors import resolve
from reactorkit.core.plugins import Registry


@pytest.fixture
def registry(plugin_manager):
    plugin_manager.register(growth_rate, name="growth_rate")
    return Registry.from_plugins(plugin_manager)


def test_job_descriptor_matches_the_contract(registry):
    job = registry.jobs["growth_rate_calculating"].to_dict()
    assert job["display_name"] == "Growth rate"
    assert job["description"].startswith("Transform optical density measurements into culture growth rate")
    assert {s["key"] for s in job["published_settings"]} >= {"growth_rate", "od_filtered"}
    cls = resolve(registry.jobs["growth_rate_calculating"].job_class)
    assert cls.job_name == "growth_rate_calculating"


def test_growth_rate_charts_match_the_contract_examples(registry):
    chart = registry.charts["implied_growth_rate"].to_dict()
    assert chart == {
        "chart_key": "implied_growth_rate", "data_source": "growth_rates", "title": "Implied growth rate",
        "y_axis_label": "Growth rate, h\u207b\u00b9", "mqtt_topic": "growth_rate_calculating/growth_rate",
        "payload_key": "growth_rate", "data_source_column": None, "lookback": 100000, "fixed_decimals": 2,
        "down_sample": True, "y_transformation": "(y) => y", "y_axis_domain": [-0.02, 0.1],
        "interpolation": "stepAfter", "source": "app",
    }
    assert registry.charts["implied_daily_growth_rate"].y_transformation == "(y) => 24 * y"
    assert registry.charts["normalized_optical_density"].data_source == "od_readings_filtered"


def test_rows_for_growth_rates_and_filtered_od(registry):
    maps = {m.topic.rsplit("/", 1)[-1]: m for m in registry.topic_mappings}
    gr = resolve(maps["growth_rate"].parse)("pioreactor/u1/e1/growth_rate_calculating/growth_rate",
                                            json.dumps({"growth_rate": 0.12, "timestamp": "2025-01-31T12:00:05.1Z"}).encode())
    assert gr == {"pioreactor_unit": "u1", "experiment": "e1", "timestamp": "2025-01-31T12:00:05.100Z", "rate": 0.12}
    od = resolve(maps["od_filtered"].parse)("pioreactor/u1/e1/growth_rate_calculating/od_filtered",
                                            b'{"od_filtered": 1.2, "timestamp": "2025-01-31T12:00:05Z"}')
    assert od["normalized_od_reading"] == 1.2
    assert maps["growth_rate"].table == "growth_rates" and maps["od_filtered"].table == "od_readings_filtered"
    assert set(registry.tables) == {"growth_rates", "od_readings_filtered"}
    assert set(registry.datasets) == {"growth_rates", "od_readings_filtered"}


def test_registering_imports_nothing_heavy():
    code = ("import sys, reactorkit.builtin_plugins.growth_rate as p; "
            "print([m for m in ('numpy', 'scipy', 'paho', 'falcon') if m in sys.modules])")
    assert subprocess.check_output([sys.executable, "-c", code], text=True).strip() == "[]"


def test_the_job_module_does_not_import_scipy():
    code = "import sys, reactorkit.builtin_plugins.growth_rate.job; print('scipy' in sys.modules)"
    assert subprocess.check_output([sys.executable, "-c", code], text=True).strip() == "False"
