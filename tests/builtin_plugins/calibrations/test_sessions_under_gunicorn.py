"""A calibration session outlives the API server: started under gunicorn, continued after a restart."""

import subprocess
import time

import httpx
import pytest

from reactorkit.core.testing import free_port, pio_command, stop_process

pytestmark = pytest.mark.integration


def serve(unit_env, port):
    proc = subprocess.Popen(pio_command("serve", "--port", str(port), "--workers", "2"), env=unit_env.env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/unit_api/health", timeout=1)
            return proc
        except httpx.TransportError:
            assert proc.poll() is None and time.monotonic() < deadline, "gunicorn did not start"
            time.sleep(0.2)


def test_session_continues_after_the_server_restarts(unit_env):
    unit_env.speedup = 20
    port = free_port()
    base = f"http://127.0.0.1:{port}/unit_api/calibrations/sessions"
    proc = serve(unit_env, port)
    try:
        started = httpx.post(base, json={"target_device": "media_pump", "protocol_name": "duration_based"})
        assert started.status_code == 201
        sid = started.json()["session"]["session_id"]
        for _ in range(3):
            assert httpx.post(f"{base}/{sid}/inputs", json={"inputs": {}}).status_code == 200
        named = httpx.post(f"{base}/{sid}/inputs", json={"inputs": {"calibration_name": "kept"}})
        assert named.json()["step"]["step_id"] == "volumes"
    finally:
        assert stop_process(proc) == 0
    proc = serve(unit_env, port)
    try:
        again = httpx.get(f"{base}/{sid}").json()
        assert again["step"]["step_id"] == "volumes"
        assert again["session"]["data"]["calibration_name"] == "kept"
        bad = httpx.post(f"{base}/{sid}/inputs", json={"inputs": {"mls_to_calibrate_for": [-1]}})
        assert bad.status_code == 400 and "mls_to_calibrate_for" in bad.json()["error"]
        moved = httpx.post(f"{base}/{sid}/inputs", json={"inputs": {"mls_to_calibrate_for": [1, 2]}})
        assert moved.json()["step"]["step_id"] == "pwm"
    finally:
        assert stop_process(proc) == 0
