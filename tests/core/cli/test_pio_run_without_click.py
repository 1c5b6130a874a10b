"""``pio run <job> …`` with no launcher: the command lines click is not needed for, read as click reads them."""

import json
import subprocess
import sys
from types import SimpleNamespace

import pytest

from reactorkit.core.cli.run import parse_job_args
from reactorkit.core.testing import pio_command


@pytest.fixture
def index(unit_env, monkeypatch):
    monkeypatch.setenv("DOT_PIOREACTOR", str(unit_env.root))
    from reactorkit.core.cli.index import get_index

    return get_index()["jobs"]


def click_kwargs(entry, args):
    """What the click command of ``entry`` gives the job for ``args`` (as its callback passes them on)."""
    from reactorkit.core.cli.main import _job_command, _parse_extra

    command = _job_command(SimpleNamespace(**entry))
    ctx = command.make_context(entry["job_name"], list(args))
    kwargs = {k: v for k, v in ctx.params.items() if v is not None and k != "config_override"}
    if entry.get("accepts_extra_options"):
        kwargs.update(_parse_extra(ctx.args))
    return kwargs


READ = [
    ("stirring", []),
    ("stirring", ["--target-rpm", "400"]),
    ("stirring", ["--target-rpm=1e3", "--duty-cycle", "12.5", "--target-rpm", "450"]),
    ("od_reading", ["--interval", "5", "--ir-led-intensity", "auto"]),
    ("add_media", ["--ml", "1.5", "--continuously", "--source-of-event", "UI"]),
    ("dosing_automation", ["--automation-name", "chemostat", "--volume", "1.0", "--duration=20", "--skip-first-run"]),
    ("led_intensity", ["--A", "50", "--B", "0", "--no-log"]),
    ("experiment_profile", ["execute", "p.yaml", "exp1", "--dry-run"]),
]


@pytest.mark.parametrize("job,args", READ)
def test_reads_a_command_line_as_click_does(index, job, args):
    mine = parse_job_args(index[job], args)
    assert mine is not None
    assert mine == click_kwargs(index[job], args)
    assert {k: type(v) for k, v in mine.items()} == {k: type(v) for k, v in click_kwargs(index[job], args).items()}


LEFT_TO_CLICK = [
    ("stirring", ["--config-override", "stirring.config", "initial_target_rpm", "300"]),  # three values
    ("stirring", ["--no-such-option", "1"]),  # unknown option (click: usage error)
    ("stirring", ["--target-rpm", "9000"]),  # above the setting's bound
    ("stirring", ["--target-rpm", "fast"]),  # not a number
    ("stirring", ["--target-rpm", "-5"]),  # a value that looks like an option
    ("stirring", ["--use-rpm", "false"]),  # a boolean (click's own spellings)
    ("stirring", ["--target-rpm"]),  # no value
    ("stirring", ["stray"]),  # an argument the job has none of
    ("dosing_automation", ["--volume", "1.0"]),  # a required option missing
    ("dosing_automation", ["--automation-name", "silent", "stray"]),  # a value without its --key
    ("experiment_profile", ["execute", "p.yaml"]),  # an argument missing
    ("add_media", ["--continuously=yes"]),
]


@pytest.mark.parametrize("job,args", LEFT_TO_CLICK)
def test_leaves_to_click_what_it_does_not_read(index, job, args):
    assert parse_job_args(index[job], args) is None


# `pio run …` as the console script runs it, reporting what the process imported as it leaves (with os._exit,
# so -X importtime's last lines would be lost)
HARNESS = """
import sys
import reactorkit.core.cli.run as run
leave = run.leave
def report(code):
    print("click:", "click" in sys.modules, "job:", "reactorkit.builtin_plugins.leds.intensity" in sys.modules, flush=True)
    leave(code)
run.leave = report
sys.argv = ["pio", *sys.argv[1:]]
from reactorkit.core.cli.entry import main
main()
"""


def run_pio(unit_env, *args):
    return subprocess.run([sys.executable, "-c", HARNESS, "run", *args], env=unit_env.env(REACTORKIT_LAUNCHER="0"),
                          capture_output=True, text=True, timeout=60)


def test_a_job_started_without_a_launcher_does_not_import_click(unit_env):
    result = run_pio(unit_env, "led_intensity", "--A", "20", "--no-log")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "click: False job: True"
    assert json.loads((unit_env.root / "storage" / f"led_intensities_{unit_env.unit}.json").read_text())["A"] == 20


def test_a_command_line_it_does_not_read_still_runs_through_click(unit_env):
    result = run_pio(unit_env, "led_intensity", "--A", "30", "--no-log", "--config-override", "leds", "A", "IR")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "click: True job: True"
    assert json.loads((unit_env.root / "storage" / f"led_intensities_{unit_env.unit}.json").read_text())["A"] == 30


def test_a_command_line_click_refuses_is_refused_as_before(unit_env):
    result = run_pio(unit_env, "stirring", "--target-rpm", "9000")
    assert result.returncode == 2
    assert "9000" in result.stderr and "--target-rpm" in result.stderr
