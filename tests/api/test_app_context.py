"""Plugin routes are built with the app's context: registry, config, leader database, fan-out client."""

from __future__ import annotations

import falcon.testing
import pytest

from reactorkit.api.app import create_app
from reactorkit.api.errors import ApiError
from reactorkit.core.config import set_config
from reactorkit.core.descriptors import RouteDescriptor, TableDescriptor
from reactorkit.core.hooks import hookimpl
from reactorkit.core.plugins import Registry
from reactorkit.plugin import RouteResource


class PhReadings(RouteResource):
    def on_get(self, req, resp):
        rows = self.context.leader_db.query("SELECT ph FROM ph_readings ORDER BY ph")
        resp.media = {"unit": self.context.unit, "tables": sorted(self.context.registry.tables),
                      "ph": [r["ph"] for r in rows], "same_db": self.context.leader_db is self.context.db}


class Plain:
    def on_get(self, req, resp):
        resp.media = {"plain": True}


class PhPlugin:
    @hookimpl
    def register_storage(self):
        yield TableDescriptor(table="ph_readings", create_sql="CREATE TABLE IF NOT EXISTS ph_readings (ph REAL)")

    @hookimpl
    def register_routes(self):
        yield RouteDescriptor(path="/api/ph", resource=PhReadings, leader_only=True)
        yield RouteDescriptor(path="/unit_api/plain", resource=Plain)


def leader_app(plugin_manager, tmp_path, monkeypatch):
    monkeypatch.setenv("DOT_PIOREACTOR", str(tmp_path))
    set_config(None)
    plugin_manager.register(PhPlugin(), name="ph")
    return create_app(Registry.from_plugins(plugin_manager), unit="leader1", leader=True)


def test_a_plugin_route_reads_the_apps_registry_and_its_leader_database(plugin_manager, tmp_path, monkeypatch):
    app = leader_app(plugin_manager, tmp_path, monkeypatch)
    app.context.leader_db.execute("INSERT INTO ph_readings (ph) VALUES (7.1), (6.9)")
    body = falcon.testing.TestClient(app).simulate_get("/api/ph").json
    assert body["unit"] == "leader1"
    assert "ph_readings" in body["tables"]
    assert body["ph"] == [6.9, 7.1]
    assert body["same_db"] is True


def test_the_leader_routes_share_the_apps_database(plugin_manager, tmp_path, monkeypatch):
    app = leader_app(plugin_manager, tmp_path, monkeypatch)
    assert app.context.leader_api is app.context
    assert app.context.leader_api.db is app.context.leader_db


def test_a_resource_without_a_context_parameter_is_built_with_no_argument(plugin_manager, tmp_path, monkeypatch):
    app = leader_app(plugin_manager, tmp_path, monkeypatch)
    assert falcon.testing.TestClient(app).simulate_get("/unit_api/plain").json == {"plain": True}


def test_the_fan_out_client_resolves_targets_from_the_apps_database(plugin_manager, tmp_path, monkeypatch):
    app = leader_app(plugin_manager, tmp_path, monkeypatch)
    app.context.leader_db.add_worker("w1")
    assert app.context.fanout.targets("w1", "workers") == ["w1"]
    assert app.context.fanout.targets("$broadcast", "workers") == ["w1"]
    with pytest.raises(ApiError) as info:
        app.context.fanout.targets("nobody", "workers")
    assert info.value.status.startswith("400")


def test_the_core_leader_routes_resolve_targets_from_their_apps_database(plugin_manager, tmp_path, monkeypatch):
    first = leader_app(plugin_manager, tmp_path / "a", monkeypatch)
    first.context.leader_db.add_worker("wa")
    monkeypatch.setenv("DOT_PIOREACTOR", str(tmp_path / "b"))
    set_config(None)
    second = create_app(Registry.from_plugins(plugin_manager), unit="leader2", leader=True)
    second.context.leader_db.add_worker("wb")
    path = "/api/workers/{}/jobs/descriptors"
    # known to the app's own database: proxied (no address, so 502); unknown there: 400
    assert falcon.testing.TestClient(first).simulate_get(path.format("wa")).status_code == 502
    assert falcon.testing.TestClient(first).simulate_get(path.format("wb")).status_code == 400
    assert falcon.testing.TestClient(second).simulate_get(path.format("wb")).status_code == 502
    assert falcon.testing.TestClient(second).simulate_get(path.format("wa")).status_code == 400


def test_the_job_routes_read_the_running_jobs_through_the_apps_job_registry(plugin_manager, tmp_path, monkeypatch):
    import os

    from reactorkit.core.job_registry import JobRegistry

    monkeypatch.setenv("DOT_PIOREACTOR", str(tmp_path))
    set_config(None)
    app = create_app(Registry.from_plugins(plugin_manager), unit="u1", leader=False)
    reader = app.context.job_registry
    assert app.context.job_registry is reader  # opened once per app (and process)
    jobs = JobRegistry(path=reader.path)
    jobs.register(unit="u1", experiment="e", job_name="ph_reading", pid=os.getpid(),
                  started_at="2026-01-01T00:00:00.000Z")
    jobs.close()
    client = falcon.testing.TestClient(app)
    assert [r["job_name"] for r in client.simulate_get("/unit_api/jobs/running").json] == ["ph_reading"]
    assert client.simulate_get("/unit_api/jobs/running/experiments/other").json == []
