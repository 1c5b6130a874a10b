"""The `pio` command line, run as a user would run it."""

import json
import re
import subprocess
import sys

import pytest

from reactorkit import __version__
from reactorkit.core.testing import pio_command


def pio(unit_env, *args, check=True):
    return subprocess.run(pio_command(*args), env=unit_env.env(), capture_output=True, text=True, check=check, timeout=60)


def test_help_lists_the_commands(unit_env):
    out = pio(unit_env, "--help").stdout
    for command in ("run", "kill", "jobs", "plugins", "version", "serve", "worker", "demo", "cluster"):
        assert f"  {command} " in out
    commands = out.split("Commands:", 1)[1]
    assert "..." not in commands  # every command's first sentence whole, not cut short


def test_run_help_lists_registered_jobs_and_job_help_lists_its_options(unit_env):
    assert "stirring" in pio(unit_env, "run", "--help").stdout
    out = pio(unit_env, "run", "stirring", "--help").stdout
    assert "--target-rpm FLOAT" in out and "--config-override" in out


def test_unknown_job_is_a_usage_error(unit_env):
    result = pio(unit_env, "run", "no_such_job", check=False)
    assert result.returncode == 2
    assert "no_such_job" in result.stderr


def test_version_prints_the_package_version(unit_env):
    assert pio(unit_env, "version").stdout.strip() == __version__


def test_kill_without_a_filter_is_refused(unit_env):
    result = pio(unit_env, "kill", check=False)
    assert result.returncode == 2
    assert "--all-jobs" in result.stderr


@pytest.mark.integration
def test_jobs_list_and_kill_by_name(unit_env, mqtt_recorder, spawn_job):
    proc = spawn_job("stirring")
    mqtt_recorder.wait_for(unit_env.topic("stirring", "$state"), lambda p: p == b"ready")
    listed = json.loads(pio(unit_env, "jobs", "list", "--json").stdout)
    assert [j["job_name"] for j in listed] == ["stirring"]
    assert listed[0]["settings"]["$state"] == "ready"
    assert "Stopped 1 job(s): stirring" in pio(unit_env, "kill", "--job-name", "stirring").stdout
    assert proc.wait(10) == 0
    assert "No jobs running." in pio(unit_env, "jobs", "list").stdout


@pytest.mark.integration
def test_config_override_applies_to_one_run(unit_env, mqtt_recorder, spawn_job):
    spawn_job("stirring", "--config-override", "stirring.config", "initial_target_rpm", "321")
    assert mqtt_recorder.wait_for(unit_env.topic("stirring", "target_rpm")) == b"321.0"


@pytest.mark.integration
def test_a_job_says_once_that_it_is_ready_with_its_settings_and_how_to_stop_it(unit_env, mqtt_recorder):
    proc = subprocess.Popen(pio_command("run", "stirring", "--target-rpm", "400"), env=unit_env.env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        first = proc.stdout.readline()  # blocks until the job prints its first line
        assert "Ready (target_rpm=400" in first and f"on {unit_env.unit}, experiment {unit_env.experiment}" in first
        assert "Ctrl-C" in first and "pio kill --job-name stirring" in first
    finally:
        proc.send_signal(2)
        rest = proc.communicate(timeout=30)[0]
    assert rest.count("Ready") == 0 and "Disconnected." in rest


@pytest.mark.integration
def test_a_job_pio_run_ran_itself_leaves_with_its_exit_code_and_all_its_output(unit_env, mqtt_recorder):
    env = unit_env.env(REACTORKIT_LAUNCHER="0")
    env.pop("PYTHONUNBUFFERED")  # output to a pipe is block-buffered: only a flush at exit brings it
    proc = subprocess.Popen(pio_command("run", "stirring"), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        mqtt_recorder.wait_for(unit_env.topic("stirring", "$state"), lambda p: p == b"ready", timeout=30)
        proc.send_signal(15)
        out = proc.communicate(timeout=30)[0]
    finally:
        proc.kill()
    assert proc.returncode == 0
    assert out.count("Ready") == 1 and out.rstrip().endswith("Disconnected.")


@pytest.mark.integration
def test_a_value_the_job_refuses_is_one_line_naming_the_option_and_the_help(unit_env):
    result = pio(unit_env, "run", "stirring", "--target-rpm", "-5", check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and re.search(r"target.rpm", errors[0]) and "-5" in errors[0], result.stderr


ENTRY = [sys.executable, "-m", "reactorkit.core.cli.entry"]  # the `pio` console script


def test_the_console_script_prints_help_from_its_cache_as_click_renders_it(unit_env):
    env = unit_env.env(COLUMNS="90")
    for args in (["--help"], ["run", "--help"]):
        rendered = subprocess.run(pio_command(*args), env=env, capture_output=True, text=True, check=True).stdout
        first = subprocess.run([*ENTRY, *args], env=env, capture_output=True, text=True, check=True).stdout
        cached = subprocess.run([*ENTRY, *args], env=env, capture_output=True, text=True, check=True).stdout
        assert first == cached == rendered
    assert (unit_env.root / "storage" / "cli_help.json").exists()


def test_a_new_file_plugin_command_reaches_the_cached_help(unit_env):
    env = unit_env.env(COLUMNS="90")
    assert "ph-probe" not in subprocess.run([*ENTRY, "--help"], env=env, capture_output=True, text=True).stdout
    (unit_env.root / "plugins").mkdir(exist_ok=True)
    (unit_env.root / "plugins" / "ph_probe.py").write_text(
        "import click\n"
        "from reactorkit.plugin import CliCommandDescriptor, hookimpl\n\n"
        "@click.command(help='Probe the pH.')\n"
        "def ph_probe():\n    pass\n\n"
        "@hookimpl\n"
        "def register_cli_commands():\n"
        "    yield CliCommandDescriptor(name='ph-probe', command=ph_probe, help='Probe the pH.')\n")
    out = subprocess.run([*ENTRY, "--help"], env=env, capture_output=True, text=True, check=True).stdout
    assert "ph-probe" in out and "Probe the pH." in out
