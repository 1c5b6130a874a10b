"""Config endpoints: shared file, unit-specific file, merged view, validation before saving, history."""

import pytest

VALID = "[cluster.topology]\nleader_hostname = leader\nleader_address = 127.0.0.1\n\n[mqtt]\nbroker_address = 127.0.0.1\n"


def test_shared_config_is_served_as_text(api, leader_env):
    result = api.simulate_get("/api/config/shared")
    assert result.status_code == 200
    assert result.text == (leader_env / "config.ini").read_text()
    assert result.headers["content-type"].startswith("text/plain")


def test_saving_the_shared_config_writes_it_and_records_history(api, leader_env):
    first = VALID + "\n[stirring.config]\ninitial_target_rpm = 500\n"
    second = VALID + "\n[stirring.config]\ninitial_target_rpm = 600\n"
    assert api.simulate_patch("/api/config/shared", json={"code": first}).json == {"status": "success"}
    assert api.simulate_patch("/api/config/shared", json={"code": second}).status_code == 200
    assert (leader_env / "config.ini").read_text() == second
    history = api.simulate_get("/api/config/shared/history").json
    assert [h["data"] for h in history] == [second, first]
    assert all(h["filename"] == "config.ini" for h in history)


@pytest.mark.parametrize("code, reason", [
    ("[a]\nx = 1\nx = 2\n" + VALID, "already exists"),
    (VALID + "[mqtt]\n", "already exists"),
    ("[mqtt]\n", "leader_hostname"),
    ("[cluster.topology]\nleader_hostname = leader\n[mqtt]\n", "leader_address"),
    ("[cluster.topology]\nleader_hostname = l\nleader_address = 1.2.3.4\n", "[mqtt]"),
    ("[cluster.topology]\nleader_hostname = l\nleader_address = http://leader.local\n[mqtt]\n", "http"),
    ("no section header\n", "section"),
])
def test_invalid_shared_configs_are_400_and_not_saved(api, leader_env, code, reason):
    before = (leader_env / "config.ini").read_text()
    result = api.simulate_patch("/api/config/shared", json={"code": code})
    assert result.status_code == 400
    assert reason.lower() in result.json["cause"].lower()
    assert (leader_env / "config.ini").read_text() == before
    assert api.simulate_get("/api/config/shared/history").json == []


def test_dashes_are_normalised_and_code_is_required(api, leader_env):
    assert api.simulate_patch("/api/config/shared", json={"code": VALID + "[x]\nrange = 1\u20132\n"}).status_code == 200
    assert "range = 1-2" in (leader_env / "config.ini").read_text()
    missing = api.simulate_patch("/api/config/shared", json={"text": VALID})
    assert missing.status_code == 400 and "'code'" in missing.json["cause"]
    wrong = api.simulate_patch("/api/config/shared", json={"code": ["a"]})
    assert wrong.status_code == 400 and "'code'" in wrong.json["cause"]


def test_the_leaders_specific_config_is_its_unit_config(api, leader_env):
    code = "[stirring.config]\ninitial_target_rpm = 321\n"
    assert api.simulate_patch("/api/config/units/leader/specific", json={"code": code}).status_code == 200
    assert (leader_env / "unit_config.ini").read_text() == code
    assert api.simulate_get("/api/config/units/leader/specific").text == code
    history = api.simulate_get("/api/config/units/leader/specific/history").json
    assert history[0]["filename"] == "unit_config.ini::leader" and history[0]["data"] == code
    merged = api.simulate_get("/api/config/units/leader").json
    assert merged["errors"] == {}
    assert merged["configs"]["leader"]["stirring.config"]["initial_target_rpm"] == "321"
    assert merged["configs"]["leader"]["cluster.topology"]["leader_hostname"] == "leader"


def test_specific_config_is_validated_and_one_unit_at_a_time(api, leader_env):
    bad = api.simulate_patch("/api/config/units/leader/specific", json={"code": "[a]\nk=1\nk=2\n"})
    assert bad.status_code == 400
    assert not (leader_env / "unit_config.ini").exists()
    broadcast = api.simulate_get("/api/config/units/$broadcast/specific")
    assert broadcast.status_code == 400 and "$broadcast" in broadcast.json["error"]
    assert api.simulate_get("/api/config/units/ghost/specific").status_code == 404


def test_unreachable_worker_config_is_reported_per_unit(api, cluster):
    cluster.worker("w1")
    api.app.context.leader_api.config.set("cluster.addresses", "w1", "127.0.0.1:9")
    merged = api.simulate_get("/api/config/units/$broadcast").json
    assert set(merged["configs"]) == {"leader"}
    assert merged["errors"]["w1"]["kind"] == "connection_error"
    assert api.simulate_get("/api/config/units/w1/specific").status_code == 502


def test_classic_config_aliases(api, cluster, leader_env):
    cluster.worker("w1")
    assert api.simulate_get("/api/configs").json == ["config.ini", "config_leader.ini", "config_w1.ini"]
    assert api.simulate_get("/api/configs/config.ini").text == (leader_env / "config.ini").read_text()
    assert api.simulate_patch("/api/configs/config.ini", json={"code": VALID}).status_code == 200
    assert api.simulate_get("/api/configs/config.ini/history").json[0]["data"] == VALID
    assert api.simulate_patch("/api/configs/config_leader.ini", json={"code": "[x]\ny = 1\n"}).status_code == 200
    assert api.simulate_get("/api/configs/config_leader.ini").text == "[x]\ny = 1\n"
    assert api.simulate_get("/api/configs/secrets.txt").status_code == 404
    assert api.simulate_get("/api/configs/config_ghost.ini").status_code == 404
    assert api.simulate_get("/api/units/leader/configuration").json["leader"]["x"] == {"y": "1"}


def test_a_save_that_would_refuse_itself_is_a_400_and_not_saved(api, leader_env):
    before = (leader_env / "config.ini").read_text()
    for path, code in (("/api/config/shared", VALID + "[api]\nmax_body_bytes = 100\n"),
                       ("/api/configs/config.ini", VALID + "[api]\nmax_text_chars = 50\n"),
                       ("/api/config/units/leader/specific", "[stirring.config]\ninitial_target_rpm = 500\n"
                                                             "target_rpm_tolerance = 10\n[api]\nmax_body_bytes = 100\n")):
        result = api.simulate_patch(path, json={"code": code})
        assert result.status_code == 400, (path, result.text)
        field = "max_text_chars" if "max_text_chars" in code else "max_body_bytes"
        assert f"[api] {field} would be" in result.json["cause"] and result.json["remediation"], path
    assert (leader_env / "config.ini").read_text() == before
    assert not (leader_env / "unit_config.ini").exists()
    assert api.simulate_get("/api/config/shared/history").json == []
    raised = VALID + "[api]\nmax_body_bytes = 4096\n"  # above its own body: saved, and the same save fits again
    assert api.simulate_patch("/api/config/shared", json={"code": raised}).status_code == 200
    assert api.simulate_patch("/api/config/shared", json={"code": raised}).status_code == 200
    assert (leader_env / "config.ini").read_text() == raised
