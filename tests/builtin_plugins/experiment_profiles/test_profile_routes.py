"""Profile files over the leader API: CRUD, validation diagnostics, classic aliases, unsafe names."""

import os

import pytest

GOOD = 'version: "1.0"\nexperiment_profile_name: demo\ncommon:\n  jobs:\n    stirring:\n      actions:\n        - {type: start, t: 0}\n'
BAD = 'version: "1.0"\nexperiment_profile_name: demo\ncommon:\n  jobs:\n    stirring:\n      actions:\n        - {type: start, t: soon}\n'


def test_create_list_read_update_delete(leader_client, leader_env):
    c = leader_client
    assert c.simulate_post("/api/experiment_profiles", json={"filename": "demo.yaml", "body": GOOD}).json == {"status": "success"}
    listed = c.simulate_get("/api/experiment_profiles").json
    assert [(p["file"], p["experimentProfile"]["experiment_profile_name"]) for p in listed] == [("demo.yaml", "demo")]
    assert listed[0]["fullpath"] == str(leader_env.root / "experiment_profiles" / "demo.yaml")
    assert c.simulate_get("/api/experiment_profiles/demo.yaml").text == GOOD
    changed = GOOD.replace("name: demo", "name: renamed")
    assert c.simulate_patch("/api/experiment_profiles/demo.yaml", json={"body": changed}).status_code == 200
    assert c.simulate_get("/api/contrib/experiment_profiles/demo.yaml").text == changed
    assert c.simulate_delete("/api/experiment_profiles/demo.yaml").json == {"status": "success"}
    assert c.simulate_get("/api/experiment_profiles/demo.yaml").status_code == 404


def test_list_is_newest_first(leader_client, leader_env):
    c = leader_client
    for i, name in enumerate(["old.yaml", "new.yml"]):
        c.simulate_post("/api/experiment_profiles", json={"filename": name, "body": GOOD})
        os.utime(leader_env.root / "experiment_profiles" / name, (1000 + i, 1000 + i))
    assert [p["file"] for p in c.simulate_get("/api/experiment_profiles").json] == ["new.yml", "old.yaml"]


def test_invalid_profiles_are_refused_with_diagnostics_and_not_written(leader_client, leader_env):
    result = leader_client.simulate_post("/api/experiment_profiles", json={"filename": "bad.yaml", "body": BAD})
    assert result.status_code == 400
    body = result.json
    assert body["status"] == 400 and body["error"] == "Invalid experiment profile."
    diagnostic = body["diagnostics"][0]
    assert (diagnostic["code"], diagnostic["line"], diagnostic["path"]) == ("time.invalid", 7, "common.jobs.stirring.actions[0].t")
    assert diagnostic["hint"]
    assert not (leader_env.root / "experiment_profiles" / "bad.yaml").exists()


def test_update_keeps_the_old_file_when_the_new_body_is_invalid(leader_client):
    c = leader_client
    c.simulate_post("/api/experiment_profiles", json={"filename": "demo.yaml", "body": GOOD})
    assert c.simulate_patch("/api/experiment_profiles/demo.yaml", json={"body": BAD}).status_code == 400
    assert c.simulate_get("/api/experiment_profiles/demo.yaml").text == GOOD


def test_creating_an_existing_profile_is_a_conflict(leader_client):
    c = leader_client
    c.simulate_post("/api/experiment_profiles", json={"filename": "demo.yaml", "body": GOOD})
    assert c.simulate_post("/api/experiment_profiles", json={"filename": "demo.yaml", "body": GOOD}).status_code == 409


def test_classic_create_and_patch_take_the_filename_in_the_body(leader_client):
    c = leader_client
    assert c.simulate_post("/api/contrib/experiment_profiles", json={"filename": "c.yaml", "body": GOOD}).status_code == 200
    changed = GOOD.replace("demo", "classic")
    assert c.simulate_patch("/api/contrib/experiment_profiles", json={"filename": "c.yaml", "body": changed}).status_code == 200
    assert c.simulate_get("/api/contrib/experiment_profiles").json[0]["experimentProfile"]["experiment_profile_name"] == "classic"


@pytest.mark.parametrize("name", ["..%2Fconfig.ini", "..%2F..%2Fetc%2Fpasswd", "%2Fetc%2Fpasswd", "sub%2Fx.yaml"])
@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
def test_unsafe_profile_paths_are_refused(leader_client, leader_env, name, method):
    (leader_env.root / "config.ini").write_text("[x]\n")
    result = leader_client.simulate_request(method, f"/api/experiment_profiles/{name}", json={"body": GOOD})
    assert result.status_code == 400
    assert (leader_env.root / "config.ini").read_text() == "[x]\n"


def test_a_symlink_leading_outside_is_refused(leader_client, leader_env, tmp_path):
    outside = tmp_path / "outside.yaml"
    outside.write_text(GOOD)
    folder = leader_env.root / "experiment_profiles"
    folder.mkdir(exist_ok=True)
    (folder / "link.yaml").symlink_to(outside)
    assert leader_client.simulate_get("/api/experiment_profiles/link.yaml").status_code == 400
    assert leader_client.simulate_delete("/api/experiment_profiles/link.yaml").status_code == 400
    assert outside.exists()


@pytest.mark.parametrize("filename", ["../x.yaml", "/tmp/x.yaml", "x.txt", ".hidden.yaml"])
def test_unsafe_or_wrong_names_are_refused_on_create(leader_client, filename):
    assert leader_client.simulate_post("/api/experiment_profiles",
                                       json={"filename": filename, "body": GOOD}).status_code == 400


def test_recent_runs_are_newest_first_for_the_experiment(leader_client, leader_env):
    from reactorkit.core.leader_db import LeaderDB
    from reactorkit.builtin_plugins.experiment_profiles.job import record_run

    db = LeaderDB()
    for name, experiment in [("a", "e1"), ("b", "e2"), ("c", "e1")]:
        record_run(db, name, experiment)
    recent = leader_client.simulate_get("/api/experiments/e1/experiment_profiles/recent").json
    assert [r["experiment_profile_name"] for r in recent] == ["c", "a"]
    assert set(recent[0]) == {"started_at", "experiment_profile_name", "experiment"}


def nested_aliases(levels: int) -> str:
    """A few hundred bytes whose aliases would expand to 9**levels items."""
    lines = ['a0: &a0 ["x","x","x","x","x","x","x","x","x"]']
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]")
    return 'version: "1.0"\nexperiment_profile_name: bomb\n' + "\n".join(lines) + "\n"


def test_yaml_aliases_are_refused_without_expanding_them(leader_client, leader_env):
    bomb = nested_aliases(9)  # 9**9 ≈ 387 million items if expanded
    assert len(bomb) < 1000
    result = leader_client.simulate_post("/api/experiment_profiles", json={"filename": "bomb.yaml", "body": bomb})
    assert result.status_code == 400
    diagnostic = result.json["diagnostics"][0]
    assert "aliases (*a0) are not allowed" in diagnostic["message"] and diagnostic["line"] == 4
    assert not (leader_env.root / "experiment_profiles" / "bomb.yaml").exists()
    # a file with aliases put in the folder by hand is left out of the listing, not expanded
    (leader_env.root / "experiment_profiles").mkdir(exist_ok=True)
    (leader_env.root / "experiment_profiles" / "bomb.yaml").write_text(bomb)
    assert leader_client.simulate_get("/api/experiment_profiles").json == []


def test_anchors_without_aliases_are_accepted(leader_client):
    body = GOOD.replace("common:", "common: &shared")
    result = leader_client.simulate_post("/api/experiment_profiles", json={"filename": "anchor.yaml", "body": body})
    assert result.status_code in (200, 201), result.text


def test_profiles_nested_deeper_than_64_levels_are_refused(leader_client):
    deep = 'version: "1.0"\nexperiment_profile_name: deep\nx: ' + "[" * 200 + "]" * 200 + "\n"
    result = leader_client.simulate_post("/api/experiment_profiles", json={"filename": "deep.yaml", "body": deep})
    assert result.status_code == 400
    assert "nested deeper than 64 levels" in result.json["diagnostics"][0]["message"]
