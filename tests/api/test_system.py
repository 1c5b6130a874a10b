"""/unit_api/health and /unit_api/versions/app, in-process and under real gunicorn."""

import os
import subprocess
import time

import httpx
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
        assert "gunicorn" in response.headers.get("server", "")
        assert httpx.get(f"http://127.0.0.1:{port}/unit_api/versions/app").json() == {"version": __version__}
    finally:
        assert stop_process(proc) == 0
