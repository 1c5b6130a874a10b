"""The README's "Drive it with curl" lines, run as they are against a real local cluster."""

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from reactorkit.core.localcluster.commands import start_cluster, stop_cluster
from reactorkit.core.testing import processes_under

pytestmark = pytest.mark.integration

README = Path(__file__).resolve().parents[1] / "README.md"
MARKER = "<!-- the block below is run as it is against a real local cluster by tests/test_readme_curl.py -->"


def curl_lines() -> list[str]:
    block = README.read_text().split(MARKER, 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.startswith("curl ")]


def run(line: str, env: dict[str, str]) -> dict:
    result = subprocess.run(["bash", "-c", line], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, (line, result.stderr)
    body = json.loads(result.stdout)
    assert "error" not in body, (line, body)
    return body


def finished(body: dict, api: str, auth: dict) -> dict:
    """The task's final record (polling its result_url_path if ?wait ran out on a busy machine)."""
    while body.get("status") in ("accepted", "pending", "running") and "result_url_path" in body:
        time.sleep(0.2)
        body = httpx.get(api + body["result_url_path"], timeout=10, headers=auth).json()
    return body


def test_the_readme_curl_lines_drive_a_real_cluster(tmp_path):
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed (apt-get install curl)")
    lines = curl_lines()
    assert len(lines) == 5, lines
    root = tmp_path / "cluster"
    layout = start_cluster(root, workers=1, speedup=60, echo=lambda line: None)
    try:
        token = layout.admin_token() if hasattr(layout, "admin_token") else ""
        env = {**os.environ, "API": layout.url(), "TOKEN": token or ""}
        api = layout.url()
        auth = {"Authorization": f"Bearer {token}"} if token else {}

        assert run(lines[0], env)["experiment"] == "trial1"
        run(lines[1], env)
        assigned = httpx.get(f"{api}/api/experiments/trial1/workers", timeout=10,
                             headers=auth).json()
        assert [w["pioreactor_unit"] for w in assigned] == ["worker1"]

        started = finished(run(lines[2], env), api, auth)
        assert started["status"] == "succeeded" and started["result"]["worker1"]["ok"] is True, started

        deadline = time.monotonic() + 120  # readings arrive as the job runs: read until some are stored
        series = run(lines[3], env)
        while not any(series["data"]) and time.monotonic() < deadline:
            time.sleep(0.5)
            series = run(lines[3], env)
        assert series["series"] and all(name.startswith("worker1") for name in series["series"])
        assert any(len(points) > 0 for points in series["data"])

        finished(run(lines[4], env), api, auth)
        deadline = time.monotonic() + 60
        running = ["od_reading"]
        while running and time.monotonic() < deadline:
            jobs = httpx.get(f"{layout.url('worker1')}/unit_api/jobs/running", timeout=10,
                             headers=auth).json()
            running = [j["job_name"] for j in jobs if j["job_name"] == "od_reading"]
            time.sleep(0.2)
        assert running == []
    finally:
        stop_cluster(layout)
    assert processes_under(root) == []
