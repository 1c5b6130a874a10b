"""``pio calibrations list|display|set-active|delete|protocols|run``."""

import subprocess

import pytest
from click.testing import CliRunner

from reactorkit.builtin_plugins.calibrations.cli import calibrations
from reactorkit.core import calibration_store as store
from reactorkit.core.testing import pio_command


def pump_record(name, slope):
    return {
        "calibration_type": "simple_peristaltic_pump", "calibration_name": name,
        "calibrated_on_pioreactor_unit": "pio01", "created_at": "2026-01-02T03:04:05.000000Z",
        "curve_data_": {"type": "poly", "coefficients": [slope, 0.0]}, "x": "Duration", "y": "Volume",
        "recorded_data": {"x": [1.0, 2.0], "y": [slope, 2 * slope]}, "hz": 250.0, "dc": 100.0, "voltage": -1.0,
    }


@pytest.fixture
def runner(cal_env):
    return CliRunner()


def test_list_display_set_active_and_delete(runner):
    store.save_calibration("media_pump", pump_record("first", 0.4))
    store.save_calibration("media_pump", pump_record("second", 0.6), set_active=True)

    listed = runner.invoke(calibrations, ["list"])
    assert listed.exit_code == 0, listed.output
    rows = {line.split()[1]: line for line in listed.output.splitlines()[1:]}
    assert rows["second"].rstrip().endswith("*") and not rows["first"].rstrip().endswith("*")

    shown = runner.invoke(calibrations, ["display", "--device", "media_pump", "--name", "first"])
    assert shown.exit_code == 0 and "calibration_name: first" in shown.output
    assert "0.8" in shown.output  # the curve at 2 s

    assert runner.invoke(calibrations, ["set-active", "--device", "media_pump", "--name", "first"]).exit_code == 0
    assert store.active_calibrations() == {"media_pump": "first"}

    assert runner.invoke(calibrations, ["delete", "--device", "media_pump", "--name", "first", "-y"]).exit_code == 0
    assert store.active_calibrations() == {}
    missing = runner.invoke(calibrations, ["set-active", "--device", "media_pump", "--name", "first"])
    assert missing.exit_code != 0 and "first" in missing.output


def test_run_drives_an_od_protocol_in_the_terminal_and_re_asks_bad_values(runner):
    answers = "\n".join([
        "",            # intro: continue
        "cli-od",      # calibration name
        "",            # IR intensity: default 80
        "-1",          # an invalid OD600 …
        "1.2",         # … asked again
        "another_standard",
        "0.4",
        "blank",
        "",            # blank OD600: default 0
    ]) + "\n"
    result = runner.invoke(calibrations, ["run", "--device", "od90"], input=answers)
    assert result.exit_code == 0, result.output
    assert "OD600 > 0" in result.output  # the error for -1
    assert "Calibration complete!" in result.output
    cal = store.active_calibration("od90")
    assert cal.name == "cli-od" and sorted(cal.record["recorded_data"]["x"]) == [0.0, 0.4, 1.2]


def test_run_refuses_a_device_without_protocols(runner):
    result = runner.invoke(calibrations, ["run", "--device", "od180"])
    assert result.exit_code != 0 and "no calibration protocol" in result.output


def test_pio_lists_the_calibrations_command(cal_env):
    store.save_calibration("waste_pump", pump_record("w", 0.9), set_active=True)
    out = subprocess.run(pio_command("calibrations", "list", "--device", "waste_pump"), env=cal_env.env(),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "waste_pump" in out.stdout and "simple_peristaltic_pump" in out.stdout
