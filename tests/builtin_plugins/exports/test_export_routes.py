"""Preview and export over the leader API; the export task runs on a real rq worker (the test Redis DB)."""

import csv
import io
import json
import os
import subprocess
import sys
import zipfile

import pytest

pytestmark = pytest.mark.integration

# a file plugin that declares the od_readings dataset as the od_reading plugin does, so these tests need no sensor
DATASET_PLUGIN = '''
from reactorkit.core.descriptors import DatasetDescriptor
from reactorkit.core.hooks import hookimpl

@hookimpl
def register_datasets():
    yield DatasetDescriptor(dataset_name="od_readings", display_name="Optical density", table="od_readings")
'''


@pytest.fixture
def od_db(leader_env):
    (leader_env.root / "plugins").mkdir()
    (leader_env.root / "plugins" / "od_dataset.py").write_text(DATASET_PLUGIN)
    from reactorkit.core.leader_db import LeaderDB

    db = LeaderDB()
    db.execute("INSERT INTO experiments (experiment, created_at) VALUES ('exp1', '2026-01-01T00:00:00.000Z')")
    db.execute("CREATE TABLE od_readings (experiment TEXT, pioreactor_unit TEXT, timestamp TEXT, od_reading REAL,"
               " angle INT, channel INT)")
    with db.transaction() as conn:
        for i in range(500):
            for unit in ("worker1", "worker2"):
                conn.execute("INSERT INTO od_readings VALUES ('exp1', ?, ?, ?, 90, 2)",
                             (unit, f"2026-01-01T{i // 60:02d}:{i % 60:02d}:00.000Z", 0.05 * 1.01 ** i))
    return db


def test_preview_returns_the_first_rows(leader_client, od_db):
    rows = leader_client.simulate_get("/api/datasets/exportable/od_readings/preview", params={"n_rows": 3}).json
    assert len(rows) == 3
    assert set(rows[0]) == {"experiment", "pioreactor_unit", "timestamp", "od_reading", "angle", "channel"}
    assert len(leader_client.simulate_get("/api/contrib/exportable_datasets/od_readings/preview").json) == 5


@pytest.mark.parametrize("n_rows", ["0", "101", "many"])
def test_preview_n_rows_is_bounded(leader_client, od_db, n_rows):
    result = leader_client.simulate_get("/api/datasets/exportable/od_readings/preview", params={"n_rows": n_rows})
    assert result.status_code == 400


def test_preview_of_an_unknown_dataset_is_404(leader_client, od_db):
    assert leader_client.simulate_get("/api/datasets/exportable/nope/preview").status_code == 404


@pytest.mark.parametrize("body, field", [
    ({"experiments": ["exp1"], "partition_by_unit": True, "partition_by_experiment": False}, "datasets"),
    ({"datasets": ["od_readings"], "partition_by_unit": True, "partition_by_experiment": False}, "experiments"),
    ({"datasets": ["od_readings"], "experiments": [], "partition_by_experiment": False}, "partition_by_unit"),
    ({"datasets": ["od_readings"], "experiments": [], "partition_by_unit": True, "partition_by_experiment": False,
      "start_time": "2026-01-01T00:00:00"}, "start_time"),
])
def test_bad_export_requests_name_the_field(leader_client, od_db, body, field):
    result = leader_client.simulate_post("/api/datasets/exportable/export", json=body)
    assert result.status_code == 400
    assert field in result.json["cause"]


def test_export_of_two_units_matches_the_database_and_is_downloadable(leader_client, od_db, run_tasks, leader_env):
    accepted = leader_client.simulate_post("/api/datasets/exportable/export", json={
        "datasets": ["od_readings", "no_such_dataset"], "experiments": ["exp1"], "partition_by_unit": True,
        "partition_by_experiment": False, "start_time": "2026-01-01T00:00:00Z", "end_time": "2026-01-02T00:00:00+00:00"})
    assert accepted.status_code == 202
    assert accepted.json["status"] == "accepted"
    run_tasks()
    task = leader_client.simulate_get(accepted.json["result_url_path"]).json
    assert task["status"] == "succeeded", task
    result = task["result"]
    assert result["result"] is True and result["msg"] == "Finished"
    assert result["filename"].startswith("export_") and result["filename"].endswith(".zip")
    assert result["skipped"] == ["no_such_dataset"]
    assert result["progress"]["rows_written"] == 1000
    assert not [p for p in os.listdir(leader_env.root / "exports") if p.endswith(".tmp")]

    download = leader_client.simulate_get(result["download_url_path"])
    assert download.status_code == 200 and download.headers["content-type"] == "application/zip"
    zf = zipfile.ZipFile(io.BytesIO(download.content))
    manifest = json.loads(zf.read("manifest.json"))
    entry = manifest["datasets"][0]
    assert entry["partition_values"]["pioreactor_units"] == ["worker1", "worker2"]
    for csv_file in entry["csv_files"]:
        unit = csv_file["partition"]["pioreactor_unit"]
        rows = list(csv.DictReader(io.StringIO(zf.read(csv_file["path"]).decode(), newline="")))
        expected = od_db.query("SELECT timestamp, od_reading FROM od_readings WHERE pioreactor_unit = ?"
                               " ORDER BY timestamp", (unit,))
        assert [(r["timestamp"], float(r["od_reading"])) for r in rows] == \
            [(e["timestamp"], round(e["od_reading"], 12)) for e in expected]


@pytest.mark.parametrize("name", ["..%2Fconfig.ini", "%2Fetc%2Fpasswd", "..%2F..%2Fx.zip", "sub%2Fx.zip"])
def test_export_downloads_refuse_unsafe_paths(leader_client, leader_env, name):
    assert leader_client.simulate_get(f"/api/exports/{name}").status_code == 400


def test_classic_export_waits_for_the_result(leader_client, od_db, leader_env):
    worker = subprocess.Popen([sys.executable, "-m", "reactorkit.core.cli.main", "worker"], env=dict(os.environ),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        result = leader_client.simulate_post("/api/contrib/exportable_datasets/export_datasets", json={
            "datasets": ["od_readings"], "experiments": ["<All experiments>"], "partition_by_unit": False,
            "partition_by_experiment": False})
    finally:
        worker.terminate()
        worker.wait(10)
    assert result.status_code == 200
    assert result.json["msg"] == "Finished"
    assert (leader_env.root / "exports" / result.json["filename"]).is_file()


def test_an_export_of_a_simulated_cluster_is_on_simulated_time_and_says_so(leader_client, od_db, run_tasks, leader_env):
    import re
    import time

    from reactorkit.core.clock import Clock, set_clock

    clock = Clock(24.0, origin=time.time() - 3600)  # simulated time is 23 h ahead of the wall clock
    set_clock(clock)
    try:
        before = clock.now()
        accepted = leader_client.simulate_post("/api/datasets/exportable/export", json={
            "datasets": ["od_readings"], "experiments": ["exp1"], "partition_by_unit": True,
            "partition_by_experiment": False})
        run_tasks()
        after = clock.now()
    finally:
        set_clock(None)
    result = leader_client.simulate_get(accepted.json["result_url_path"]).json["result"]
    stamp = re.fullmatch(r"export_(\d{14})\.zip", result["filename"]).group(1)
    allowed = {time.strftime("%Y%m%d%H%M%S", time.gmtime(t)) for t in range(int(before), int(after) + 2)}
    assert stamp in allowed  # simulated, not wall-clock, time names the file
    zf = zipfile.ZipFile(leader_env.root / "exports" / result["filename"])
    manifest = json.loads(zf.read("manifest.json"))
    assert manifest["clock"]["kind"] == "simulated" and manifest["clock"]["speedup"] == 24.0
    assert manifest["export_created_at"].replace("-", "").replace("T", "").replace(":", "")[:14] == stamp
    assert all(path.endswith(f"-{stamp}.csv") for path in manifest["datasets"][0]["csv_paths"])
