"""Shared fixtures: the reactorkit test kit plus a bare plugin manager and API client."""

import os

import falcon.testing
import pytest

from reactorkit.api.app import create_app
from reactorkit.core.plugins import Registry, make_plugin_manager

pytest_plugins = ["reactorkit.core.testing"]

# `pio cluster up` and `pio demo` install the web UI from the package index when missing; tests that want it
# (tests/core/webui) ask for it, the others start their clusters without it.
os.environ.setdefault("REACTORKIT_UI_INSTALL", "0")
# In-process apps of the API tests run without authentication (as with `[api] auth = off`); tests/api/security
# checks authentication on every operation, and clusters (LocalCluster, `pio cluster up`) always run with it on.
os.environ.setdefault("REACTORKIT_API_AUTH", "off")


@pytest.fixture
def plugin_manager():
    """Our hookspecs and no installed plugins."""
    pm, _ = make_plugin_manager(load_installed=False)
    return pm


@pytest.fixture
def client(plugin_manager, tmp_path, monkeypatch):
    """An in-process API client for a unit named ``testunit`` (not the leader)."""
    monkeypatch.setenv("DOT_PIOREACTOR", str(tmp_path))
    return falcon.testing.TestClient(create_app(Registry.from_plugins(plugin_manager), unit="testunit", leader=False))
