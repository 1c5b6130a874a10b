"""Contract: every endpoint of endpoints.tsv for models, experiments, workers, units, logs, time series, media
rates and config (classic aliases included) has a route with a responder for its method (one test per endpoint)."""

import re

import falcon.testing
import pytest

from reactorkit.api.app import create_app
from reactorkit.core.plugins import Registry
from repo_data import spec_endpoints

U = r"\{pioreactor_unit\}"
E = r"\{experiment\}"
COVERED = [
    r"/api/models",
    r"/api/experiments",
    rf"/api/experiments/({E}|latest|active|assignment_count)",
    rf"/api/experiments/{E}/(unit_labels|media_rates|logs|recent_logs|workers|historical_worker_assignments)",
    rf"/api/experiments/{E}/workers/{U}",
    rf"/api/experiments/{E}/time_series/.+",
    r"/api/historical_(media|organisms)",
    r"/api/workers",
    rf"/api/workers/({U}|assignments|discover|setup)",
    rf"/api/workers/{U}/(is_active|model|experiment)",
    rf"/api/workers/{U}/experiments/{E}/(logs|recent_logs|time_series/.+)",
    r"/api/units",
    rf"/api/units/{U}/(logs|system_logs|configuration)",
    rf"/api/units/{U}/experiments/{E}/logs",
    r"/api/logs",
    r"/api/config/.+",
    r"/api/configs(/.+)?",
]


ENDPOINTS = spec_endpoints(COVERED)


@pytest.fixture(scope="module")
def app():
    return create_app(Registry.installed(), unit="leader", leader=True)


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x1", path)


def test_the_covered_endpoints_are_found_in_the_spec():
    assert len(ENDPOINTS) >= 68  # the families above hold this many endpoints in the contract


@pytest.mark.parametrize("method, path", ENDPOINTS, ids=[f"{m} {p}" for m, p in ENDPOINTS])
def test_leader_endpoint_has_a_route(app, method, path):
    found = app._router.find(concrete(path))
    assert found is not None, f"no route for {path}"
    resource = found[0]
    assert hasattr(resource, f"on_{method.lower()}"), f"{path} has no {method} responder"


def test_an_unknown_leader_route_is_a_404_in_the_error_shape(app):
    result = falcon.testing.TestClient(app).simulate_get("/api/experiments/x1/nothing_here")
    assert result.status_code == 404
    assert set(result.json) >= {"error", "cause", "status"} and result.json["status"] == 404


def test_a_worker_has_no_leader_routes(tmp_path, monkeypatch):
    monkeypatch.setenv("DOT_PIOREACTOR", str(tmp_path))
    worker = falcon.testing.TestClient(create_app(Registry.installed(), unit="w1", leader=False))
    result = worker.simulate_get("/api/experiments")
    assert result.status_code == 404 and result.json["status"] == 404
