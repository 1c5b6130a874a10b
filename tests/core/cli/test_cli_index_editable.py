"""The CLI index notices a changed editable plugin (pip install -e) and a changed single-file plugin."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from own_venv import distributions, own_venv

from reactorkit.core.testing import pio_command

FIXTURE = Path(__file__).parents[2] / "fixtures" / "hello_plugin"
RENAMES = (("reactorkit_hello", "reactorkit_hello_ed"), ("reactorkit-hello-plugin", "reactorkit-hello-ed-plugin"),
           ("hello_job", "hello_ed_job"), ("hello_chart", "hello_ed_chart"), ("hello = ", "hello_ed = "))


@pytest.fixture
def editable_plugin(tmp_path):
    """A copy of the hello plugin under other names, installed with ``pip install -e`` into a virtualenv of the test's
    own (:func:`own_venv.own_venv`, which also sees the suite's packages); returns ``(python, package folder)``.

    The suite's virtualenv is left as it was: the plugin's job would otherwise be in every later test's job list."""
    source = tmp_path / "src"
    shutil.copytree(FIXTURE, source, ignore=shutil.ignore_patterns("*.egg-info", "build", "__pycache__"))
    (source / "reactorkit_hello").rename(source / "reactorkit_hello_ed")
    for path in [source / "pyproject.toml", *(source / "reactorkit_hello_ed").glob("*.py")]:
        text = path.read_text()
        for old, new in RENAMES:
            text = text.replace(old, new)
        path.write_text(text)
    python = own_venv(tmp_path / "venv")
    subprocess.run([python, "-m", "pip", "install", "--quiet", "--no-build-isolation", "--no-deps",
                    "--disable-pip-version-check", "-e", str(source)], check=True, cwd=tmp_path, timeout=300)
    return python, source / "reactorkit_hello_ed"


def job_help(python: Path, root: Path, job: str) -> str:
    """``pio run JOB --help`` run with ``python`` (the plugin's virtualenv, or the suite's)."""
    env = {**os.environ, "DOT_PIOREACTOR": str(root)}
    return subprocess.run([str(python), *pio_command("run", job, "--help")[1:]], capture_output=True, text=True,
                          env=env, check=True, timeout=120).stdout


def test_a_new_option_of_an_editable_plugin_is_offered_without_deleting_the_index(editable_plugin, tmp_path):
    python, package = editable_plugin
    root = tmp_path / "dot"
    root.mkdir()
    assert "--probe-offset" not in job_help(python, root, "hello_ed_job")
    assert (root / "storage" / "cli_index.json").is_file()
    init = package / "__init__.py"
    text = init.read_text().replace("import (ChartDescriptor, JobDescriptor,", "import (ChartDescriptor, CliOption, JobDescriptor,")
    text = text.replace('job_class="reactorkit_hello_ed.job:Hello",',
                        'job_class="reactorkit_hello_ed.job:Hello",\n'
                        '        cli_options=(CliOption(name="probe_offset", type="float", help="pH offset."),),')
    assert text != init.read_text()
    init.write_text(text)
    os.utime(init, ns=(init.stat().st_atime_ns, init.stat().st_mtime_ns + 10**9))  # a later save
    assert "--probe-offset" in job_help(python, root, "hello_ed_job")
    # the suite's virtualenv has neither the plugin nor its job
    shared_names = {line.split("==")[0].lower().replace("_", "-") for line in distributions()}
    assert "reactorkit-hello-ed-plugin" not in shared_names
    elsewhere = tmp_path / "dot_shared"
    elsewhere.mkdir()
    shared = subprocess.run(pio_command("run", "--help"), capture_output=True, text=True, check=True, timeout=120,
                            env={**os.environ, "DOT_PIOREACTOR": str(elsewhere)}).stdout
    assert "stirring" in shared and "hello_ed_job" not in shared


def test_a_changed_single_file_plugin_is_noticed(tmp_path):
    root = tmp_path / "dot"
    (root / "plugins").mkdir(parents=True)
    plugin = root / "plugins" / "ph.py"
    body = ("from reactorkit.plugin import CliOption, JobDescriptor, hookimpl\n"
            "@hookimpl\ndef register_jobs():\n"
            "    yield JobDescriptor(job_name='ph_reading', display_name='pH', job_class='x:Y', cli_options=(OPTS))\n")
    plugin.write_text(body.replace("OPTS", ""))
    assert "--interval" not in job_help(sys.executable, root, "ph_reading")
    plugin.write_text(body.replace("OPTS", "CliOption(name='interval', type='float'),"))
    os.utime(plugin, ns=(plugin.stat().st_atime_ns, plugin.stat().st_mtime_ns + 10**9))  # a later save
    assert "--interval" in job_help(sys.executable, root, "ph_reading")
