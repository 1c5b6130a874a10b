"""`pio plugins install/uninstall NAME`, as the API does: pip, default config, listing; clean one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from reactorkit.core.testing import pio_command

HELLO = Path(__file__).parents[2] / "fixtures" / "hello_plugin"
pytestmark = pytest.mark.integration  # pip runs for real (into a folder of the test's own)


@pytest.fixture
def unit(tmp_path):
    """A unit whose plugins pip-install into ``tmp_path/site`` (on its PYTHONPATH), with the hello wheel built."""
    root, site, wheels = tmp_path / "dot", tmp_path / "site", tmp_path / "wheels"
    for folder in (root, site, wheels):
        folder.mkdir()
    (root / "config.ini").write_text(f"[plugins]\ninstall_target = {site}\n")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-build-isolation", "--no-deps", str(HELLO),
                    "-w", str(wheels)], check=True, cwd=tmp_path, timeout=300)
    env = {**os.environ, "DOT_PIOREACTOR": str(root), "PYTHONPATH": str(site)}
    return env, next(wheels.glob("*.whl"))


def pio(env, *args):
    return subprocess.run(pio_command(*args), capture_output=True, text=True, env=env, timeout=600)


def test_install_list_and_uninstall_through_pio(unit):
    env, wheel = unit
    installed = pio(env, "plugins", "install", "reactorkit-hello-plugin", "--source", str(wheel))
    assert installed.returncode == 0, installed.stderr
    assert "installed reactorkit-hello-plugin 1.2.3" in installed.stdout
    listed = {p["name"]: p for p in json.loads(pio(env, "plugins", "list", "--json").stdout)}
    assert listed["reactorkit-hello-plugin"]["errors"] == []
    assert "hello_job" in pio(env, "run", "--help").stdout  # the CLI index noticed the install
    removed = pio(env, "plugins", "uninstall", "reactorkit-hello-plugin")
    assert removed.returncode == 0, removed.stderr
    assert "reactorkit-hello-plugin" not in {p["name"] for p in json.loads(pio(env, "plugins", "list", "--json").stdout)}


def test_uninstalling_what_is_not_installed_is_one_clear_line(unit):
    env, _ = unit
    result = pio(env, "plugins", "uninstall", "no-such-plugin")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "Error: Plugin 'no-such-plugin' is not installed. See pio plugins list."]
