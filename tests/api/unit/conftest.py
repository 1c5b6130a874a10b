"""Fixtures for the /unit_api job, task and descriptor routes and their leader variants."""

import os
import uuid

import falcon.testing
import pytest

from reactorkit.api.app import create_app
from reactorkit.core.config import set_config
from reactorkit.core.plugins import Registry

_ENV_KEYS = ("DOT_PIOREACTOR", "HOSTNAME", "EXPERIMENT", "MQTT_TOPIC_PREFIX", "REDIS_URL", "HARDWARE",
             "REACTORKIT_SPEEDUP", "REACTORKIT_CLOCK_ORIGIN")


@pytest.fixture
def api_env(unit_env, monkeypatch):
    """``unit_env`` applied to this process, with a unit name of its own (its own rq queue)."""
    unit_env.unit = f"unit{uuid.uuid4().hex[:8]}"
    env = unit_env.env()
    for key in _ENV_KEYS:
        monkeypatch.setenv(key, env[key])
    set_config(None)
    yield unit_env
    from reactorkit.core.job_registry import JobRegistry
    from reactorkit.core.jobs_control import stop_jobs
    from reactorkit.core.tasks import get_queue

    registry = JobRegistry()
    for row in registry.running():
        if row.pid != os.getpid():  # rows a test registered for itself are not processes to stop
            stop_jobs(job_id=row.job_id, registry=registry)
    registry.close()
    try:
        get_queue(unit_env.unit).delete(delete_jobs=True)
    except Exception:
        pass
    set_config(None)


@pytest.fixture
def installed():
    return Registry.installed()


@pytest.fixture
def unit_client(api_env, installed):
    """In-process client of a worker (no ``/api``)."""
    return falcon.testing.TestClient(create_app(installed, unit=api_env.unit, leader=False))


@pytest.fixture
def leader_client(api_env, installed):
    """In-process client of a leader (``/unit_api`` and ``/api``) whose database lives in ``api_env.root``."""
    return falcon.testing.TestClient(create_app(installed, unit=api_env.unit, leader=True))


def run_queued_tasks(unit):
    """Execute everything queued for ``unit`` with a real rq worker (in this process), then return."""
    from redis import Redis
    from rq import Queue, SimpleWorker

    from reactorkit.core.tasks import queue_name, redis_url

    connection = Redis.from_url(redis_url())
    SimpleWorker([Queue(queue_name(unit), connection=connection)], connection=connection).work(burst=True)


@pytest.fixture
def run_tasks(api_env):
    return lambda: run_queued_tasks(api_env.unit)
