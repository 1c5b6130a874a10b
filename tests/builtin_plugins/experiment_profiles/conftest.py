"""Fixtures: an in-process leader API whose state folder is the test's own."""

import uuid

import falcon.testing
import pytest

from reactorkit.api.app import create_app
from reactorkit.core.config import set_config
from reactorkit.core.plugins import Registry

_ENV_KEYS = ("DOT_PIOREACTOR", "HOSTNAME", "EXPERIMENT", "MQTT_TOPIC_PREFIX", "REDIS_URL", "HARDWARE",
             "REACTORKIT_SPEEDUP", "REACTORKIT_CLOCK_ORIGIN")


@pytest.fixture
def leader_env(unit_env, monkeypatch):
    """``unit_env`` applied to this process as a leader named after itself."""
    unit_env.unit = f"leader{uuid.uuid4().hex[:6]}"
    env = unit_env.env()
    for key in _ENV_KEYS:
        monkeypatch.setenv(key, env[key])
    unit_env.write_config(f"[cluster.topology]\nleader_hostname = {unit_env.unit}\nleader_address = 127.0.0.1\n")
    set_config(None)
    yield unit_env
    set_config(None)


@pytest.fixture
def leader_client(leader_env):
    return falcon.testing.TestClient(create_app(Registry.installed(), unit=leader_env.unit, leader=True))


# ------------------------------------------------------------ a real cluster
from reactorkit.core.testing import LocalCluster


@pytest.fixture
def local_cluster(unit_env, tmp_path):
    """A leader and ``worker1`` (gunicorn + rq each) on the test's MQTT prefix; started by the test."""
    cluster = LocalCluster(tmp_path / "cluster", ["worker1"], prefix=unit_env.prefix, speedup=unit_env.speedup)
    try:
        yield cluster
    finally:
        cluster.stop()
