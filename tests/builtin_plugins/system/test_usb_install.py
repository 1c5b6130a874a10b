"""Installing a plugin from the leader's USB drive: checks at request time, then a leader task that copies the
wheel into the uploads and has each unit install it (pip for real, into a folder of the test's own)."""

import sys

import pytest
from test_system_plugin_installs import GOOD, wheel
from usb_fake_machine import FakeMachine

from reactorkit.builtin_plugins.system import plugin_tasks

pytestmark = pytest.mark.integration

ROUTE = "/api/units/{}/plugins/install-from-leader-usb"


@pytest.fixture
def machine(leader_env, tmp_path, monkeypatch):
    return FakeMachine(tmp_path / "machine", monkeypatch)


@pytest.fixture
def fan_outs(monkeypatch):
    """The fan-outs the leader task makes: each unit's ``/unit_api/plugins/install`` body, recorded; the leader's
    own leg is run for real (pip), the others answer as a unit that is off."""
    calls = []

    def fake(method, units, path, json_body=None, json_per_unit=None, poll_minutes=15.0):
        calls.append({"method": method, "units": units, "path": path, "per_unit": json_per_unit})
        return {u: {"ok": False, "unit": u, "error": {"kind": "connection_error", "message": "off"},
                    "status_code": None, "retryable": True} for u in units}

    monkeypatch.setattr(plugin_tasks, "fan_out_long", fake)
    return calls


def test_no_drive_no_match_and_disallowed_installs_are_refused_at_once(leader_env, leader_client, machine):
    route = ROUTE.format(leader_env.unit)
    reply = leader_client.simulate_post(route, json={"args": ["rk-usb-plugin"]})
    assert reply.status_code == 409 and reply.json["cause"] == "No USB drive is mounted on the leader."
    root = machine.drive()
    (root / "other_plugin-1.0-py3-none-any.whl").write_bytes(b"x")
    reply = leader_client.simulate_patch(route, json={"args": ["rk-usb-plugin"]})
    assert reply.status_code == 404 and "rk-usb-plugin" in reply.json["error"]
    assert leader_client.simulate_post(route, json={"args": []}).status_code == 400
    assert leader_client.simulate_post(ROUTE.format("nobody"), json={"args": ["other-plugin"]}).status_code == 400
    (leader_env.root / "DISALLOW_UI_INSTALLS").write_text("")
    assert leader_client.simulate_post(route, json={"args": ["other-plugin"]}).status_code == 403


def test_the_wheel_is_copied_to_the_uploads_and_every_unit_gets_its_source(leader_env, leader_client, machine,
                                                                           fan_outs, run_tasks):
    from reactorkit.core.leader_db import LeaderDB

    LeaderDB().add_worker("worker9")
    root = machine.drive()
    name, data = wheel("rk-usb-plugin", "0.2.0", GOOD)
    (root / "plugins").mkdir()
    (root / "plugins" / name).write_bytes(data)
    accepted = leader_client.simulate_post(ROUTE.format("$broadcast"), json={"args": ["rk-usb-plugin>=0.2"]})
    assert accepted.status_code == 202, accepted.text
    run_tasks()
    done = leader_client.simulate_get(accepted.json["result_url_path"]).json
    assert done["status"] == "succeeded", done
    assert set(done["result"]) == {leader_env.unit, "worker9"}

    copied = leader_env.root / "uploads" / name
    assert copied.read_bytes() == data
    [call] = fan_outs
    assert (call["method"], call["path"], sorted(call["units"])) == ("POST", "/unit_api/plugins/install",
                                                                     sorted([leader_env.unit, "worker9"]))
    assert call["per_unit"][leader_env.unit] == {"args": ["rk-usb-plugin>=0.2"], "options": {"source": str(copied)}}
    remote = call["per_unit"]["worker9"]["options"]["source"]
    assert remote.startswith("http://") and remote.endswith(f"/unit_api/system/uploads/{name}")
    # what the leader's unit route is given installs for real
    served = leader_client.simulate_get(f"/unit_api/system/uploads/{name}")
    assert served.status_code == 200 and served.content == data


def test_the_leaders_own_leg_installs_the_copied_wheel(leader_env, leader_client, machine, fan_outs, run_tasks,
                                                       monkeypatch):
    site = leader_env.root / "site"
    site.mkdir()
    with open(leader_env.root / "config.ini", "a") as fh:
        fh.write(f"[plugins]\ninstall_target = {site}\n")
    from reactorkit.core.config import set_config

    set_config(None)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PYTHONPATH", str(site))
    root = machine.drive()
    name, data = wheel("rk-usb-plugin", "0.2.0", GOOD)
    (root / name).write_bytes(data)
    accepted = leader_client.simulate_post(ROUTE.format(leader_env.unit), json={"args": [name]})
    run_tasks()
    assert leader_client.simulate_get(accepted.json["result_url_path"]).json["status"] == "succeeded"
    body = fan_outs[0]["per_unit"][leader_env.unit]
    assert body["args"] == ["rk-usb-plugin"]  # a file name is installed under its package name
    try:
        result = plugin_tasks.install_plugin(body["args"][0], body["options"]["source"])
        assert [p["version"] for p in result["plugins"]] == ["0.2.0"]
        assert any(p.name.startswith("rk_usb_plugin") for p in site.iterdir())
    finally:
        for module in [m for m in sys.modules if m.startswith("rk_usb")]:
            del sys.modules[module]
