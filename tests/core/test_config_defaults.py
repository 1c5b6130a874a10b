"""Plugins' default config sections are merged into config.ini without overwriting the user's values."""

from __future__ import annotations

import configparser

from reactorkit.core.config_defaults import merge_config_sections
from reactorkit.core.descriptors import ConfigSection


def test_missing_sections_and_keys_are_added_and_set_values_kept(tmp_path):
    path = tmp_path / "config.ini"
    path.write_text("# my cluster\n[stirring.config]\n# tuned by hand\npwm_hz = 200\n\n[ph_reading.config]\ninterval = 30\n")
    added = merge_config_sections(path, [
        ConfigSection(section="ph_reading.config", values={"interval": "5", "probe_offset": 0.1}),
        ConfigSection(section="ph_alarm", values={"low": "6.5", "high": "7.5"}, comment="pH alarm bounds"),
    ])
    assert added == ["ph_reading.config.probe_offset", "ph_alarm.low", "ph_alarm.high"]
    text = path.read_text()
    assert "# my cluster" in text and "# tuned by hand" in text and "# pH alarm bounds" in text
    config = configparser.ConfigParser()
    config.read_string(text)
    assert config.get("ph_reading.config", "interval") == "30"
    assert config.get("ph_reading.config", "probe_offset") == "0.1"
    assert config.get("stirring.config", "pwm_hz") == "200"
    assert (config.get("ph_alarm", "low"), config.get("ph_alarm", "high")) == ("6.5", "7.5")


def test_merging_again_changes_nothing(tmp_path):
    path = tmp_path / "config.ini"
    sections = [ConfigSection(section="ph_alarm", values={"low": "6.5"})]
    assert merge_config_sections(path, sections) == ["ph_alarm.low"]
    before = path.read_text()
    assert merge_config_sections(path, sections) == []
    assert path.read_text() == before


def test_a_bad_section_name_is_refused_at_registration():
    import pytest

    with pytest.raises(ValueError, match="config section name"):
        ConfigSection(section="ph alarm", values={})
