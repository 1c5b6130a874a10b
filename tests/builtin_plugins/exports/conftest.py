"""Fixtures: an in-process leader API with its own state folder, and its rq queue run in this process."""

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
    unit_env.unit = f"leader{uuid.uuid4().hex[:6]}"
    env = unit_env.env()
    for key in _ENV_KEYS:
        monkeypatch.setenv(key, env[key])
    unit_env.write_config(f"[cluster.topology]\nleader_hostname = {unit_env.unit}\nleader_address = 127.0.0.1\n")
    set_config(None)
    yield unit_env
    try:
        from reactorkit.core.tasks import get_queue

        get_queue(unit_env.unit).delete(delete_jobs=True)
    except Exception:
        pass
    set_config(None)


@pytest.fixture
def leader_client(leader_env):
    return falcon.testing.TestClient(create_app(Registry.installed(), unit=leader_env.unit, leader=True))


@pytest.fixture
def run_tasks(leader_env):
    """Execute everything queued for the leader with a real rq worker in this process."""

    def run():
        from redis import Redis
        from rq import Queue, SimpleWorker

        from reactorkit.core.tasks import queue_name, redis_url

        connection = Redis.from_url(redis_url())
        SimpleWorker([Queue(queue_name(leader_env.unit), connection=connection)], connection=connection).work(burst=True)

    return run
