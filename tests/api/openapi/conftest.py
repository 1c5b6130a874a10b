"""Apps for the OpenAPI tests: a leader and a worker built in-process (no server), each with its own state folder."""

from __future__ import annotations

import falcon.testing
import pytest

from reactorkit.api.app import create_app
from reactorkit.core.plugins import Registry


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("dot_pioreactor")
    patch = pytest.MonkeyPatch()
    patch.setenv("DOT_PIOREACTOR", str(root))
    yield root
    patch.undo()


@pytest.fixture(scope="module")
def registry():
    return Registry.installed()


@pytest.fixture(scope="module")
def leader_app(state_dir, registry):
    return create_app(registry, unit="leader", leader=True)


@pytest.fixture(scope="module")
def worker_app(state_dir, registry):
    return create_app(registry, unit="worker1", leader=False)


@pytest.fixture(scope="module")
def client(leader_app):
    return falcon.testing.TestClient(leader_app)


@pytest.fixture(scope="module")
def unit_doc(client):
    return client.simulate_get("/unit_api/openapi.json").json


@pytest.fixture(scope="module")
def api_doc(client):
    return client.simulate_get("/api/openapi.json").json
