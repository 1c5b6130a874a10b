"""A task run by ``pio worker`` (real rq worker on the test Redis DB, its own queue) reads the config files as they
are when it starts: a config saved through the API after the worker started is the one the next task sees. The
worker read the files as it started, and each task's work horse (a fork of it) used that copy."""

from __future__ import annotations

import subprocess
import uuid

import falcon.testing
import pytest

from reactorkit.api.app import create_app
from reactorkit.core.plugins import Registry
from reactorkit.core.testing import pio_command, stop_process

pytestmark = pytest.mark.integration

TASK = "reactorkit.core.config.get_leader_hostname"  # () -> [cluster.topology] leader_hostname
WAIT_S = 60  # the longest wait for a task's result (a limit on waiting for the event, not an expected duration)


@pytest.fixture
def unit(unit_env, monkeypatch):
    """This test's unit (the test Redis DB, a queue of its own), its variables in this process too (the API's
    in-process app saves its files)."""
    unit_env.extra["REACTORKIT_QUEUE_PREFIX"] = f"c{uuid.uuid4().hex[:8]}-"
    for key, value in unit_env.env().items():
        if key in ("DOT_PIOREACTOR", "HOSTNAME", "REDIS_URL", "REACTORKIT_QUEUE_PREFIX", "MQTT_TOPIC_PREFIX",
                   "HARDWARE"):
            monkeypatch.setenv(key, value)
    for key in ("GLOBAL_CONFIG", "LOCAL_CONFIG"):
        monkeypatch.delenv(key, raising=False)
    unit_env.write_config("[cluster.topology]\nleader_hostname = first-leader\nleader_address = 127.0.0.1\n")
    return unit_env


@pytest.fixture
def worker(unit):
    env = unit.env()
    for key in ("GLOBAL_CONFIG", "LOCAL_CONFIG"):
        env.pop(key, None)
    log = open(unit.root / "worker.log", "wb")
    proc = subprocess.Popen(pio_command("worker"), env=env, stdout=log, stderr=subprocess.STDOUT)
    yield proc
    stop_process(proc)
    log.close()


def _run(unit) -> str:
    """Queue :data:`TASK` on the unit's queue and return its result (waits on the result stream)."""
    from reactorkit.core.tasks import get_queue

    job = get_queue(unit.unit).enqueue(TASK, result_ttl=600)
    result = job.latest_result(timeout=WAIT_S)
    assert result is not None, (unit.root / "worker.log").read_text()
    assert result.type == result.Type.SUCCESSFUL, result.exc_string
    return result.return_value


def test_a_task_sees_a_unit_config_saved_through_the_api_after_the_worker_started(unit, worker):
    assert _run(unit) == "first-leader"
    api = falcon.testing.TestClient(create_app(Registry.installed(), unit=unit.unit, leader=False))
    saved = api.simulate_patch("/unit_api/config/specific",
                               json={"code": "[cluster.topology]\nleader_hostname = second-leader\n"})
    assert saved.status_code == 200, saved.text
    assert _run(unit) == "second-leader"
