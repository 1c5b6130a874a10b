"""reactorkit.plugin: every public name resolves, lazily, and the test kit registers its markers."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import reactorkit.plugin as plugin


def test_every_public_name_resolves_to_the_object_its_module_defines():
    import importlib

    for name in plugin.__all__:
        value = getattr(plugin, name)
        assert value is not None, name
        target = plugin._EXPORTS.get(name)
        if target is not None:
            module, _, attr = target.partition(":")
            assert value is getattr(importlib.import_module(module), attr), name


def test_the_surface_has_the_hook_marker_records_bases_and_http_helpers():
    from reactorkit.core.calibration_sessions import CalibrationProtocol
    from reactorkit.core.hooks import hookimpl
    from reactorkit.core.job import BackgroundJob

    assert plugin.hookimpl is hookimpl
    assert plugin.BackgroundJob is BackgroundJob
    assert plugin.CalibrationProtocol is CalibrationProtocol
    assert issubclass(plugin.DosingAutomationJob, plugin.AutomationJob)
    assert issubclass(plugin.LedAutomationJob, plugin.AutomationJob)
    assert issubclass(plugin.TemperatureAutomationJob, plugin.AutomationJob)
    for name in ("read_body", "body_field", "ApiError", "enqueue_task", "fanout", "RouteResource", "AppContext",
                 "RepeatedTimer", "yields"):
        assert name in plugin.__all__


def test_an_unknown_name_says_where_to_look():
    try:
        plugin.no_such_name  # noqa: B018
    except AttributeError as exc:
        assert "reactorkit.plugin.__all__" in str(exc)
    else:
        raise AssertionError("an unknown name must raise AttributeError")


def test_importing_records_and_the_marker_does_not_load_the_http_app_or_mqtt():
    code = ("import sys\nfrom reactorkit.plugin import hookimpl, JobDescriptor, PublishedSetting\n"
            "print(sorted(m for m in ('falcon', 'paho', 'numpy', 'reactorkit.api', 'reactorkit.core.job') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_kit_registers_its_markers_for_strict_runs(tmp_path: Path):
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["reactorkit.plugin.testing"]\n')
    (tmp_path / "test_marked.py").write_text(textwrap.dedent("""
        import pytest

        @pytest.mark.integration
        def test_marked(unit_env):
            assert unit_env.root.is_dir()
    """))
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "--strict-markers", "-p", "no:cacheprovider",
                             str(tmp_path)], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
