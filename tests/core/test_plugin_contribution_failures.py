"""Every contribution that fails (route, table, topic mapping, CLI command) is listed with its plugin and error."""

from __future__ import annotations

import json
import subprocess
import textwrap

from reactorkit.core.plugins import Registry, make_plugin_manager
from reactorkit.core.testing import pio_command

BROKEN = textwrap.dedent('''
    from reactorkit.plugin import (CliCommandDescriptor, RouteDescriptor, TableDescriptor, TopicMapping, hookimpl)

    __plugin_name__ = "ph"

    @hookimpl
    def register_routes():
        yield RouteDescriptor(path="/api/ph", resource="ph_missing.api:Readings")

    @hookimpl
    def register_storage():
        yield TableDescriptor(table="ph_readings", create_sql="CREATE TABLE IF NOT EXISTS ph_readings (ph REAL,")
        yield TopicMapping(topic="pioreactor/+/+/ph_reading/ph", table="ph_readings", parse="ph_missing.parse:row")
        yield TopicMapping(topic="pioreactor/+/+/ph_reading/temp", table="ph_nowhere", parse="json:loads")

    @hookimpl
    def register_cli_commands():
        yield CliCommandDescriptor(name="ph", command="ph_missing.cli:ph")
''')


def test_failed_contributions_are_reported_under_the_plugin(tmp_path):
    (tmp_path / "ph.py").write_text(BROKEN)
    registry = Registry.from_plugins(*make_plugin_manager(plugins_dir=tmp_path)).check_contributions()
    stages = {f.stage: f.error for f in registry.failures if f.plugin == "ph"}
    assert "ModuleNotFoundError" in stages["route /api/ph"]
    assert "ph_missing" in stages["topic pioreactor/+/+/ph_reading/ph"]
    assert "'ph_nowhere' is not declared" in stages["topic pioreactor/+/+/ph_reading/temp"]
    assert "OperationalError" in stages["table ph_readings"]
    assert "ModuleNotFoundError" in stages["cli command ph"]
    assert not [f for f in registry.failures if f.plugin != "ph"]  # the built-ins are all fine


def test_pio_plugins_list_json_shows_them_without_tracebacks(tmp_path):
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "ph.py").write_text(BROKEN)
    env = {"DOT_PIOREACTOR": str(tmp_path)}
    import os

    done = subprocess.run(pio_command("plugins", "list", "--json"), capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=120)
    assert done.returncode == 0, done.stderr
    (ph,) = [p for p in json.loads(done.stdout) if p["name"] == "ph"]
    assert len(ph["errors"]) == 5
    assert any(e.startswith("route /api/ph: ModuleNotFoundError") for e in ph["errors"])
    assert not any("Traceback" in e for e in ph["errors"])
