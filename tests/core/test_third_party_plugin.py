"""A pip-installed third-party plugin appears next to the built-ins."""

import json
import os
import subprocess
from pathlib import Path

import pytest

from own_venv import distributions, own_venv

from reactorkit.core.testing import pio_command

PACKAGE = Path(__file__).parents[1] / "fixtures" / "hello_plugin"


@pytest.fixture(scope="module")
def hello_installed(tmp_path_factory):
    """The hello plugin pip-installed into a virtualenv of this module's own (:func:`own_venv.own_venv`, which also
    sees the suite's packages); returns its ``python``. The suite's virtualenv is left as it was: the plugin's job
    would otherwise be in every later test's job list."""
    build = tmp_path_factory.mktemp("hello_build")
    python = own_venv(build / "venv")
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--no-build-isolation", "--no-deps", "--disable-pip-version-check",
         str(PACKAGE)],
        check=True, cwd=build, timeout=300,
    )
    return python


def run_fresh(python, code):
    """Run in a new interpreter: entry points are read at start-up."""
    return subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True).stdout


def pio(python, *args):
    """``pio …`` command line run with ``python``."""
    return [str(python), *pio_command(*args)[1:]]


def test_installed_plugin_job_is_in_the_aggregated_descriptors(hello_installed):
    out = run_fresh(
        hello_installed,
        "import json; from reactorkit.core.plugins import Registry; r = Registry.installed();"
        "print(json.dumps({'jobs': {k: v.source for k, v in r.jobs.items()}, 'charts': list(r.charts)}))"
    )
    found = json.loads(out)
    assert found["jobs"]["hello_job"] == "hello"
    assert found["jobs"]["stirring"] == "app"
    assert "hello_chart" in found["charts"]


def test_installed_plugin_is_listed_by_pio_plugins_list_and_the_api_under_its_distribution_name(hello_installed,
                                                                                                  tmp_path):
    env = {**os.environ, "DOT_PIOREACTOR": str(tmp_path)}
    out = subprocess.run(pio(hello_installed, "plugins", "list", "--json"), capture_output=True, text=True, env=env,
                         check=True).stdout
    hello = next(p for p in json.loads(out) if p.get("entry_point") == "hello")
    assert hello["name"] == "reactorkit-hello-plugin"  # what pip installs and uninstalls
    assert hello["version"] == "1.2.3"
    assert hello["author"] == "Test Author"
    assert hello["errors"] == []
    api = json.loads(run_fresh(hello_installed, "import json; from reactorkit.builtin_plugins.system.plugin_tasks "
                               "import installed_plugins; print(json.dumps(installed_plugins()))"))
    assert [p for p in api if p.get("entry_point") == "hello"] == [hello]


def test_installed_plugin_job_is_offered_by_pio_run(hello_installed, tmp_path):
    env = {**os.environ, "DOT_PIOREACTOR": str(tmp_path)}
    out = subprocess.run(pio(hello_installed, "run", "--help"), capture_output=True, text=True, env=env,
                         check=True).stdout
    assert "hello_job" in out


def test_the_suites_virtualenv_is_left_without_the_plugin(hello_installed, tmp_path):
    env = {**os.environ, "DOT_PIOREACTOR": str(tmp_path)}
    assert "reactorkit-hello-plugin" in {line.split("==")[0].lower() for line in distributions(hello_installed)}
    assert "reactorkit-hello-plugin" not in {line.split("==")[0].lower() for line in distributions()}
    out = subprocess.run(pio_command("run", "--help"), capture_output=True, text=True, env=env, check=True).stdout
    assert "stirring" in out and "hello_job" not in out
