"""A plugin's table that declares time_series gets an index, a rollup, a named series and its OpenAPI entry."""

from __future__ import annotations

import falcon.testing

from reactorkit.api.app import create_app
from reactorkit.core.clock import get_clock, utc_iso_ms
from reactorkit.core.config import set_config
from reactorkit.core.descriptors import TableDescriptor, TimeSeries
from reactorkit.core.hooks import hookimpl
from reactorkit.core.plugins import Registry


class PhPlugin:
    @hookimpl
    def register_storage(self):
        yield TableDescriptor(
            table="ph_readings",
            create_sql="CREATE TABLE IF NOT EXISTS ph_readings (experiment TEXT NOT NULL, pioreactor_unit TEXT NOT NULL,"
                       " timestamp TEXT NOT NULL, ph REAL NOT NULL)",
            time_series=TimeSeries(value_column="ph", decimals=2),
        )
        yield TableDescriptor(table="ph_notes", create_sql="CREATE TABLE IF NOT EXISTS ph_notes (experiment TEXT)")


def make_app(plugin_manager, tmp_path, monkeypatch):
    monkeypatch.setenv("DOT_PIOREACTOR", str(tmp_path))
    set_config(None)
    plugin_manager.register(PhPlugin(), name="ph")
    return create_app(Registry.from_plugins(plugin_manager), unit="leader1", leader=True)


def test_a_plugin_time_series_is_indexed_rolled_up_and_served(plugin_manager, tmp_path, monkeypatch):
    app = make_app(plugin_manager, tmp_path, monkeypatch)
    db = app.context.leader_db
    assert "ph_readings_ts_ix" in [r["name"] for r in db.query("SELECT name FROM pragma_index_list('ph_readings')")]
    assert db.rollup_ready("ph_readings")
    assert not db.rollup_ready("ph_notes")
    db.execute("INSERT INTO experiments (experiment, created_at) VALUES ('exp1', '2026-01-01T00:00:00.000Z')")
    now = get_clock().now()
    for unit, ph in (("w2", 7.123), ("w1", 6.987)):
        db.execute("INSERT INTO ph_readings VALUES ('exp1', ?, ?, ?)", (unit, utc_iso_ms(now - 5), ph))
    client = falcon.testing.TestClient(app)
    body = client.simulate_get("/api/experiments/exp1/time_series/ph_readings").json
    assert body["series"] == ["w1", "w2"]
    assert [points[0]["y"] for points in body["data"]] == [6.99, 7.12]
    assert client.simulate_get("/api/experiments/exp1/time_series/ph_notes").status_code == 404


def test_the_named_series_is_in_the_openapi_document(plugin_manager, tmp_path, monkeypatch):
    app = make_app(plugin_manager, tmp_path, monkeypatch)
    paths = falcon.testing.TestClient(app).simulate_get("/api/openapi.json").json["paths"]
    assert paths["/api/experiments/{experiment}/time_series/ph_readings"]["get"]["summary"] == (
        "The ph_readings series of the experiment, one per unit.")
    assert paths["/api/workers/{pioreactor_unit}/experiments/{experiment}/time_series/ph_readings"]["get"]["summary"] == (
        "One worker's ph_readings series.")
    assert "/api/experiments/{experiment}/time_series/ph_notes" not in paths
