"""The plugin manager: hooks, validation, failures, overrides, sources of plugins."""

import logging
import subprocess
import sys
from importlib.metadata import entry_points

import pytest

from reactorkit.builtin_plugins import stirring
from reactorkit.core.descriptors import (
    AutomationDescriptor,
    CalibrationProtocolDescriptor,
    ChartDescriptor,
    CliCommandDescriptor,
    DatasetDescriptor,
    JobDescriptor,
    RouteDescriptor,
    TableDescriptor,
    TopicMapping,
)
from reactorkit.core.hooks import hookimpl
from reactorkit.core.plugins import Registry, make_plugin_manager
from reactorkit.core.testing import pio_command


class Job:
    pass


def job(name, **kw):
    return JobDescriptor(job_name=name, display_name=name.title(), job_class=Job, **kw)


def test_builtin_plugins_register_through_the_entry_point_group():
    names = {ep.name for ep in entry_points(group="reactorkit.plugins")}
    assert {"stirring", "od_reading", "dosing", "calibrations"} <= names


def test_core_imports_no_builtin_plugin():
    code = (
        "import sys, reactorkit.core.plugins, reactorkit.core.job, reactorkit.core.automation, "
        "reactorkit.core.hardware.simulated, reactorkit.core.cli.main, reactorkit.api.app;"
        "print([m for m in sys.modules if m.startswith('reactorkit.builtin_plugins.')])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_hook_register_jobs_isolates_a_broken_plugin(plugin_manager):
    class Broken:
        @hookimpl
        def register_jobs(self):
            raise RuntimeError("no motor driver on this unit")

    plugin_manager.register(stirring, name="stirring")
    plugin_manager.register(Broken(), name="broken")
    registry = Registry.from_plugins(plugin_manager)
    assert list(registry.jobs) == ["stirring"]
    assert registry.failures[0].plugin == "broken"
    assert "no motor driver" in registry.failures[0].error


def test_an_invalid_record_is_reported_with_the_plugin_name(plugin_manager):
    class Sloppy:
        @hookimpl
        def register_jobs(self):
            yield {"job_name": "not a descriptor"}

    plugin_manager.register(Sloppy(), name="sloppy")
    registry = Registry.from_plugins(plugin_manager)
    assert registry.jobs == {}
    assert registry.failures[0].plugin == "sloppy"
    assert "JobDescriptor" in registry.failures[0].error


def test_a_record_failing_validation_is_reported(plugin_manager):
    class BadName:
        @hookimpl
        def register_jobs(self):
            yield job("Bad-Name")

    plugin_manager.register(BadName(), name="badname")
    registry = Registry.from_plugins(plugin_manager)
    assert registry.jobs == {}
    assert "snake_case" in registry.failures[0].error


def test_a_third_party_plugin_overrides_a_builtin_and_the_override_is_logged(plugin_manager, caplog):
    class Override:
        @hookimpl
        def register_jobs(self):
            yield job("stirring", description="faster stirring")

    plugin_manager.register(Override(), name="aaa_override")  # sorts before "stirring" by name
    plugin_manager.register(stirring, name="stirring")
    registry = Registry.from_plugins(plugin_manager)
    registry.plugins["stirring"].is_builtin = True
    with caplog.at_level(logging.WARNING, logger="reactorkit.plugins"):
        jobs = registry.jobs
    assert jobs["stirring"].description == "faster stirring"
    assert jobs["stirring"].source == "aaa_override"
    assert "overrides" in caplog.text


@pytest.mark.parametrize(
    "hook, record, attribute",
    [
        ("register_automations", AutomationDescriptor(automation_type="dosing", automation_name="x", display_name="X", automation_class=Job), "automations"),
        ("register_charts", ChartDescriptor(chart_key="x", data_source="t", title="X"), "charts"),
        ("register_datasets", DatasetDescriptor(dataset_name="x", display_name="X", table="t"), "datasets"),
        ("register_calibration_protocols", CalibrationProtocolDescriptor(target_device="media_pump", protocol_name="p", title="P"), "calibration_protocols"),
        ("register_storage", TableDescriptor(table="t", create_sql="CREATE TABLE t (a)"), "tables"),
        ("register_storage", TopicMapping(topic="pioreactor/+/+/x", table="t", parse=len), "topic_mappings"),
        ("register_routes", RouteDescriptor(path="/unit_api/x", resource=object()), "routes"),
        ("register_cli_commands", CliCommandDescriptor(name="x", command="click:echo"), "cli_commands"),
    ],
)
def test_every_hook_collects_its_records(plugin_manager, hook, record, attribute):
    plugin = type("P", (), {hook: hookimpl(lambda self: [record])})()
    plugin_manager.register(plugin, name="p")
    collected = getattr(Registry.from_plugins(plugin_manager), attribute)
    values = collected["dosing"].values() if attribute == "automations" else (collected.values() if isinstance(collected, dict) else collected)
    assert [r.key for r in values] == [record.key]
    assert all(r.source == "p" for r in values)


def test_a_file_plugin_in_the_plugins_folder_is_loaded(tmp_path):
    (tmp_path / "greeter.py").write_text(
        "from reactorkit.core.hooks import hookimpl\n"
        "from reactorkit.core.descriptors import JobDescriptor\n"
        "__plugin_name__ = 'greeter'\n__plugin_version__ = '0.3'\n"
        "@hookimpl\ndef register_jobs():\n"
        "    yield JobDescriptor(job_name='greet', display_name='Greet', job_class='x:Y')\n"
    )
    registry = Registry.from_plugins(*make_plugin_manager(plugins_dir=tmp_path))
    assert "greet" in registry.jobs
    assert registry.plugins["greeter"].version == "0.3"
    assert registry.plugins["greeter"].source == "plugins/greeter.py"


def test_a_file_plugin_that_fails_to_import_is_listed_with_its_error(tmp_path):
    (tmp_path / "broken.py").write_text("raise ImportError('needs a library that is not installed')\n")
    registry = Registry.from_plugins(*make_plugin_manager(plugins_dir=tmp_path))
    assert "stirring" in registry.jobs  # everything else keeps working
    assert any("not installed" in e for e in registry.plugins["broken"].errors)


def test_pio_plugins_list_shows_a_broken_file_plugin(tmp_path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "broken.py").write_text("1/0\n")
    env = {**__import__("os").environ, "DOT_PIOREACTOR": str(tmp_path)}
    out = subprocess.run(pio_command("plugins", "list"), capture_output=True, text=True, env=env, check=True).stdout
    line = next(l for l in out.splitlines() if l.startswith("broken"))
    assert "FAILED" in line and "ZeroDivisionError" in line
    assert any(l.startswith("stirring") and l.rstrip().endswith("ok") for l in out.splitlines())
