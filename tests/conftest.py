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


# The test modules that take longest (each over half a minute on 2 cores), slowest first, by file name (so that a
# module keeps its place when it moves). ``./run-tests`` hands modules to its parallel workers in collection order, so
# these start first and the short ones fill in around them, instead of one of them starting last and running alone.
SLOW_FIRST = (
    "test_ui_in_browser.py",
    "test_closed_loop_growth_rate.py",
    "test_demo_command.py",
    "test_openapi_fuzzing.py",
    "test_main_job.py",
    "test_dosing_turbidostat.py",
    "test_unit_drills.py",
    "test_dosing_chemostat.py",
    "test_pio_cluster.py",
    "test_data_path_drills.py",
    "test_launcher.py",
    "test_unit_config.py",
    "test_growth_rate_simulated.py",
    "test_readme_curl.py",
)


def pytest_collection_modifyitems(config, items):
    """Put the modules named in ``SLOW_FIRST`` first, in its order (the rest keep theirs)."""
    rank = {name: i for i, name in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(SLOW_FIRST)))


@pytest.fixture(autouse=True)
def _forget_the_process_clock():
    """After each test, forget the process-wide clock it built (its speed-up and origin): the next test's
    in-process code builds its own from its environment."""
    yield
    from reactorkit.core.clock import set_clock

    set_clock(None)


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
