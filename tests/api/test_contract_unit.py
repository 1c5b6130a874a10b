"""Contract: every endpoint of endpoints.tsv for jobs, tasks, descriptors, capabilities, versions, health,
clocks and blink has a route with a responder for its method (one test per endpoint)."""

import re

import falcon.testing
import pytest

from reactorkit.api.app import create_app
from reactorkit.core.plugins import Registry
from repo_data import spec_endpoints

# Paths (after the /api or /unit_api root) that this part of the API covers.
COVERED = [
    r"/unit_api/jobs(/.*)?",
    r"/unit_api/long_running_jobs/running",
    r"/unit_api/task_results/\{task_id\}",
    r"/unit_api/(capabilities|health|versions/app|system/utc_clock)",
    r"/unit_api/(jobs|settings)/descriptors",
    r"/unit_api/automations/descriptors/\{automation_type\}",
    r"/api/(jobs|charts|settings)/descriptors",
    r"/api/automations/descriptors/\{automation_type\}",
    r"/api/datasets/exportable",
    r"/api/(workers|units)/\{pioreactor_unit\}/jobs/(running|run/.*|stop/.*|update/.*|settings/.*)",
    r"/api/(workers|units)/\{pioreactor_unit\}/capabilities",
    r"/api/units/\{pioreactor_unit\}/(versions/app|system/utc_clock)",
    r"/api/system/utc_clock",
    r"/api/workers/\{pioreactor_unit\}/blink",
    r"/api/workers/\{pioreactor_unit\}/(jobs|settings)/descriptors",
    r"/api/workers/\{pioreactor_unit\}/automations/descriptors/\{automation_type\}",
    r"/api/contrib/(jobs|charts|exportable_datasets)",
    r"/api/contrib/automations/\{automation_type\}",
]


ENDPOINTS = spec_endpoints(COVERED)


@pytest.fixture(scope="module")
def app():
    return create_app(Registry.installed(), unit="leader", leader=True)


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x1", path)


def test_the_covered_endpoints_are_found_in_the_spec():
    assert len(ENDPOINTS) >= 60  # the families above hold this many endpoints in the contract


@pytest.mark.parametrize("method, path", ENDPOINTS, ids=[f"{m} {p}" for m, p in ENDPOINTS])
def test_endpoint_has_a_route(app, method, path):
    found = app._router.find(concrete(path))
    assert found is not None, f"no route for {path}"
    resource = found[0]
    assert hasattr(resource, f"on_{method.lower()}"), f"{path} has no {method} responder"


def test_an_unknown_route_is_a_404_in_the_error_shape(app):
    result = falcon.testing.TestClient(app).simulate_get("/api/workers/x1/jobs/nothing_here")
    assert result.status_code == 404
    assert result.json["status"] == 404 and result.json["error"] and result.json["cause"]
