"""The web UI's broker user follows its token's scope: read-only for `read`, also the /set topics for `control`;
a unit's own broker password is never shown, and the UI's user is not written back into config.ini."""

from __future__ import annotations

import json

import pytest

from reactorkit.core.auth.client import bearer

SHARED = "[cluster.topology]\nleader_hostname = leader\nleader_address = 127.0.0.1\n\n[mqtt]\nbroker_port = 1883\n"


@pytest.fixture(scope="module")
def ui_users(secured_root):
    users = {"read": {"username": "ui_read", "password": "r-secret"},
             "control": {"username": "ui_control", "password": "c-secret"}}
    (secured_root / "storage").mkdir(exist_ok=True)
    (secured_root / "storage" / "mqtt_ui_credentials.json").write_text(json.dumps(users))
    (secured_root / "storage" / "mqtt_credentials.ini").write_text("[mqtt]\nusername = leader\npassword = unit-secret\n")
    (secured_root / "config.ini").write_text(SHARED)
    return users


def test_the_ui_reads_the_broker_user_of_its_scope(secured_leader, tokens, ui_users):
    for scope, user, password in (("read", "ui_read", "r-secret"), ("control", "ui_control", "c-secret"),
                                  ("admin", "ui_control", "c-secret")):
        text = secured_leader.simulate_get("/api/config/shared", headers=bearer(tokens.of(scope))).text
        assert f"username = {user}" in text and f"password = {password}" in text, scope
        merged = secured_leader.simulate_get("/api/config/units/leader", headers=bearer(tokens.of(scope))).json
        mqtt = merged["configs"]["leader"]["mqtt"]
        assert (mqtt["username"], mqtt["password"]) == (user, password), scope
        assert "unit-secret" not in text and "unit-secret" not in json.dumps(merged)


def test_the_unit_api_never_shows_the_unit_s_broker_password(secured_leader, tokens, ui_users):
    merged = secured_leader.simulate_get("/unit_api/config/merged", headers=bearer(tokens.admin)).json
    assert merged["mqtt"]["password"] == "" and merged["mqtt"]["username"] == "leader"


def test_saving_what_the_ui_read_does_not_write_its_broker_user(secured_leader, secured_root, tokens, ui_users):
    text = secured_leader.simulate_get("/api/config/shared", headers=bearer(tokens.admin)).text
    saved = secured_leader.simulate_put("/api/config/shared", json={"code": text + "\n[stirring.config]\nx = 1\n"},
                                        headers=bearer(tokens.admin))
    assert saved.status_code == 200, saved.text
    on_disk = (secured_root / "config.ini").read_text()
    assert "c-secret" not in on_disk and "ui_control" not in on_disk and "[stirring.config]" in on_disk
