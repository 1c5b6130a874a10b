"""/unit_api/health and /unit_api/versions/app, in-process and under real gunicorn."""

import os
import subprocess
import time

import httpx
import psutil
import pytest

from reactorkit import __version__
from reactorkit.core.cluster import free_port
from reactorkit.core.testing import pio_command, stop_process


def test_health_answers_in_the_contract_shape(client):
    body = client.simulate_get("/unit_api/health").json
    assert body["status"] == "ok"
    assert body["pioreactor_unit"] == "testunit"
    assert body["utc_time"].endswith("Z")


def test_app_version_is_the_package_version(client):
    assert client.simulate_get("/unit_api/versions/app").json == {"version": __version__}


def test_unknown_route_is_a_404_in_the_error_shape(client):
    result = client.simulate_get("/unit_api/no/such/thing")
    assert result.status_code == 404
    assert result.json["status"] == 404
    assert {"error", "cause", "remediation"} <= set(result.json)


@pytest.mark.integration
def test_pio_serve_runs_the_api_under_gunicorn(unit_env):
    port = free_port()
    proc = subprocess.Popen(pio_command("serve", "--port", str(port), "--workers", "1"), env=unit_env.env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/unit_api/health", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.2)
        assert response.json()["pioreactor_unit"] == unit_env.unit
        # pio serve became gunicorn's master (exec), whose worker is gunicorn's threaded one: no gevent under it
        master = psutil.Process(proc.pid)
        assert master.cmdline()[0].startswith("gunicorn: master")
        (worker,) = master.children()
        assert worker.cmdline()[0].startswith("gunicorn: worker")
        assert not any("/gevent/" in m.path for m in worker.memory_maps(grouped=True))  # gevent's C parts
        assert len(worker.threads()) > 1  # the gthread worker's pool beside the main thread
        assert httpx.get(f"http://127.0.0.1:{port}/unit_api/versions/app").json() == {"version": __version__}
    finally:
        assert stop_process(proc) == 0


def _app_client(tmp_path, monkeypatch, broker_port: int, redis_url: str, leader: bool = False):
    import falcon.testing

    from reactorkit.api.app import create_app
    from reactorkit.core.config import DEFAULTS, Config
    from reactorkit.core.plugins import Registry, make_plugin_manager

    monkeypatch.setenv("DOT_PIOREACTOR", str(tmp_path))
    monkeypatch.setenv("REDIS_URL", redis_url)
    config = Config()
    config.read_string(DEFAULTS)
    config.read_string(f"[mqtt]\nbroker_port = {broker_port}\n")
    pm, _ = make_plugin_manager(load_installed=False)
    return falcon.testing.TestClient(create_app(Registry.from_plugins(pm), config=config, unit="testunit",
                                                leader=leader))


def test_health_says_degraded_and_why_when_broker_and_redis_are_unreachable(tmp_path, monkeypatch):
    client = _app_client(tmp_path, monkeypatch, free_port(), f"redis://127.0.0.1:{free_port()}/0")
    body = client.simulate_get("/unit_api/health").json
    assert body["status"] == "degraded"
    assert body["broker"]["reachable"] is False and "Connection" in body["broker"]["error"]
    assert body["redis"]["reachable"] is False and body["database"]["reachable"] is True


@pytest.mark.integration
def test_health_follows_the_broker_and_redis_going_away_and_back(tmp_path, monkeypatch, private_broker, private_redis):
    from reactorkit.core.fault_drills import wait_until

    client = _app_client(tmp_path, monkeypatch, private_broker.port, private_redis.url, leader=True)

    def health():
        return client.simulate_get("/unit_api/health").json

    body = health()
    assert body["database"]["reachable"] is False  # a leader without its database yet: said, not hidden
    assert body["status"] == "degraded"
    from reactorkit.core.leader_db import LeaderDB

    LeaderDB(tmp_path / "storage" / "pioreactor.sqlite").close()
    body = wait_until(lambda: (b := health())["status"] == "ok" and b, timeout=10, what="database found")
    assert (body["broker"]["reachable"], body["redis"]["reachable"], body["database"]["reachable"]) == (True,) * 3
    assert body["ingestion"]["running"] is False and body["ingestion"]["lost"] == 0
    private_broker.stop()
    private_redis.stop()
    down = wait_until(lambda: (b := health())["status"] == "degraded" and not b["redis"]["reachable"] and b,
                      timeout=10, what="health sees the outage")
    assert down["broker"]["reachable"] is False
    private_broker.start()
    private_redis.start()
    back = wait_until(lambda: (b := health())["broker"]["reachable"] and b["redis"]["reachable"] and b, timeout=10,
                      what="health sees the services back")
    assert back["broker"]["latency_ms"] >= 0


def test_the_database_check_reads_the_file_read_only_and_says_what_is_wrong(tmp_path):
    import sqlite3

    from reactorkit.api.resources.health_checks import check_database

    with pytest.raises(FileNotFoundError):
        check_database(tmp_path / "missing.sqlite")
    path = tmp_path / "a unit's #1 cache?.sqlite"  # characters of its own to a file: URI
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (x)")
    conn.close()
    before = path.read_bytes()
    check_database(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no journal switched on, nothing written
    (tmp_path / "not.sqlite").write_bytes(b"not a database, " * 64)
    with pytest.raises(sqlite3.DatabaseError):
        check_database(tmp_path / "not.sqlite")


def test_the_health_checks_of_another_config_are_not_answered_from_the_cache(tmp_path, monkeypatch):
    # unit test (checks faked): the cache keeps results for the config they were checked with only
    from reactorkit.api.resources import health_checks
    from reactorkit.core.config import DEFAULTS, Config

    monkeypatch.setenv("DOT_PIOREACTOR", str(tmp_path))
    monkeypatch.setattr(health_checks, "CACHE_S", 3600.0)  # results of the same config are always cached here
    checked = []
    monkeypatch.setattr(health_checks, "check_broker", lambda host, port, *_: checked.append(port))
    monkeypatch.setattr(health_checks, "check_redis", lambda url: None)
    monkeypatch.setattr(health_checks, "check_database", lambda path: None)

    def config_with(port: int) -> Config:
        config = Config()
        config.read_string(DEFAULTS + f"[mqtt]\nbroker_port = {port}\n")
        return config

    current = [config_with(1000)]
    checks = health_checks.HealthChecks(lambda: current[0], leader=False)
    checks.results()
    checks.results()  # the same config: from the cache
    assert checked == [1000]
    current[0] = config_with(2000)  # the files read again after a save
    checks.results()
    current[0].set("mqtt", "broker_port", "3000")  # the same object changed
    checks.results()
    assert checked == [1000, 2000, 3000]
