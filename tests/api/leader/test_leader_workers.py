"""Inventory, units, models and assignments on the leader, with their effects on the workers."""

import threading
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest

from reactorkit.api.app import create_app


def test_add_list_and_get_workers(api, cluster):
    cluster.worker("w2", model_name="pioreactor_40ml", model_version="1.5")
    cluster.worker("w1")
    rows = api.simulate_get("/api/workers").json
    assert [r["pioreactor_unit"] for r in rows] == ["w1", "w2"]
    assert set(rows[0]) == {"pioreactor_unit", "added_at", "is_active", "model_name", "model_version", "ipv4_address",
                            "reachable", "last_seen_at"}
    assert rows[1]["model_name"] == "pioreactor_40ml" and rows[1]["is_active"] == 1
    assert api.simulate_get("/api/workers/w2").json["model_version"] == "1.5"
    assert api.simulate_get("/api/workers/ghost").status_code == 404


def test_adding_again_updates_the_model(api, cluster):
    cluster.worker("w1", model_name="pioreactor_20ml", model_version="1.0")
    cluster.worker("w1", model_name="pioreactor_20ml", model_version="1.5")
    assert [w["model_version"] for w in api.simulate_get("/api/workers").json] == ["1.5"]


@pytest.mark.parametrize("body, name", [
    ({"pioreactor_unit": "bad name"}, "pioreactor_unit"),
    ({"pioreactor_unit": 5}, "pioreactor_unit"),
    ({}, "pioreactor_unit"),
])
def test_bad_worker_bodies_are_400(api, body, name):
    result = api.simulate_put("/api/workers", json=body)
    assert result.status_code == 400 and f"'{name}'" in result.json["cause"]


def test_units_are_the_leader_and_workers(api, cluster):
    cluster.worker("w1")
    units = api.simulate_get("/api/units").json
    assert [u["pioreactor_unit"] for u in units] == ["leader", "w1"]
    assert units[0]["reachable"] is True  # the leader answers this very call


def test_a_unit_that_does_not_answer_is_marked_unreachable_and_one_that_does_reachable(leader_env, registry,
                                                                                          effects):
    import http.server
    import time

    import falcon.testing

    from reactorkit.core.config import load_config

    class Health(http.server.BaseHTTPRequestHandler):  # w2's API answers; nothing listens at w1's address
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with open(leader_env / "config.ini", "a") as fh:
        fh.write(f"\n[cluster.addresses]\nw1 = 127.0.0.1:1\nw2 = 127.0.0.1:{server.server_address[1]}\n"
                 "\n[cluster]\nreachability_interval_s = 1\nreachability_timeout_s = 2\n")
    app = create_app(registry, config=load_config(), unit="leader", leader=True)
    api = falcon.testing.TestClient(app)
    try:
        for unit in ("w1", "w2"):
            assert api.simulate_put("/api/workers", json={"pioreactor_unit": unit}).status_code == 201
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            rows = {r["pioreactor_unit"]: r for r in api.simulate_get("/api/workers").json}
            if rows["w1"]["reachable"] is not None and rows["w2"]["reachable"] is not None:
                break
            time.sleep(0.2)
        assert rows["w1"]["reachable"] is False and rows["w1"]["last_seen_at"] is None
        assert rows["w2"]["reachable"] is True and rows["w2"]["last_seen_at"]
        units = {u["pioreactor_unit"]: u["reachable"] for u in api.simulate_get("/api/units").json}
        assert units["w1"] is False and units["w2"] is True
        server.shutdown()  # w2 loses power: within a few probing rounds it reads unreachable
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and api.simulate_get("/api/workers/w2").json["reachable"] is not False:
            time.sleep(0.2)
        assert api.simulate_get("/api/workers/w2").json["reachable"] is False
    finally:
        server.shutdown()
        app.context.leader_api.db.close()


def test_models_list_the_contract_models(api):
    models = api.simulate_get("/api/models").json["models"]
    pairs = {(m["model_name"], m["model_version"]) for m in models}
    assert {("pioreactor_20ml", "1.5"), ("pioreactor_40ml", "1.0"), ("pioreactor_20ml_XR", "1.5")} <= pairs
    v10 = next(m for m in models if (m["model_name"], m["model_version"]) == ("pioreactor_20ml", "1.0"))
    assert (v10["max_temp_to_reduce_heating"], v10["max_temp_to_disable_heating"], v10["max_temp_to_shutdown"]) == (63, 65, 66)
    assert v10["reactor_max_fill_volume_ml"] == 18 and v10["is_legacy"] is True


def test_a_models_yaml_file_adds_a_model(api, leader_env):
    (leader_env / "models").mkdir()
    (leader_env / "models" / "big.yaml").write_text(
        "model_name: custom_100ml\nmodel_version: 1.0\nreactor_capacity_ml: 100\nreactor_max_fill_volume_ml: 90\n")
    models = api.simulate_get("/api/models").json["models"]
    custom = next(m for m in models if m["model_name"] == "custom_100ml")
    assert custom["model_version"] == "1.0" and custom["is_contrib"] is True and custom["reactor_capacity_ml"] == 100


def test_worker_model_get_and_put(api, cluster):
    cluster.worker("w1")
    assert api.simulate_put("/api/workers/w1/model", json={"model_name": "pioreactor_40ml", "model_version": "1.5"}).status_code == 200
    model = api.simulate_get("/api/workers/w1/model").json
    assert {k: model[k] for k in ("pioreactor_unit", "model_name", "model_version", "display_name")} == {
        "pioreactor_unit": "w1", "model_name": "pioreactor_40ml", "model_version": "1.5",
        "display_name": "Pioreactor 40ml, v1.5"}
    assert model["reactor_capacity_ml"] == 40  # and the rest of the model's definition
    bad = api.simulate_put("/api/workers/w1/model", json={"model_name": "pioreactor_1l", "model_version": "1.5"})
    assert bad.status_code == 400 and "pioreactor_1l" in bad.json["cause"]
    assert api.simulate_put("/api/workers/ghost/model", json={"model_name": "pioreactor_40ml",
                                                              "model_version": "1.5"}).status_code == 404


def test_deactivating_stops_the_workers_jobs(api, cluster, effects):
    cluster.worker("w1")
    assert api.simulate_put("/api/workers/w1/is_active", json={"is_active": 0}).status_code == 200
    assert api.simulate_get("/api/workers/w1").json["is_active"] == 0
    assert effects.stops_for("w1") == [("/unit_api/jobs/stop/all", None)]
    api.simulate_put("/api/workers/w1/is_active", json={"is_active": 1})
    assert len(effects.stops_for("w1")) == 1  # activating stops nothing
    bad = api.simulate_put("/api/workers/w1/is_active", json={"is_active": "yes"})
    assert bad.status_code == 400 and "'is_active'" in bad.json["cause"]
    assert api.simulate_put("/api/workers/w1/is_active", json={"is_active": 3}).status_code == 400


def test_deleting_a_worker_stops_its_jobs_and_forgets_it(api, cluster, db, effects):
    cluster.experiment("exp1")
    cluster.worker("w1")
    cluster.assign("w1", "exp1")
    db.execute("INSERT INTO config_files_histories VALUES ('2026-01-01T00:00:00.000Z', 'unit_config.ini::w1', 'x')")
    result = api.simulate_delete("/api/workers/w1")
    assert result.status_code == 202
    assert api.simulate_get("/api/workers/w1").status_code == 404
    assert ("/unit_api/jobs/stop/all", None) in effects.stops_for("w1")
    assert ("w1", None) in effects.assignments
    assert db.query("SELECT * FROM config_files_histories") == []
    assert api.simulate_get("/api/experiments/exp1/workers").json == []
    assert api.simulate_delete("/api/workers/w1").status_code == 404


def test_assigning_publishes_the_assignment_and_reassigning_stops_old_jobs(api, cluster, effects):
    cluster.experiment("exp1")
    cluster.experiment("exp2")
    cluster.worker("w1")
    cluster.assign("w1", "exp1")
    assert effects.assignments == [("w1", "exp1")]
    assert effects.stops_for("w1") == []
    cluster.assign("w1", "exp2")
    assert effects.stops_for("w1") == [("/unit_api/jobs/stop", {"experiment": "exp1"})]
    assert effects.assignments[-1] == ("w1", "exp2")
    assert api.simulate_get("/api/workers/w1/experiment").json == {
        "pioreactor_unit": "w1", "is_active": 1, "experiment": "exp2", "model_name": None, "model_version": None}
    assert [w["pioreactor_unit"] for w in api.simulate_get("/api/experiments/exp2/workers").json] == ["w1"]
    assert api.simulate_get("/api/experiments/exp1/workers").json == []
    history = api.simulate_get("/api/experiments/exp1/historical_worker_assignments").json
    assert history[0]["pioreactor_unit"] == "w1" and history[0]["is_currently_assigned_to_experiment"] == 0


def test_assigning_unknown_workers_or_experiments_is_404(api, cluster):
    cluster.experiment("exp1")
    cluster.worker("w1")
    assert api.simulate_put("/api/experiments/exp1/workers", json={"pioreactor_unit": "ghost"}).status_code == 404
    assert api.simulate_put("/api/experiments/nope/workers", json={"pioreactor_unit": "w1"}).status_code == 404
    bad = api.simulate_put("/api/experiments/exp1/workers", json={"unit": "w1"})
    assert bad.status_code == 400 and "'pioreactor_unit'" in bad.json["cause"]


def test_unassigned_worker_experiment_is_404(api, cluster):
    cluster.worker("w1")
    result = api.simulate_get("/api/workers/w1/experiment")
    assert result.status_code == 404 and result.json["remediation"]


def test_removing_one_worker_from_an_experiment(api, cluster, effects):
    cluster.experiment("exp1")
    cluster.worker("w1")
    cluster.worker("w2")
    cluster.assign("w1", "exp1")
    cluster.assign("w2", "exp1")
    assert api.simulate_delete("/api/experiments/exp1/workers/w1").status_code == 200
    assert [w["pioreactor_unit"] for w in api.simulate_get("/api/experiments/exp1/workers").json] == ["w2"]
    assert effects.stops_for("w1") == [("/unit_api/jobs/stop", {"experiment": "exp1"})]
    assert api.simulate_delete("/api/experiments/exp1/workers/w1").status_code == 404


def test_removing_all_workers_of_an_experiment_is_async(api, cluster, effects):
    cluster.experiment("exp1")
    cluster.experiment("exp2")
    for unit in ("w1", "w2", "w3"):
        cluster.worker(unit)
    cluster.assign("w1", "exp1")
    cluster.assign("w2", "exp1")
    cluster.assign("w3", "exp2")
    result = api.simulate_delete("/api/experiments/exp1/workers")
    assert result.status_code == 202 and result.json["task_id"]
    assert ("POST", ["w1", "w2"], "/unit_api/jobs/stop", {"experiment": "exp1"}) in effects.fan_outs
    assignments = {a["pioreactor_unit"]: a["experiment"] for a in api.simulate_get("/api/workers/assignments").json}
    assert assignments == {"w1": None, "w2": None, "w3": "exp2"}


def test_removing_every_assignment(api, cluster, effects):
    cluster.experiment("exp1")
    cluster.experiment("exp2")
    cluster.worker("w1")
    cluster.worker("w2")
    cluster.assign("w1", "exp1")
    cluster.assign("w2", "exp2")
    assert api.simulate_delete("/api/workers/assignments").status_code == 202
    assert all(a["experiment"] is None for a in api.simulate_get("/api/workers/assignments").json)
    assert ("POST", ["w1"], "/unit_api/jobs/stop", {"experiment": "exp1"}) in effects.fan_outs
    assert ("POST", ["w2"], "/unit_api/jobs/stop", {"experiment": "exp2"}) in effects.fan_outs


def test_discover_lists_addressable_units_not_yet_in_the_inventory(api, cluster, leader_env):
    from reactorkit.core.config import load_config

    config = load_config()
    config.set("cluster.addresses", "w1", "127.0.0.1:5001")
    config.set("cluster.addresses", "w9", "127.0.0.1:5009")
    api.app.context.leader_api.config = config
    cluster.worker("w1")
    assert api.simulate_get("/api/workers/discover").json == [{"pioreactor_unit": "w9"}]


@pytest.fixture
def worker_server(tmp_path, registry, monkeypatch):
    """A real HTTP server answering ``/unit_api/health`` as ``newbie`` on a free port."""
    class Quiet(WSGIRequestHandler):
        def log_message(self, *args):
            pass

    app = create_app(registry, unit="newbie", leader=False)
    server = make_server("127.0.0.1", 0, app, handler_class=Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_port
    server.shutdown()


def test_setup_adds_a_reachable_worker(api, worker_server):
    api.app.context.leader_api.config.set("cluster.addresses", "newbie", f"127.0.0.1:{worker_server}")
    result = api.simulate_post("/api/workers/setup", json={"name": "newbie", "model": "pioreactor_20ml", "version": "1.5"})
    assert result.status_code == 200, result.text
    assert result.json == {"msg": "Worker newbie added successfully."}
    assert api.simulate_get("/api/workers/newbie").json["model_name"] == "pioreactor_20ml"


def test_setup_of_an_unreachable_worker_is_an_error_and_adds_nothing(api):
    api.app.context.leader_api.config.set("cluster.addresses", "gone", "127.0.0.1:9")
    result = api.simulate_post("/api/workers/setup", json={"name": "gone"})
    assert result.status_code == 502 and result.json["remediation"]
    assert api.simulate_get("/api/workers/gone").status_code == 404
    assert api.simulate_post("/api/workers/setup", json={"name": "a b"}).status_code == 400
