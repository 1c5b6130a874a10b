"""Every example of docs/plugins.md, executed: the files are written out as a plugin project and used."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import falcon.testing
import pytest

from reactorkit.core.plugins import Registry, make_plugin_manager
from reactorkit.core.testing import pio_command

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"
BLOCK = re.compile(r"```python\n(.*?)```", re.S)


def examples() -> dict[str, str]:
    """``{relative path: source}`` of every Python block (each must name its file)."""
    out = {}
    for block in BLOCK.findall(GUIDE.read_text(encoding="utf-8")):
        first, _, body = block.partition("\n")
        assert first.startswith("# file: "), f"a Python example without '# file:' cannot be run:\n{block[:200]}"
        out[first.removeprefix("# file: ").strip()] = block
    return out


@pytest.fixture
def project(tmp_path):
    """The guide's files under ``tmp_path/project`` (``plugins/…``, ``tests/…``)."""
    root = tmp_path / "project"
    for name, source in examples().items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
    return root


@pytest.fixture
def registry(project):
    return Registry.from_plugins(*make_plugin_manager(plugins_dir=project / "plugins")).check_contributions()


def test_every_example_names_its_file_and_the_job_fits_in_25_lines():
    files = examples()
    assert {"plugins/ph_reading.py", "plugins/ph_light.py", "plugins/ph_storage.py", "plugins/ph_calibration.py",
            "plugins/ph_api.py", "plugins/ph_cli.py", "plugins/ph_config.py", "tests/conftest.py",
            "tests/test_ph_reading.py"} == set(files)
    job = files["plugins/ph_reading.py"].splitlines()[1:]  # the "# file:" line aside
    assert len(job) <= 25, len(job)


def test_the_examples_register_everything_without_a_failure(registry):
    assert [f"{f.plugin}: {f.stage}: {f.error}" for f in registry.failures] == []
    assert registry.jobs["ph_reading"].published_settings[0].unit == "pH"
    assert [o.min for o in registry.jobs["ph_reading"].cli_options] == [0.5]
    assert "pulse" in registry.automations["led"]
    assert registry.tables["ph_readings"].time_series.value_column == "ph"
    assert registry.charts["ph"].data_source == "ph_readings"
    assert registry.datasets["ph_readings"].column_units == {"ph": "pH"}
    assert "ph_probe_buffer_offset" in registry.calibration_protocols
    assert "/api/experiments/{experiment}/ph/latest" in registry.routes
    assert "ph-offset" in registry.cli_commands
    assert [s.section for s in registry.config_sections] == ["ph_reading.config"]


def test_the_storage_route_and_named_series_work_on_a_leader(registry, tmp_path, monkeypatch):
    from reactorkit.api.app import create_app
    from reactorkit.core.config import set_config

    monkeypatch.setenv("DOT_PIOREACTOR", str(tmp_path / "leader"))
    set_config(None)
    app = create_app(registry, unit="leader1", leader=True)
    db = app.context.leader_db
    db.execute("INSERT INTO experiments (experiment, created_at) VALUES ('exp1', '2026-01-01T00:00:00.000Z')")
    (mapping,) = [m for m in registry.topic_mappings if m.table == "ph_readings"]
    row = mapping.parse("pioreactor/w1/exp1/ph_reading/ph", b"7.012")
    db.execute("INSERT INTO ph_readings (experiment, pioreactor_unit, timestamp, ph) VALUES (?, ?, ?, ?)",
               (row["experiment"], row["pioreactor_unit"], row["timestamp"], row["ph"]))
    client = falcon.testing.TestClient(app)
    latest = client.simulate_get("/api/experiments/exp1/ph/latest")
    assert latest.status_code == 200 and latest.json["ph"] == 7.012
    missing = client.simulate_get("/api/experiments/nothing_here/ph/latest")
    assert missing.status_code == 404 and set(missing.json) == {"error", "cause", "remediation", "status"}
    series = client.simulate_get("/api/experiments/exp1/time_series/ph_readings").json
    assert series["series"] == ["w1"] and series["data"][0][0]["y"] == 7.012
    assert db.rollup_ready("ph_readings")
    set_config(None)


def test_the_calibration_protocol_runs_to_its_result(registry, tmp_path, monkeypatch):
    from reactorkit.core.calibration_sessions import SessionEngine
    from reactorkit.core.config import load_config

    monkeypatch.setenv("DOT_PIOREACTOR", str(tmp_path / "unit"))
    descriptor = registry.calibration_protocols["ph_probe_buffer_offset"]
    engine = SessionEngine({("ph_probe", "buffer_offset"): descriptor.session_class}, runner=None, unit="u1",
                           config=load_config())
    session, step = engine.start("ph_probe", "buffer_offset")
    assert step["step_id"] == "intro"
    session, step = engine.advance(session["session_id"], {})
    assert step["step_id"] == "reading"
    session, step = engine.advance(session["session_id"], {"reading": 6.9})
    assert session["status"] == "complete" and session["result"] == {"offset": 0.1}


def test_the_cli_command_runs_through_pio(project):
    env = {**os.environ, "DOT_PIOREACTOR": str(project)}
    done = subprocess.run(pio_command("ph-offset", "6.9"), capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "offset: +0.10 pH"


def test_the_default_config_is_merged_without_overwriting(registry, tmp_path):
    from reactorkit.core.config_defaults import merge_config_sections

    config = tmp_path / "config.ini"
    config.write_text("[ph_reading.config]\ninterval = 30\n")
    assert merge_config_sections(config, registry.config_sections) == ["ph_reading.config.probe_offset"]
    assert "interval = 30" in config.read_text()


@pytest.mark.integration
def test_the_kit_example_runs_the_job_as_a_real_process(project):
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "--strict-markers", "-p", "no:cacheprovider",
                           str(project / "tests")], cwd=project, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout
