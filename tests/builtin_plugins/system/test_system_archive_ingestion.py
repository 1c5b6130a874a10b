"""Importing a state archive on a running leader: refused while jobs run; ingestion stopped and restarted around
the swap, so that readings published after the import land in the imported database."""

import io
import json
import os
import sqlite3
import time
import zipfile

import pytest

from reactorkit.core.fault_drills import wait_until
from reactorkit.core.job_registry import JobRegistry, pid_alive
from reactorkit.core.jobs_control import stop_jobs
from reactorkit.core.testing import MQTTRecorder


def multipart(data):
    boundary = "rkboundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"archive\"; filename=\"backup.zip\"\r\n"
            "Content-Type: application/zip\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return {"body": body, "headers": {"Content-Type": f"multipart/form-data; boundary={boundary}"}}


def test_import_is_refused_with_409_while_a_job_runs(leader_client, leader_env):
    registry = JobRegistry()
    job_id = registry.register(unit=leader_env.unit, experiment="exp", job_name="stirring", pid=os.getpid(),
                               job_source="user", leader=leader_env.unit, started_at="2026-01-01T00:00:00.000Z")
    try:
        archive = leader_client.simulate_get("/unit_api/zipped_dot_pioreactor").content
        result = leader_client.simulate_post("/unit_api/import_zipped_dot_pioreactor", **multipart(archive))
        assert result.status_code == 409
        assert "stirring" in result.json["cause"] and result.json["remediation"]
    finally:
        registry.remove(job_id)
        registry.close()


def stored_rpms(root):
    path = root / "storage" / "pioreactor.sqlite"
    try:
        with sqlite3.connect(path, timeout=15) as conn:
            return [r[0] for r in conn.execute("SELECT measured_rpm FROM stirring_rates ORDER BY timestamp")]
    except sqlite3.OperationalError:
        return []


@pytest.mark.integration
def test_ingestion_is_restarted_on_the_imported_database(leader_client, leader_env, spawn_job, run_tasks):
    recorder = MQTTRecorder(leader_env.prefix)
    state = f"{leader_env.prefix}pioreactor/{leader_env.unit}/$experiment/mqtt_to_db_streaming/$state"
    topic = leader_env.topic("stirring", "measured_rpm")

    def reading(rpm, second):
        recorder.publish(topic, json.dumps({"measured_rpm": rpm, "timestamp": f"2026-01-01T00:00:{second:02d}.000Z"}))

    try:
        spawn_job("mqtt_to_db_streaming")
        recorder.wait_for(state, lambda p: p == b"ready", timeout=30)
        reading(100, 1)
        wait_until(lambda: stored_rpms(leader_env.root) == [100], timeout=20, what="first reading stored")
        archive = leader_client.simulate_get("/unit_api/zipped_dot_pioreactor").content
        assert "storage/pioreactor.sqlite" in zipfile.ZipFile(io.BytesIO(archive)).namelist()
        reading(200, 2)  # stored in the database the import replaces
        wait_until(lambda: stored_rpms(leader_env.root) == [100, 200], timeout=20, what="second reading stored")

        since = time.monotonic()
        accepted = leader_client.simulate_post("/unit_api/import_zipped_dot_pioreactor", **multipart(archive))
        assert accepted.status_code == 202, accepted.text
        run_tasks()
        result = leader_client.simulate_get(accepted.json["result_url_path"]).json
        assert result["status"] == "succeeded", result
        assert result["result"]["ingestion"] == "restarted"
        recorder.wait_for(state, lambda p: p == b"ready", timeout=30, since=since)

        reading(300, 3)  # after the import: stored in the imported database, not lost in the replaced one
        assert wait_until(lambda: (r := stored_rpms(leader_env.root)) and 300 in r and r, timeout=20,
                          what="reading after the import stored") == [100, 300]
    finally:
        registry = JobRegistry()
        for row in registry.running(job_name="mqtt_to_db_streaming"):
            stop_jobs(job_id=row.job_id, registry=registry, wait_s=10)
            assert not pid_alive(row.pid)
        registry.close()
        recorder.close()
