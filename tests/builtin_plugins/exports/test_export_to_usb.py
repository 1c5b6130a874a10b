"""Exports onto the leader's USB drive (a fake /proc/mounts and /sys/block naming a folder as the mounted drive);
the export task runs on a real rq worker (the test Redis DB)."""

import csv
import io
import json
import zipfile

import pytest

from reactorkit.builtin_plugins.system import usb

pytestmark = pytest.mark.integration

ROUTE = "/api/datasets/exportable/export-to-usb"
BODY = {"datasets": ["experiment_worker_assignments"], "experiments": ["exp1"], "partition_by_unit": True,
        "partition_by_experiment": False}


@pytest.fixture
def assignments(leader_env):
    from reactorkit.core.leader_db import LeaderDB

    db = LeaderDB()
    db.execute("INSERT INTO experiments (experiment, created_at) VALUES ('exp1', '2026-01-01T00:00:00.000Z')")
    for unit in ("worker1", "worker2"):
        db.add_worker(unit)
        db.assign(unit, "exp1")
    return db


@pytest.fixture
def drive(tmp_path, monkeypatch):
    """A removable disk ``sda`` whose partition is mounted on ``tmp/media/STICK``; ``drive(read_only=…)``."""

    def plug(read_only=False):
        (tmp_path / "sys" / "block" / "sda" / "sda1").mkdir(parents=True)
        (tmp_path / "sys" / "block" / "sda" / "removable").write_text("1\n")
        (tmp_path / "sys" / "block" / "sda" / "sda1" / "partition").write_text("1\n")
        (tmp_path / "dev").mkdir()
        (tmp_path / "dev" / "sda1").write_text("")
        mount_point = tmp_path / "media" / "STICK"
        mount_point.mkdir(parents=True)
        mounts = tmp_path / "proc_mounts"
        mounts.write_text(f"{tmp_path / 'dev' / 'sda1'} {mount_point} vfat {'ro' if read_only else 'rw'},relatime 0 0\n")
        monkeypatch.setattr(usb, "PROC_MOUNTS", mounts)
        monkeypatch.setattr(usb, "SYS_BLOCK", tmp_path / "sys" / "block")
        monkeypatch.setattr(usb, "DEV", tmp_path / "dev")
        return mount_point

    monkeypatch.setattr(usb, "PROC_MOUNTS", tmp_path / "no_mounts")
    return plug


def test_without_a_drive_the_request_is_409_and_nothing_is_queued(leader_client, assignments, drive):
    reply = leader_client.simulate_post(ROUTE, json=BODY)
    assert reply.status_code == 409, reply.text
    assert reply.json["error"] == "No USB drive to export to." and "/usb/mount" in reply.json["remediation"]


def test_a_read_only_drive_is_no_place_to_export(leader_client, assignments, drive):
    drive(read_only=True)
    assert leader_client.simulate_post(ROUTE, json=BODY).status_code == 409


def test_bad_bodies_name_the_field_before_the_drive_is_looked_at(leader_client, assignments, drive):
    reply = leader_client.simulate_post(ROUTE, json={**BODY, "partition_by_unit": "yes"})
    assert reply.status_code == 400 and "partition_by_unit" in reply.json["cause"]


def test_the_zip_is_written_onto_the_drive(leader_client, assignments, drive, run_tasks, leader_env):
    mount_point = drive()
    accepted = leader_client.simulate_post(ROUTE, json=BODY)
    assert accepted.status_code == 202, accepted.text
    run_tasks()
    done = leader_client.simulate_get(accepted.json["result_url_path"]).json
    assert done["status"] == "succeeded", done
    result = done["result"]
    assert result["drive"] == str(mount_point) and result["msg"] == "Finished"
    path = mount_point / result["filename"]
    assert result["path"] == str(path) and result["filename"].startswith("export_")
    assert sorted(p.name for p in mount_point.iterdir()) == [result["filename"]]  # no temporary file left
    assert not list((leader_env.root / "exports").glob("*.zip"))  # not in the leader's own exports
    with zipfile.ZipFile(path) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        csvs = [n for n in zf.namelist() if n.endswith(".csv")]
        rows = [r for n in csvs for r in csv.DictReader(io.StringIO(zf.read(n).decode()))]
    assert manifest["selected_datasets"] == ["experiment_worker_assignments"]
    assert len(csvs) == 2  # partitioned by unit
    assert sorted(r["pioreactor_unit"] for r in rows) == ["worker1", "worker2"]


def test_a_drive_gone_before_the_task_runs_is_a_failed_task(leader_client, assignments, drive, run_tasks,
                                                            monkeypatch, tmp_path):
    drive()
    accepted = leader_client.simulate_post(ROUTE, json=BODY)
    assert accepted.status_code == 202
    monkeypatch.setattr(usb, "PROC_MOUNTS", tmp_path / "no_mounts")  # unplugged meanwhile
    run_tasks()
    done = leader_client.simulate_get(accepted.json["result_url_path"]).json
    assert done["status"] == "failed"
    assert done["error"] == "No writable USB drive is mounted on the leader." and "mount" in done["remediation"]
