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
    from reactorkit.api import fanout

    fanout._DBS.clear()
    yield unit_env
    fanout._DBS.clear()
    set_config(None)


@pytest.fixture
def leader_client(leader_env):
    return falcon.testing.TestClient(create_app(Registry.installed(), unit=leader_env.unit, leader=True))


# ------------------------------------------------------------ a real cluster
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from reactorkit.core.testing import pio_command, stop_process


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Node:
    """One unit of a local test cluster: its folder, port and environment."""

    name: str
    root: Path
    port: int
    env: dict = field(default_factory=dict)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"


class LocalCluster:
    """A leader and workers on this machine: each runs ``pio serve`` (gunicorn) and ``pio worker`` (rq),
    with its own ``$DOT_PIOREACTOR``, port and rq queue; all share the test's MQTT prefix and clock."""

    def __init__(self, unit_env, tmp_path, workers=("worker1",)):
        tag = uuid.uuid4().hex[:6]
        self.unit_env = unit_env
        self.leader = Node(f"leader{tag}", tmp_path / "leader", free_port())
        self.workers = [Node(f"{w}{tag}", tmp_path / w, free_port()) for w in workers]
        self.procs = []
        config = (f"[cluster.topology]\nleader_hostname = {self.leader.name}\nleader_address = 127.0.0.1:{self.leader.port}\n"
                  "[cluster.addresses]\n" + "".join(f"{n.name} = 127.0.0.1:{n.port}\n" for n in self.nodes))
        for node in self.nodes:
            node.root.mkdir(parents=True)
            (node.root / "config.ini").write_text(config)
            node.env = unit_env.env(DOT_PIOREACTOR=str(node.root), HOSTNAME=node.name,
                                    REACTORKIT_QUEUE_PREFIX=f"t{tag}-")
            node.env.pop("EXPERIMENT", None)

    @property
    def nodes(self):
        return [self.leader, *self.workers]

    def start(self):
        for node in self.nodes:
            for args in (("serve", "--port", str(node.port), "--workers", "1"), ("worker",)):
                log = open(node.root / f"{args[0]}.log", "wb")
                self.procs.append(subprocess.Popen(pio_command(*args), env=node.env, stdout=log,
                                                   stderr=subprocess.STDOUT))
        deadline = time.monotonic() + 40
        for node in self.nodes:
            while True:
                try:
                    httpx.get(f"{node.url}/unit_api/health", timeout=1).raise_for_status()
                    break
                except httpx.HTTPError:
                    assert time.monotonic() < deadline, f"{node.name} did not start: " + \
                        (node.root / "serve.log").read_text()[-2000:]
                    time.sleep(0.2)
        return self

    def leader_db(self):
        from reactorkit.core.leader_db import LeaderDB
        from reactorkit.core.plugins import Registry

        return LeaderDB(self.leader.root / "storage" / "pioreactor.sqlite", registry=Registry.installed())

    def wait_task(self, node, accepted, timeout=60):
        """Poll a 202 task envelope on ``node`` until it is done; returns the final body."""
        deadline = time.monotonic() + timeout
        while True:
            body = httpx.get(node.url + accepted["result_url_path"], timeout=5).json()
            if body["status"] in ("succeeded", "failed"):
                return body
            assert time.monotonic() < deadline, f"task still {body['status']}"
            time.sleep(0.2)

    def stop(self):
        for node in self.nodes:  # jobs the test left behind
            env = node.env
            subprocess.run(pio_command("kill", "--all-jobs"), env=env, capture_output=True, timeout=30)
            subprocess.run(pio_command("kill", "--job-name", "experiment_profile"), env=env, capture_output=True,
                           timeout=30)
        for proc in self.procs:
            stop_process(proc)


@pytest.fixture
def local_cluster(unit_env, tmp_path):
    cluster = LocalCluster(unit_env, tmp_path)
    try:
        yield cluster
    finally:
        cluster.stop()
