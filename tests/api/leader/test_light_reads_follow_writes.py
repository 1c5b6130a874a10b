"""The light leader routes read small tables that they keep between requests: a write by another process or
connection, or through the API, shows on the very next request."""

import subprocess
import sys

SQL = {
    "worker": "INSERT INTO workers (pioreactor_unit, added_at) VALUES (?, '2026-01-01T00:00:00.000Z')",
    "experiment": "INSERT INTO experiments (experiment, created_at, description) VALUES (?, '2026-01-01T00:00:00.000Z', '')",
}


def _insert_in_another_process(path, kind, name):
    code = ("import sqlite3, sys\n"
            "conn = sqlite3.connect(sys.argv[1], timeout=15)\n"
            "conn.execute(sys.argv[2], (sys.argv[3],))\n"
            "conn.commit()\n")
    subprocess.run([sys.executable, "-c", code, str(path), SQL[kind], name], check=True)


def _names(api, path, field):
    result = api.simulate_get(path)
    assert result.status_code == 200, result.text
    return [row[field] for row in result.json]


def test_workers_and_units_show_a_worker_another_process_added(api, cluster, db):
    cluster.worker("w1")
    assert _names(api, "/api/workers", "pioreactor_unit") == ["w1"]
    assert _names(api, "/api/units", "pioreactor_unit") == ["leader", "w1"]
    _insert_in_another_process(db.path, "worker", "w2")
    assert _names(api, "/api/workers", "pioreactor_unit") == ["w1", "w2"]
    assert _names(api, "/api/units", "pioreactor_unit") == ["leader", "w1", "w2"]


def test_experiments_show_an_experiment_another_process_added_and_one_another_connection_deleted(api, cluster, db,
                                                                                                 writer):
    cluster.experiment("exp1")
    assert _names(api, "/api/experiments", "experiment") == ["exp1"]
    _insert_in_another_process(db.path, "experiment", "exp2")
    assert sorted(_names(api, "/api/experiments", "experiment")) == ["exp1", "exp2"]
    writer.execute("DELETE FROM experiments WHERE experiment = 'exp1'")  # as the deletion task does
    assert _names(api, "/api/experiments", "experiment") == ["exp2"]


def test_worker_counts_follow_assignments_made_through_the_api(api, cluster):
    cluster.experiment("exp1")
    cluster.worker("w1")
    assert [e["worker_count"] for e in api.simulate_get("/api/experiments").json] == [0]
    cluster.assign("w1", "exp1")
    assert [e["worker_count"] for e in api.simulate_get("/api/experiments").json] == [1]
    assert api.simulate_put("/api/workers/w1/is_active", json={"is_active": 0}).status_code == 200
    assert [w["is_active"] for w in api.simulate_get("/api/workers").json] == [0]


def test_workers_show_an_address_changed_in_the_config_at_the_next_request(api, cluster):
    cluster.worker("w1")
    assert [w["ipv4_address"] for w in api.simulate_get("/api/workers").json] == ["w1.local"]
    api.app.context.leader_api.config.set("cluster.addresses", "w1", "10.0.0.7:4999")  # changed in place
    assert [w["ipv4_address"] for w in api.simulate_get("/api/workers").json] == ["10.0.0.7"]


def _leader_seen_at(api, path):
    from reactorkit.core.clock import parse_iso

    rows = {row["pioreactor_unit"]: row for row in api.simulate_get(path).json}
    assert rows["leader"]["reachable"] is True
    return parse_iso(rows["leader"]["last_seen_at"])


def test_the_leaders_last_seen_at_is_the_time_of_each_request(api, cluster):
    import math
    import time

    cluster.worker("leader")  # the leader is a worker of the cluster too
    cluster.worker("w1")
    for path in ("/api/units", "/api/workers"):
        first = _leader_seen_at(api, path)
        while math.floor(time.time() * 1000) <= math.floor(first * 1000):  # the next millisecond
            time.sleep(0.001)
        before = math.floor(time.time() * 1000) / 1000
        assert _leader_seen_at(api, path) >= before > first
