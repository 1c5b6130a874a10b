"""A plugin installed with `pio plugins install` is live without a restart by hand: `pio serve` (a real
gunicorn) serves its route, the running ingestion creates its table and stores its topic; uninstalling
takes the route away again."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reactorkit.core.fault_drills import wait_until
from reactorkit.core.testing import LocalCluster, MQTTRecorder, pio_command, stop_process

HELLO = Path(__file__).parents[2] / "fixtures" / "hello_plugin"
HELLO_TOPIC = "pioreactor/+/+/hello_job/greeting"
pytestmark = pytest.mark.integration


def until(predicate, what="the condition"):
    """:func:`wait_until` with a bound that only guards against a hang (90 s)."""
    return wait_until(predicate, timeout=90.0, interval=0.2, what=what)


def test_a_plugin_installed_with_pio_is_served_and_stored_without_a_restart(tmp_path):
    site, wheels = tmp_path / "site", tmp_path / "wheels"
    site.mkdir()
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-build-isolation", "--no-deps", str(HELLO),
                    "-w", str(wheels)], check=True, cwd=tmp_path, timeout=300)
    wheel = next(wheels.glob("*.whl"))
    cluster = LocalCluster(tmp_path / "cluster", workers=())
    cluster.leader.env["PYTHONPATH"] = str(site)  # pip installs there ([plugins] install_target)
    recorder = MQTTRecorder(cluster.prefix)
    ingestion = None
    with cluster:
        with open(cluster.leader.root / "config.ini", "a") as fh:
            fh.write(f"\n[plugins]\ninstall_target = {site}\n")
        root = f"{cluster.prefix}pioreactor/leader/$experiment/mqtt_to_db_streaming"
        ingestion = subprocess.Popen(pio_command("run", "mqtt_to_db_streaming"), env=cluster.leader.env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            recorder.wait_for(f"{root}/$state", lambda p: p == b"ready")
            with cluster.client() as http:
                assert http.get("/unit_api/hello").status_code == 404

                installed = subprocess.run(pio_command("plugins", "install", "reactorkit-hello-plugin", "--source",
                                                       str(wheel)), env=cluster.leader.env, capture_output=True,
                                           text=True, timeout=600)
                assert installed.returncode == 0, installed.stderr
                assert "pio serve: reloading its workers (SIGHUP)" in installed.stdout
                assert "running jobs: told to load the plugins anew" in installed.stdout

                served = until(lambda: (r := http.get("/unit_api/hello")).status_code == 200 and r,
                               what="the plugin's route being served")
                assert served.json() == {"greeting": "hello"}

                recorder.wait_for(f"{root}/stored_topics", lambda p: HELLO_TOPIC in json.loads(p))
                recorder.publish(f"{cluster.prefix}pioreactor/leader/exp1/hello_job/greeting", "bonjour")
                db = cluster.leader_db()
                try:
                    rows = until(lambda: db.conn.execute("SELECT pioreactor_unit, experiment, greeting "
                                                         "FROM hello_readings").fetchall(),
                                 what="the greeting being stored")
                finally:
                    db.close()
                assert [tuple(r) for r in rows] == [("leader", "exp1", "bonjour")]

                since = time.monotonic()
                removed = subprocess.run(pio_command("plugins", "uninstall", "reactorkit-hello-plugin"),
                                         env=cluster.leader.env, capture_output=True, text=True, timeout=600)
                assert removed.returncode == 0, removed.stderr
                until(lambda: http.get("/unit_api/hello").status_code == 404, what="the route going away")
                recorder.wait_for(f"{root}/stored_topics", lambda p: HELLO_TOPIC not in json.loads(p), since=since)
        finally:
            stop_process(ingestion)
            recorder.close()
