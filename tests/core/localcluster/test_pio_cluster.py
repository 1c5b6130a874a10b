"""`pio cluster up/status/down`: a local cluster in the background under supervisord."""

import os
import subprocess

import httpx
import pytest

from reactorkit.core.localcluster.layout import ClusterLayout
from reactorkit.core.testing import pio_command, processes_under

pytestmark = pytest.mark.integration


def pio(*args, env):
    return subprocess.run(pio_command(*args), env=env, capture_output=True, text=True, timeout=180)


def test_up_status_down(tmp_path):
    root = tmp_path / "state"
    env = {**os.environ, "DOT_PIOREACTOR": str(root)}  # the cluster lives under $DOT_PIOREACTOR by default
    up = pio("cluster", "up", "--workers", "1", env=env)
    try:
        assert up.returncode == 0, up.stderr
        layout = ClusterLayout.load(root / "localcluster")
        assert f"Leader API: {layout.url()}" in up.stdout
        workers = httpx.get(f"{layout.url()}/api/workers", timeout=10).json()
        assert [w["pioreactor_unit"] for w in workers] == ["worker1"]
        assert httpx.get(f"{layout.url('worker1')}/unit_api/health").json()["pioreactor_unit"] == "worker1"

        status = pio("cluster", "status", env=env).stdout
        for program in ("leader-api", "leader-worker", "leader-mqtt_to_db", "worker1-api", "worker1-worker"):
            line = next(l for l in status.splitlines() if l.strip().startswith(program))
            assert "RUNNING" in line

        again = pio("cluster", "up", env=env)
        assert again.returncode != 0 and "already running" in again.stderr
    finally:
        down = pio("cluster", "down", env=env)
    assert down.returncode == 0, down.stderr
    assert "stopped" in pio("cluster", "status", env=env).stdout
    assert processes_under(root) == []


def test_two_clusters_coexist_under_their_own_roots(tmp_path):
    env = dict(os.environ)
    roots = [tmp_path / "a", tmp_path / "b"]
    try:
        for root in roots:
            result = pio("cluster", "up", "--workers", "1", "--root", str(root), env=env)
            assert result.returncode == 0, result.stderr
        layouts = [ClusterLayout.load(r) for r in roots]
        assert layouts[0].prefix != layouts[1].prefix
        assert layouts[0].url() != layouts[1].url()
        for layout in layouts:
            assert httpx.get(f"{layout.url()}/unit_api/health").status_code == 200
    finally:
        for root in roots:
            pio("cluster", "down", "--root", str(root), env=env)
    for root in roots:
        assert processes_under(root) == []
