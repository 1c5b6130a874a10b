"""Biomass-signal resolution and parsing for the turbidostat and the morbidostat."""

import pytest

from reactorkit.builtin_plugins.dosing.automations.signals import (
    lowest_signal_channel,
    parse_signal,
    resolve_biomass_signal,
    signal_topic,
)
from reactorkit.core.config import load_config


@pytest.fixture
def config(tmp_path, monkeypatch):
    monkeypatch.setenv("DOT_PIOREACTOR", str(tmp_path))
    monkeypatch.setenv("MQTT_TOPIC_PREFIX", "pre/")
    return load_config()


def test_auto_without_calibrations_is_normalized_od(config):
    assert resolve_biomass_signal(config, "auto") == "normalized_od"


def test_auto_follows_the_config_when_it_names_a_signal(config):
    config.add_section("dosing_automation.turbidostat")
    config.set("dosing_automation.turbidostat", "biomass_signal", "od")
    assert resolve_biomass_signal(config, "auto") == "od"
    assert resolve_biomass_signal(config, "od_fused") == "od_fused"


def test_auto_is_od_when_the_lowest_signal_channel_is_calibrated(config):
    from reactorkit.core.calibration_store import save_calibration

    record = {
        "calibration_type": "od600", "calibration_name": "c90", "calibrated_on_pioreactor_unit": "u",
        "created_at": "2025-01-01T00:00:00Z", "curve_data_": {"type": "poly", "coefficients": [0.5, 0.01]},
        "x": "OD600", "y": "Voltage", "recorded_data": {"x": [0.1, 1.0], "y": [0.06, 0.51]},
        "ir_led_intensity": 80, "angle": "90", "pd_channel": "2",
    }
    save_calibration("od90", record, set_active=True)
    assert resolve_biomass_signal(config, "auto") == "od"


def test_unknown_signal_is_refused(config):
    with pytest.raises(ValueError, match="biomass_signal"):
        resolve_biomass_signal(config, "turbidity")


def test_topics_follow_the_contract(config):
    assert lowest_signal_channel(config) == ("2", "90")
    assert signal_topic("od", "u1", "e1", config) == ("pre/pioreactor/u1/e1/od_reading/od2", "od")
    assert signal_topic("normalized_od", "u1", "e1", config) == (
        "pre/pioreactor/u1/e1/growth_rate_calculating/od_filtered", "od_filtered")
    assert signal_topic("od_fused", "u1", "e1", config)[0].endswith("/od_reading/od_fused")
    assert signal_topic("growth_rate", "u1", "e1", config)[1] == "growth_rate"


def test_parse_signal_reads_the_key_and_refuses_garbage():
    assert parse_signal(b'{"od": 0.52, "channel": "2"}', "od") == 0.52
    assert parse_signal(b"1.5", "od_filtered") == 1.5
    for bad in (b"", b"{}", b'{"od": "x"}', b'{"od": NaN}'):
        with pytest.raises((ValueError, KeyError)):
            parse_signal(bad, "od")
