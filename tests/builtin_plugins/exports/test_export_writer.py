"""The zip writer: partitions, generated columns, time windows, manifest and schema (SQLite on disk, no API)."""

import csv
import io
import json
import sqlite3
import zipfile

import pytest

from reactorkit.builtin_plugins.exports.writer import Filters, write_export
from reactorkit.core.descriptors import DatasetDescriptor

OD = DatasetDescriptor(dataset_name="od_readings", display_name="Optical density", table="od_readings",
                       column_units={"angle": "degrees"}, column_descriptions={"od_reading": "OD600"})
LABELS = DatasetDescriptor(dataset_name="labels", display_name="Labels", table="labels", has_unit=True,
                           default_order_by="created_at", timestamp_columns=("created_at",))
RUNS = DatasetDescriptor(dataset_name="runs", display_name="Runs", query="SELECT * FROM runs", has_unit=False,
                         default_order_by="started_at", timestamp_columns=("started_at",))


@pytest.fixture
def db(tmp_path):
    conn = sqlite3.connect(tmp_path / "leader.sqlite")
    conn.executescript("""
        CREATE TABLE experiments (experiment TEXT, created_at TEXT, description TEXT);
        CREATE TABLE od_readings (experiment TEXT, pioreactor_unit TEXT, timestamp TEXT, od_reading REAL,
                                  angle INT, channel INT);
        CREATE TABLE labels (experiment TEXT, pioreactor_unit TEXT, label TEXT, created_at TEXT);
        CREATE TABLE runs (started_at TEXT, experiment_profile_name TEXT, experiment TEXT);
    """)
    conn.executemany("INSERT INTO experiments VALUES (?, ?, '')",
                     [("exp1", "2026-01-01T00:00:00.000Z"), ("exp2", "2026-01-02T00:00:00.000Z")])
    rows = []
    for i in range(30):
        for unit in ("w1", "w2"):
            experiment = "exp1" if i < 20 else "exp2"
            rows.append((experiment, unit, f"2026-01-02T{i // 2:02d}:{(i % 2) * 30:02d}:00.000Z", 0.1 + i / 3, 90, 2))
    conn.executemany("INSERT INTO od_readings VALUES (?, ?, ?, ?, ?, ?)", rows)
    conn.commit()
    yield conn
    conn.close()


def export(tmp_path, conn, datasets, **filters):
    path = tmp_path / "out.zip"
    write_export(path, conn, datasets, Filters(**filters), version="9.9", created_at="2026-01-03T00:00:00.000Z",
                 selected=[d.dataset_name for d in datasets])
    zf = zipfile.ZipFile(path)
    return zf, json.loads(zf.read("manifest.json"))


def read_csv(zf, name):
    raw = zf.read(name)
    assert b"\r\n" in raw
    return list(csv.DictReader(io.StringIO(raw.decode("utf-8"), newline="")))


def test_rows_match_the_database_split_by_unit(tmp_path, db):
    zf, manifest = export(tmp_path, db, [OD], partition_by_unit=True)
    entry = manifest["datasets"][0]
    assert entry["row_count"] == 60
    assert [f["partition"] for f in entry["csv_files"]] == [
        {"experiment": None, "pioreactor_unit": "w1"}, {"experiment": None, "pioreactor_unit": "w2"}]
    assert entry["partition_values"] == {"experiments": ["exp1", "exp2"], "pioreactor_units": ["w1", "w2"]}
    for csv_file in entry["csv_files"]:
        unit = csv_file["partition"]["pioreactor_unit"]
        assert f"-all_experiments-{unit}-" in csv_file["path"] and csv_file["path"].startswith("od_readings/")
        rows = read_csv(zf, csv_file["path"])
        expected = db.execute("SELECT timestamp, od_reading FROM od_readings WHERE pioreactor_unit = ? ORDER BY timestamp",
                              (unit,)).fetchall()
        assert [(r["timestamp"], float(r["od_reading"])) for r in rows] == [(t, round(v, 12)) for t, v in expected]
        assert csv_file["row_count"] == len(expected)


def test_generated_columns_follow_the_data_columns(tmp_path, db):
    zf, manifest = export(tmp_path, db, [OD])
    rows = read_csv(zf, manifest["datasets"][0]["csv_paths"][0])
    assert list(rows[0]) == ["experiment", "pioreactor_unit", "timestamp", "od_reading", "angle", "channel",
                             "timestamp_localtime", "hours_since_experiment_created"]
    first = rows[0]
    assert first["experiment"] == "exp1"
    assert float(first["hours_since_experiment_created"]) == pytest.approx(24.0)
    assert len(first["timestamp_localtime"]) == len("2026-01-02 00:00:00.000")
    schema = json.loads(zf.read("od_readings/schema.json"))
    assert schema["entity_columns"] == ["experiment", "pioreactor_unit"]
    assert schema["generated_columns"] == ["timestamp_localtime", "hours_since_experiment_created"]
    by_name = {c["name"]: c for c in schema["columns"]}
    assert by_name["angle"]["unit"] == "degrees" and by_name["od_reading"]["description"] == "OD600"
    assert by_name["timestamp_localtime"]["generated"] is True and by_name["timestamp"]["generated"] is False


def test_experiment_filter_time_window_and_partitions(tmp_path, db):
    zf, manifest = export(tmp_path, db, [OD], experiments=("exp1",), partition_by_experiment=True,
                          start_time="2026-01-02T01:00:00.000Z", end_time="2026-01-02T03:00:00.000Z")
    entry = manifest["datasets"][0]
    assert [f["partition"] for f in entry["csv_files"]] == [{"experiment": "exp1", "pioreactor_unit": None}]
    rows = read_csv(zf, entry["csv_paths"][0])
    stamps = sorted({r["timestamp"] for r in rows})
    assert stamps[0] == "2026-01-02T01:00:00.000Z" and stamps[-1] == "2026-01-02T03:00:00.000Z"  # inclusive
    assert entry["row_count"] == 10
    assert manifest["filters"]["experiment"] == ["exp1"]


def test_always_partition_by_unit_and_empty_datasets(tmp_path, db):
    always = DatasetDescriptor(dataset_name="od_readings", display_name="OD", table="od_readings",
                               always_partition_by_unit=True)
    zf, manifest = export(tmp_path, db, [always, LABELS, RUNS])
    od, labels, runs = manifest["datasets"]
    assert len(od["csv_files"]) == 2
    assert labels["csv_files"] == [] and labels["row_count"] == 0
    assert "labels/schema.json" in zf.namelist()
    assert runs["csv_files"] == []
    assert manifest["schema_version"] == 1 and manifest["pioreactor_version"] == "9.9"
    assert manifest["selected_datasets"] == ["od_readings", "labels", "runs"]


def test_a_missing_table_is_reported_not_fatal(tmp_path, db):
    missing = DatasetDescriptor(dataset_name="growth_rates", display_name="GR", table="growth_rates")
    zf, manifest = export(tmp_path, db, [missing, OD])
    assert "does not exist" in manifest["datasets"][0]["error"]
    assert manifest["datasets"][1]["row_count"] == 60


def test_readings_lost_before_storage_are_marked_in_the_export(tmp_path, db):
    from reactorkit.builtin_plugins.mqtt_to_db.ledger import GAPS

    db.executescript(GAPS.create_sql)
    gap = ("exp1", "w1", "s1", "pioreactor/w1/exp1/od_reading/od2", 6, 9, 4, "2026-01-02T01:00:00.000Z",
           "2026-01-02T01:00:15.000Z", "outbox full", "2026-01-02T02:00:00.000Z")
    db.execute("INSERT INTO ingestion_gaps VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", gap)
    db.execute("INSERT INTO ingestion_gaps VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
               ("exp2", "w2", "s2", "pioreactor/w2/exp2/od_reading/od2", 1, 1, 1, "2026-01-02T12:00:00.000Z",
                "2026-01-02T12:00:00.000Z", "outbox full", "2026-01-02T12:00:01.000Z"))
    db.commit()
    zf, manifest = export(tmp_path, db, [OD], experiments=("exp1",))
    [marked] = manifest["ingestion_gaps"]
    assert (marked["pioreactor_unit"], marked["count"], marked["first_seq"]) == ("w1", 4, 6)
    assert [r["count"] for r in read_csv(zf, "ingestion_gaps.csv")] == ["4"]
    zf, manifest = export(tmp_path, db, [OD], experiments=("exp1",), end_time="2026-01-02T00:30:00.000Z")
    assert "ingestion_gaps" not in manifest and "ingestion_gaps.csv" not in zf.namelist()


def test_automation_settings_are_one_row_per_run_with_readable_json(tmp_path, db):
    import base64

    from reactorkit.builtin_plugins.dosing.descriptors import DATASETS

    dataset = next(d for d in DATASETS if d.dataset_name == "dosing_automation_settings")
    db.execute("CREATE TABLE dosing_automation_settings (experiment TEXT, pioreactor_unit TEXT, started_at TEXT,"
               " ended_at TEXT, automation_name TEXT, settings BLOB)")

    def b64(settings):
        return base64.b64encode(json.dumps(settings).encode()).decode()

    rows = [  # as stored: each run once when it starts, once when it ends
        ("exp1", "w1", "2026-01-02T00:30:00.000Z", None, "turbidostat", b64({"target_biomass": 3.0})),
        ("exp1", "w1", "2026-01-02T00:30:00.000Z", "2026-01-02T06:00:00.000Z", "turbidostat",
         b64({"target_biomass": 4.0})),
        ("exp1", "w2", "2026-01-02T00:30:00.000Z", None, "chemostat", b64({"exchange_volume_ml": 0.5})),
    ]
    db.executemany("INSERT INTO dosing_automation_settings VALUES (?, ?, ?, ?, ?, ?)", rows)
    db.commit()
    zf, manifest = export(tmp_path, db, [dataset])
    entry = manifest["datasets"][0]
    assert "error" not in entry and entry["row_count"] == 2
    out = read_csv(zf, entry["csv_paths"][0])
    by_unit = {r["pioreactor_unit"]: r for r in out}
    assert by_unit["w1"]["ended_at"] == "2026-01-02T06:00:00.000Z"
    assert json.loads(by_unit["w1"]["settings"]) == {"target_biomass": 4.0}  # as it was when the run ended
    assert by_unit["w2"]["ended_at"] == "" and json.loads(by_unit["w2"]["settings"]) == {"exchange_volume_ml": 0.5}
