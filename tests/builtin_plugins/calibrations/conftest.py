"""Fixtures for the calibrations plugin: a simulated unit applied to this process and API clients."""

import uuid

import falcon.testing
import pytest

from reactorkit.api.app import create_app
from reactorkit.core.clock import Clock, set_clock
from reactorkit.core.config import set_config
from reactorkit.core.plugins import Registry

_ENV_KEYS = ("DOT_PIOREACTOR", "HOSTNAME", "EXPERIMENT", "MQTT_TOPIC_PREFIX", "REDIS_URL", "HARDWARE",
             "REACTORKIT_SPEEDUP", "REACTORKIT_CLOCK_ORIGIN")

SPEEDUP = 25.0


@pytest.fixture
def cal_env(unit_env, monkeypatch):
    """``unit_env`` applied to this process: own folder and unit name (so its simulated vessel is fresh),
    a clock running ``SPEEDUP`` times faster, and actions run in this process."""
    unit_env.unit = f"cal{uuid.uuid4().hex[:8]}"
    unit_env.speedup = SPEEDUP
    env = unit_env.env()
    for key in _ENV_KEYS:
        monkeypatch.setenv(key, env[key])
    (unit_env.root / "unit_config.ini").write_text("[calibrations]\naction_runner = inline\n")
    set_config(None)
    set_clock(Clock(speedup=SPEEDUP))
    yield unit_env
    set_clock(None)
    set_config(None)


@pytest.fixture
def make_client(cal_env):
    """``make_client(config_text=None, leader=False)``: an in-process API of this unit, built after
    ``config_text`` (extra ``config.ini`` content) is written, with the installed plugins."""

    def make(config_text: str | None = None, leader: bool = False) -> falcon.testing.TestClient:
        if config_text is not None:
            (cal_env.root / "config.ini").write_text(config_text)
        set_config(None)
        return falcon.testing.TestClient(create_app(Registry.installed(), unit=cal_env.unit, leader=leader))

    return make


@pytest.fixture
def client(make_client):
    return make_client()
