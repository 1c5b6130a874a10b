"""What the rq worker runs for a job start: request → CLI flags and environment (§8)."""

import sys

import pytest

from reactorkit.core import task_functions as tf


def test_options_become_dashed_flags_and_null_is_a_bare_flag():
    cmd = tf.job_command("stirring", {"target_rpm": 200, "use_rpm": None, "duty_cycle": 12.5})
    assert cmd[:5] == [sys.executable, "-m", "reactorkit.core.cli.main", "run", "stirring"]
    assert cmd[5:] == ["--target-rpm", "200", "--use-rpm", "--duty-cycle", "12.5"]


def test_flag_options_follow_their_boolean():
    cmd = tf.job_command("add_media", {"continuously": True, "quiet": False}, flag_options=["continuously", "quiet"])
    assert cmd[5:] == ["--continuously"]


def test_booleans_of_valued_options_are_spelled_for_click():
    assert tf.job_command("stirring", {"use_rpm": False})[5:] == ["--use-rpm", "false"]


def test_config_overrides_and_args_are_appended():
    cmd = tf.job_command("stirring", {}, ["--extra"], [["stirring.config", "pwm_hz", "100"]])
    assert cmd[5:] == ["--config-override", "stirring.config", "pwm_hz", "100", "--extra"]


def test_only_whitelisted_environment_variables_pass():
    env = tf.job_environment({"EXPERIMENT": "exp1", "JOB_SOURCE": "api", "PATH": "/evil", "LD_PRELOAD": "x.so",
                              "ACTIVE": 1}, base={"PATH": "/usr/bin"})
    assert env == {"PATH": "/usr/bin", "EXPERIMENT": "exp1", "JOB_SOURCE": "api", "ACTIVE": "1"}


def test_job_source_defaults_to_user():
    assert tf.job_environment({}, base={})["JOB_SOURCE"] == "user"


def test_the_whitelist_is_the_contracts():
    assert tf.ENV_WHITELIST == {"EXPERIMENT", "JOB_SOURCE", "TESTING", "HOSTNAME", "HARDWARE", "ACTIVE", "FIRMWARE",
                                "DEBUG", "MODEL_NAME", "MODEL_VERSION", "SKIP_PLUGINS", "DOT_PIOREACTOR",
                                "GLOBAL_CONFIG", "LOCAL_CONFIG", "HAT_PRESENT"}


def test_setting_the_clock_of_a_simulated_unit_fails_without_touching_the_host(monkeypatch):
    monkeypatch.setenv("HARDWARE", "simulated")
    with pytest.raises(tf.TaskFailed) as info:
        tf.set_clock("2030-01-01T00:00:00Z")
    assert "Raspberry Pi" in info.value.error
    assert info.value.to_dict()["remediation"]
