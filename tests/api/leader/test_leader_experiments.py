"""Experiments on the leader: CRUD, latest/active, counts, tags, labels, historical media, media rates."""

import pytest

from reactorkit.api.leader.tasks import delete_experiment
from reactorkit.core.clock import get_clock, utc_iso_ms


def test_create_returns_201_with_the_experiment_and_lists_it(api, cluster):
    created = cluster.experiment("exp1", description="notes", tags=["screening", "lb"])
    assert created["experiment"] == "exp1"
    assert created["description"] == "notes"
    assert created["tags"] == ["screening", "lb"]
    assert created["worker_count"] == 0 and created["delta_hours"] == 0.0
    assert created["created_at"].endswith("Z") and len(created["created_at"]) == 24
    assert [e["experiment"] for e in api.simulate_get("/api/experiments").json] == ["exp1"]


def test_experiments_are_listed_newest_first(api, cluster):
    for name in ("first", "second", "third"):
        cluster.experiment(name)
    assert [e["experiment"] for e in api.simulate_get("/api/experiments").json] == ["third", "second", "first"]
    assert api.simulate_get("/api/experiments/latest").json["experiment"] == "third"


def test_creating_an_existing_experiment_is_a_409(api, cluster):
    cluster.experiment("exp1")
    result = api.simulate_post("/api/experiments", json={"experiment": "exp1"})
    assert result.status_code == 409
    assert result.json["status"] == 409 and "exp1" in result.json["error"]


@pytest.mark.parametrize("name, reason", [
    ("", "empty"), ("current", "reserved"), ("_testing_x", "reserved"), ("a/b", "/"), ("50%", "%"),
    ("x" * 200, "shorter"), ("a#b", "#"),
])
def test_invalid_names_are_400_naming_the_field(api, name, reason):
    result = api.simulate_post("/api/experiments", json={"experiment": name})
    assert result.status_code == 400
    assert "'experiment'" in result.json["cause"] and reason in result.json["cause"] + result.json.get("remediation", "")


def test_wrong_types_and_malformed_json_are_400_naming_the_field(api):
    result = api.simulate_post("/api/experiments", json={"experiment": 12})
    assert result.status_code == 400 and "'experiment'" in result.json["cause"]
    result = api.simulate_post("/api/experiments", json={"experiment": "ok", "tags": "not-a-list"})
    assert result.status_code == 400 and "'tags'" in result.json["cause"]
    result = api.simulate_post("/api/experiments", json={"description": "no name"})
    assert result.status_code == 400 and "'experiment'" in result.json["cause"]
    result = api.simulate_post("/api/experiments", body="{oops", headers={"Content-Type": "application/json"})
    assert result.status_code == 400 and set(result.json) >= {"error", "cause", "status"}
    assert api.simulate_get("/api/experiments").json == []  # nothing half written


def test_get_and_patch_an_experiment(api, cluster):
    cluster.experiment("exp1", description="old")
    result = api.simulate_patch("/api/experiments/exp1", json={"description": "new", "tags": ["b", "a"]})
    assert result.status_code == 200
    got = api.simulate_get("/api/experiments/exp1").json
    assert got["description"] == "new" and got["tags"] == ["b", "a"]
    assert api.simulate_patch("/api/experiments/exp1", json={"description": 3}).status_code == 400


def test_unknown_experiment_is_404_everywhere(api):
    for path in ("/api/experiments/nope", "/api/experiments/nope/unit_labels", "/api/experiments/nope/media_rates",
                 "/api/experiments/nope/workers", "/api/experiments/nope/logs",
                 "/api/experiments/nope/time_series/od_readings", "/api/experiments/nope/historical_worker_assignments"):
        result = api.simulate_get(path)
        assert result.status_code == 404, path
        assert result.json["status"] == 404 and "nope" in result.json["error"]
    assert api.simulate_patch("/api/experiments/nope", json={"description": "x"}).status_code == 404
    assert api.simulate_delete("/api/experiments/nope").status_code == 404


def test_latest_is_null_when_there_is_no_experiment(api):
    result = api.simulate_get("/api/experiments/latest")
    assert result.status_code == 200 and result.json is None


def test_latest_carries_media_and_organism(api, cluster):
    cluster.experiment("exp1", mediaUsed="LB", organismUsed="E. coli")
    latest = api.simulate_get("/api/experiments/latest").json
    assert latest["media_used"] == "LB" and latest["organism_used"] == "E. coli"


def test_historical_media_and_organisms_are_distinct_and_recent_first(api, cluster):
    cluster.experiment("a", mediaUsed="LB", organismUsed="E. coli")
    cluster.experiment("b", mediaUsed="M9", organismUsed="E. coli")
    cluster.experiment("c", mediaUsed="LB")
    assert api.simulate_get("/api/historical_media").json == [{"key": "LB"}, {"key": "M9"}]
    assert api.simulate_get("/api/historical_organisms").json == [{"key": "E. coli"}]


def test_active_and_assignment_counts_follow_assignments(api, cluster):
    cluster.experiment("busy")
    cluster.experiment("idle")
    cluster.worker("w1")
    cluster.worker("w2")
    cluster.assign("w1", "busy")
    cluster.assign("w2", "busy")
    counts = {r["experiment"]: r["worker_count"] for r in api.simulate_get("/api/experiments/assignment_count").json}
    assert counts == {"busy": 2, "idle": 0}
    assert [e["experiment"] for e in api.simulate_get("/api/experiments/active").json] == ["busy"]
    api.simulate_put("/api/workers/w1/is_active", json={"is_active": 0})
    api.simulate_put("/api/workers/w2/is_active", json={"is_active": 0})
    assert api.simulate_get("/api/experiments/active").json == []
    assert api.simulate_get("/api/experiments/busy").json["worker_count"] == 2


def test_unit_labels_upsert_delete_and_uniqueness(api, cluster):
    cluster.experiment("exp1")
    assert api.simulate_put("/api/experiments/exp1/unit_labels", json={"unit": "w1", "label": "control"}).status_code == 201
    assert api.simulate_patch("/api/experiments/exp1/unit_labels", json={"unit": "w2", "label": "treated"}).status_code == 201
    assert api.simulate_put("/api/experiments/exp1/unit_labels", json={"unit": "w1", "label": "ctl"}).status_code == 201
    assert api.simulate_get("/api/experiments/exp1/unit_labels").json == {"w1": "ctl", "w2": "treated"}
    clash = api.simulate_put("/api/experiments/exp1/unit_labels", json={"unit": "w1", "label": "treated"})
    assert clash.status_code == 409
    api.simulate_put("/api/experiments/exp1/unit_labels", json={"unit": "w2", "label": ""})
    assert api.simulate_get("/api/experiments/exp1/unit_labels").json == {"w1": "ctl"}
    missing = api.simulate_put("/api/experiments/exp1/unit_labels", json={"label": "x"})
    assert missing.status_code == 400 and "'unit'" in missing.json["cause"]


def test_media_rates_count_only_automation_doses_of_the_last_three_hours(api, cluster, writer):
    cluster.experiment("exp1")
    now = get_clock().now()

    def dose(unit, event, ml, source, hours_ago):
        writer.execute("INSERT INTO dosing_events (experiment, pioreactor_unit, timestamp, event, volume_change_ml,"
                       " source_of_event) VALUES ('exp1', ?, ?, ?, ?, ?)",
                       (unit, utc_iso_ms(now - hours_ago * 3600), event, ml, source))

    dose("w1", "add_media", 1.5, "dosing_automation:chemostat", 1)
    dose("w1", "add_media", 1.5, "dosing_automation:chemostat", 2)
    dose("w1", "add_alt_media", 0.6, "dosing_automation:chemostat", 2)
    dose("w1", "add_media", 10, "manually", 1)  # manual: not counted
    dose("w1", "add_media", 10, "dosing_automation:chemostat", 5)  # too old
    dose("w2", "add_media", 0.3, "dosing_automation:turbidostat", 0.5)
    rates = api.simulate_get("/api/experiments/exp1/media_rates").json
    assert rates["w1"] == {"mediaRate": 1.0, "altMediaRate": 0.2}
    assert rates["w2"] == {"mediaRate": 0.1, "altMediaRate": 0.0}
    assert rates["all"] == {"mediaRate": 1.1, "altMediaRate": 0.2}


def test_delete_is_202_and_the_task_stops_jobs_then_cascades(api, cluster, db, writer, effects, monkeypatch):
    from reactorkit.api import fanout

    calls = []
    monkeypatch.setattr(fanout, "fan_out", lambda method, units, path, body=None, **kw: calls.append(
        (method, list(units), path, body)) or {u: {"ok": True, "unit": u, "value": None} for u in units})
    cluster.experiment("exp1", tags=["x"])
    cluster.worker("w1")
    cluster.assign("w1", "exp1")
    api.simulate_put("/api/experiments/exp1/unit_labels", json={"unit": "w1", "label": "a"})
    writer.execute("INSERT INTO od_readings (experiment, pioreactor_unit, timestamp, od_reading, angle, channel)"
                   " VALUES ('exp1', 'w1', '2026-01-01T00:00:00.000Z', 0.1, 90, 2)")

    result = api.simulate_delete("/api/experiments/exp1")
    assert result.status_code == 202
    assert result.json["result_url_path"] == f"/unit_api/task_results/{result.json['task_id']}"

    outcome = delete_experiment("exp1", str(db.path))  # what the leader's rq worker runs
    assert outcome["deleted"] is True
    assert calls == [("POST", ["w1"], "/unit_api/jobs/stop", {"experiment": "exp1"})]
    assert not db.experiment_exists("exp1")
    for table in ("experiment_tags", "pioreactor_unit_labels", "experiment_worker_assignments", "od_readings",
                  "time_series_rollups"):
        assert db.query(f"SELECT * FROM {table}") == [], table
    assert db.query_one("SELECT unassigned_at FROM experiment_worker_assignments_history")["unassigned_at"]
