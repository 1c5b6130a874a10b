"""What the web UI asks of the leader beyond the spec: chart preferences per experiment, the full model of a
worker, the UI build at / with SPA fallback, and export downloads at /exports/."""

import json


def test_chart_preferences_are_null_until_chosen_then_stored_per_experiment(api, cluster):
    cluster.experiment("exp1")
    cluster.experiment("exp2")
    url = "/api/experiments/exp1/chart_preferences"
    assert api.simulate_get(url).json == {"overview_chart_keys": None, "pioreactor_chart_keys": None}
    saved = api.simulate_patch(url, json={"overview_chart_keys": ["implied_growth_rate", "optical_density"]})
    assert saved.status_code == 200
    assert saved.json == {"overview_chart_keys": ["implied_growth_rate", "optical_density"],
                          "pioreactor_chart_keys": None}
    api.simulate_patch(url, json={"pioreactor_chart_keys": []})
    assert api.simulate_get(url).json == {"overview_chart_keys": ["implied_growth_rate", "optical_density"],
                                          "pioreactor_chart_keys": []}
    assert api.simulate_get("/api/experiments/exp2/chart_preferences").json["overview_chart_keys"] is None
    api.simulate_patch(url, json={"overview_chart_keys": None})
    assert api.simulate_get(url).json["overview_chart_keys"] is None


def test_chart_preferences_refuse_unknown_keys_duplicates_and_empty_bodies(api, cluster):
    cluster.experiment("exp1")
    url = "/api/experiments/exp1/chart_preferences"
    unknown = api.simulate_patch(url, json={"overview_chart_keys": ["no_such_chart"]})
    assert unknown.status_code == 400 and "no_such_chart" in unknown.json["cause"]
    twice = api.simulate_patch(url, json={"overview_chart_keys": ["optical_density", "optical_density"]})
    assert twice.status_code == 400 and "overview_chart_keys" in twice.json["cause"]
    assert api.simulate_patch(url, json={}).status_code == 400
    assert api.simulate_get(url).json["overview_chart_keys"] is None  # nothing was written
    assert api.simulate_get("/api/experiments/ghost/chart_preferences").status_code == 404


def test_a_workers_model_carries_its_definition(api, cluster):
    cluster.worker("w1", model_name="pioreactor_40ml", model_version="1.5")
    model = api.simulate_get("/api/workers/w1/model").json
    assert model["pioreactor_unit"] == "w1" and model["model_name"] == "pioreactor_40ml"
    assert model["reactor_capacity_ml"] == 40 and model["reactor_max_fill_volume_ml"] == 36
    for key in ("reactor_diameter_mm", "max_temp_to_reduce_heating", "max_temp_to_disable_heating", "is_legacy",
                "is_contrib"):
        assert key in model


def test_the_shared_config_is_saved_with_put_as_with_patch(api, leader_env):
    text = "[cluster.topology]\nleader_hostname = leader\nleader_address = 127.0.0.1\n\n[mqtt]\nbroker_address = x\n"
    assert api.simulate_put("/api/config/shared", json={"code": text}).status_code == 200
    assert api.simulate_get("/api/config/shared").text == text


def test_without_a_build_the_root_says_how_to_install_one(api):
    page = api.simulate_get("/")
    assert page.status_code == 200 and "pio ui install" in page.text
    assert api.simulate_get("/api/nothing").status_code == 404  # /api stays JSON
    assert api.simulate_get("/api/nothing").json["status"] == 404


def test_the_installed_build_is_served_with_spa_fallback(api, leader_env):
    build = leader_env / "ui" / "1.0"
    (build / "static").mkdir(parents=True)
    (build / "index.html").write_text('<div id="root"></div>')
    (build / "static" / "main-x.js").write_text("console.log(1)")
    (build / "favicon.ico").write_bytes(b"ico")
    (leader_env / "ui" / "installed.json").write_text(json.dumps({"version": "1.0", "path": str(build)}))
    index = api.simulate_get("/")
    assert index.status_code == 200 and index.text == '<div id="root"></div>'
    asset = api.simulate_get("/static/static/main-x.js")
    assert asset.text == "console.log(1)" and asset.headers["content-type"].startswith("text/javascript")
    assert "immutable" in asset.headers["cache-control"]
    assert api.simulate_get("/static/favicon.ico").content == b"ico"
    assert api.simulate_get("/favicon.ico").content == b"ico"
    for spa in ("/overview", "/pioreactors/worker1", "/static/../../config.ini"):
        answer = api.simulate_get(spa)
        assert answer.status_code == 200 and answer.text == '<div id="root"></div>', spa
    assert api.simulate_post("/overview").status_code == 405
    assert api.simulate_get("/unit_api/nothing").status_code == 404


def test_exports_are_downloadable_from_the_exports_folder(api, leader_env):
    (leader_env / "exports").mkdir()
    (leader_env / "exports" / "export_1.zip").write_bytes(b"PK")
    download = api.simulate_get("/exports/export_1.zip")
    assert download.status_code == 200 and download.content == b"PK"
    assert "attachment" in download.headers["content-disposition"]
    assert api.simulate_get("/exports/missing.zip").status_code == 404
    assert api.simulate_get("/exports/..%2Fconfig.ini").status_code == 404
