"""A plugin that fails to register its jobs is tried again at the next call, not hidden by a saved CLI index."""

from __future__ import annotations

import json

import pytest

from reactorkit.core.cli import index

LATE_PLUGIN = (
    "import os\n"
    "from reactorkit.plugin import JobDescriptor, hookimpl\n"
    "__plugin_name__ = 'late_ph'\n"
    "@hookimpl\ndef register_jobs():\n"
    "    if not os.path.exists(os.path.join(os.environ['DOT_PIOREACTOR'], 'late_ph_ready')):\n"
    "        raise RuntimeError('its probe settings are not there yet')\n"
    "    yield JobDescriptor(job_name='late_ph_reading', display_name='pH', description='Reads pH.',\n"
    "                        job_class='reactorkit.core.job:BackgroundJob')\n"
)


@pytest.fixture
def unit_root(tmp_path, monkeypatch):
    monkeypatch.setenv("DOT_PIOREACTOR", str(tmp_path))
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "late_ph.py").write_text(LATE_PLUGIN)
    return tmp_path


def test_an_index_built_while_a_plugin_fails_is_used_but_not_saved(unit_root):
    first = index.get_index()
    assert "late_ph_reading" not in first["jobs"]
    assert "stirring" in first["jobs"]  # the other plugins' jobs are there for this call
    assert not (unit_root / "storage" / "cli_index.json").exists()


def test_the_plugins_jobs_appear_once_its_failure_passes_without_any_plugin_file_changing(unit_root):
    assert "late_ph_reading" not in index.get_index()["jobs"]
    (unit_root / "late_ph_ready").write_text("")
    assert "late_ph_reading" in index.get_index()["jobs"]
    saved = json.loads((unit_root / "storage" / "cli_index.json").read_text())
    assert "late_ph_reading" in saved["jobs"]  # saved once every plugin registers
    assert "late_ph_reading" in index.get_index()["jobs"]  # and read back from the saved index
