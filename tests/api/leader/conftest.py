"""Fixtures for the leader API: an in-process leader app on its own database, and recorded side effects."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import falcon.testing
import pytest

from reactorkit.api.app import create_app
from reactorkit.builtin_plugins import dosing, growth_rate, mqtt_to_db, od_reading, stirring
from reactorkit.core.clock import Clock, set_clock
from reactorkit.core.config import load_config, set_config
from reactorkit.core.descriptors import TableDescriptor, TimeSeries
from reactorkit.core.hooks import hookimpl
from reactorkit.core.plugins import Registry
from reactorkit.core.testing import TEST_REDIS_DB

LEADER = "leader"


class TemperatureTable:
    """Declares ``temperature_readings`` as the temperature plugin does (domain facts §4.1)."""

    @hookimpl
    def register_storage(self):
        yield TableDescriptor(
            table="temperature_readings",
            create_sql="CREATE TABLE IF NOT EXISTS temperature_readings (experiment TEXT NOT NULL,"
                       " pioreactor_unit TEXT NOT NULL, timestamp TEXT NOT NULL, temperature_c REAL NOT NULL)",
            time_series=TimeSeries(value_column="temperature_c", decimals=2),
        )


@dataclass
class Effects:
    """What the API asked the workers and the broker to do (a recording fake of ``effects``)."""

    fan_outs: list[tuple[str, list[str], str, Any]] = field(default_factory=list)
    assignments: list[tuple[str, str | None]] = field(default_factory=list)

    def stops_for(self, unit: str) -> list[tuple[str, Any]]:
        return [(path, body) for _, units, path, body in self.fan_outs if unit in units]


@pytest.fixture
def effects(monkeypatch) -> Effects:
    from reactorkit.api.leader import effects as module

    recorded = Effects()

    def fan_out_in_background(method, units, path, body=None):
        recorded.fan_outs.append((method, sorted(units), path, body))
        return {"unit": LEADER, "task_id": "t1", "result_url_path": "/unit_api/task_results/t1", "status": "accepted"}

    def publish_assignment(unit, experiment, assigned_at, updated_at, config=None):
        recorded.assignments.append((unit, experiment))
        return True

    monkeypatch.setattr(module, "fan_out_in_background", fan_out_in_background)
    monkeypatch.setattr(module, "publish_assignment", publish_assignment)
    return recorded


@pytest.fixture
def leader_env(tmp_path, monkeypatch):
    """A leader named ``leader`` with its own ``$DOT_PIOREACTOR``, MQTT prefix and the test Redis DB."""
    root = tmp_path / "leader"
    root.mkdir()
    (root / "config.ini").write_text(
        f"[cluster.topology]\nleader_hostname = {LEADER}\nleader_address = 127.0.0.1\n\n[mqtt]\nbroker_address = 127.0.0.1\n"
    )
    monkeypatch.setenv("DOT_PIOREACTOR", str(root))
    monkeypatch.setenv("HOSTNAME", LEADER)
    monkeypatch.setenv("MQTT_TOPIC_PREFIX", f"t{uuid.uuid4().hex[:10]}/")
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:6379/{TEST_REDIS_DB}")
    monkeypatch.delenv("GLOBAL_CONFIG", raising=False)
    monkeypatch.delenv("LOCAL_CONFIG", raising=False)
    set_config(None)
    set_clock(Clock(1.0))
    yield root
    set_config(None)
    set_clock(None)


@pytest.fixture
def registry(plugin_manager):
    for module, name in ((od_reading, "od_reading"), (growth_rate, "growth_rate"), (stirring, "stirring"),
                         (dosing, "dosing"), (mqtt_to_db, "mqtt_to_db")):
        plugin_manager.register(module, name=name)
    plugin_manager.register(TemperatureTable(), name="temperature_table")
    return Registry.from_plugins(plugin_manager)


@pytest.fixture
def leader_app(leader_env, registry, effects):
    app = create_app(registry, config=load_config(), unit=LEADER, leader=True)
    yield app
    app.context.leader_api.db.close()


@pytest.fixture
def api(leader_app):
    """A TestClient of the leader app."""
    return falcon.testing.TestClient(leader_app)


@pytest.fixture
def db(leader_app):
    """The leader database behind ``api``."""
    return leader_app.context.leader_api.db


@pytest.fixture
def writer(db):
    """A connection like the MQTT writer's (foreign keys off) to insert readings."""
    from reactorkit.core.leader_db import connect

    conn = connect(db.path, foreign_keys=False)
    yield conn
    conn.close()


class Cluster:
    """Shortcuts to set up experiments, workers and assignments through the API (asserting each succeeds)."""

    def __init__(self, api) -> None:
        self.api = api

    def experiment(self, name: str = "exp1", **extra: Any) -> dict:
        result = self.api.simulate_post("/api/experiments", json={"experiment": name, **extra})
        assert result.status_code == 201, result.text
        return result.json

    def worker(self, unit: str, **extra: Any) -> None:
        result = self.api.simulate_put("/api/workers", json={"pioreactor_unit": unit, **extra})
        assert result.status_code == 201, result.text

    def assign(self, unit: str, experiment: str) -> None:
        result = self.api.simulate_put(f"/api/experiments/{experiment}/workers", json={"pioreactor_unit": unit})
        assert result.status_code == 200, result.text


@pytest.fixture
def cluster(api) -> Cluster:
    return Cluster(api)
