"""A setting's bounds are declared once, on its PublishedSetting, and enforced for /set, `pio run` and the API."""

from __future__ import annotations

import json
import subprocess

import pytest

from reactorkit.core.descriptors import CliOption, JobDescriptor, PublishedSetting, SettingOutOfRange
from reactorkit.core.job import setting_specs
from reactorkit.core.testing import pio_command


def test_a_value_outside_the_bounds_names_the_setting_the_bounds_and_the_unit():
    setting = PublishedSetting(key="target_rpm", unit="RPM", editable=True, min=0, max=5000)
    assert setting.check(300.0) == 300.0
    with pytest.raises(SettingOutOfRange, match=r"target_rpm must be between 0 and 5000 RPM, got -5"):
        setting.check(-5)
    assert PublishedSetting(key="t", min=20).check(True) is True  # not a number: nothing to bound


def test_a_cli_option_named_like_a_setting_inherits_its_bounds_and_unit():
    job = JobDescriptor(
        job_name="ph_dosing", display_name="pH", job_class="x:Y",
        published_settings=(PublishedSetting(key="target_ph", unit="pH", editable=True, min=2, max=12),),
        cli_options=(CliOption(name="target_ph", type="float"), CliOption(name="volume", type="float", max=3)),
    )
    target, volume = job.cli_options
    assert (target.min, target.max, target.unit) == (2, 12, "pH")
    assert (volume.min, volume.max) == (None, 3)
    with pytest.raises(SettingOutOfRange):
        target.check(13.0)


def test_a_job_class_takes_its_settings_from_the_descriptor():
    from reactorkit.builtin_plugins.stirring.descriptors import STIRRING
    from reactorkit.builtin_plugins.stirring.job import Stirring

    assert Stirring.published_settings is STIRRING.published_settings
    specs = setting_specs(Stirring.published_settings)
    assert specs["target_rpm"] == {"datatype": "float", "settable": True, "unit": "RPM", "persist": False,
                                   "min": 0, "max": 5000}
    assert specs["measured_rpm"]["settable"] is False


def test_pio_run_refuses_an_out_of_range_option_in_one_line(unit_env):
    result = subprocess.run(pio_command("run", "stirring", "--target-rpm", "-5"), env=unit_env.env(),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert errors == ["Error: Invalid value for '--target-rpm': -5.0 is not in the range 0<=x<=5000."]
    assert result.stdout == ""


@pytest.mark.integration
def test_a_set_outside_the_bounds_is_logged_and_ignored_and_the_job_keeps_running(unit_env, mqtt_recorder, spawn_job):
    spawn_job("stirring", "--target-rpm", "500")
    mqtt_recorder.wait_for(unit_env.topic("stirring", "$state"), lambda p: p == b"ready", timeout=20)
    mqtt_recorder.publish(unit_env.topic("stirring", "target_rpm", "set"), "-100")
    log = mqtt_recorder.wait_for(unit_env.topic("logs", "app", "error"), lambda p: b"target_rpm" in p, timeout=20)
    assert "between 0 and 5000 RPM" in json.loads(log)["message"]
    mqtt_recorder.publish(unit_env.topic("stirring", "target_rpm", "set"), "300")
    mqtt_recorder.wait_for(unit_env.topic("stirring", "target_rpm"), lambda p: p == b"300.0", timeout=20)
    published = [p for t, p, _, _ in mqtt_recorder.messages if t == unit_env.topic("stirring", "target_rpm")]
    assert b"-100.0" not in published
    states = [p for t, p, _, _ in mqtt_recorder.messages if t == unit_env.topic("stirring", "$state")]
    assert states[-1] == b"ready"
