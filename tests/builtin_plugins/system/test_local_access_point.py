"""The leader's local access point: on only when its flag file exists and NetworkManager can host it."""

import os

import pytest

from reactorkit.core.config import set_config


@pytest.fixture
def flag(leader_env, tmp_path, monkeypatch):
    """The flag file's path (not created), configured for the leader; PATH without nmcli."""
    path = tmp_path / "boot" / "local_access_point"
    path.parent.mkdir()
    leader_env.write_config(f"[local_access_point]\nflag_file = {path}\nssid = pioreactor\ninterface = lo\n",
                            name="unit_config.ini")
    set_config(None)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    return path


def add_nmcli(flag):
    nmcli = flag.parent.parent / "bin" / "nmcli"
    nmcli.write_text("#!/bin/sh\nexit 0\n")
    os.chmod(nmcli, 0o755)


def test_without_the_flag_file_the_access_point_is_off(leader_client, flag):
    add_nmcli(flag)
    assert leader_client.simulate_get("/api/is_local_access_point_active").json == {"result": False}
    state = leader_client.simulate_get("/api/local_access_point").json
    assert state["active"] is False and state["flag_present"] is False and state["network_manager"] is True
    assert state["flag_file"] == str(flag) and "does not exist" in state["reason"] and state["address"] is None


def test_the_flag_without_network_manager_is_not_an_active_access_point(leader_client, flag):
    flag.write_text("")
    assert leader_client.simulate_get("/api/is_local_access_point_active").json == {"result": False}
    state = leader_client.simulate_get("/api/local_access_point").json
    assert (state["active"], state["flag_present"], state["network_manager"]) == (False, True, False)
    assert "NetworkManager" in state["reason"]


def test_the_flag_with_network_manager_is_active_with_the_interfaces_address(leader_client, flag):
    flag.write_text("")
    add_nmcli(flag)
    assert leader_client.simulate_get("/api/is_local_access_point_active").json == {"result": True}
    state = leader_client.simulate_get("/api/local_access_point").json
    assert state["active"] is True and state["ssid"] == "pioreactor" and state["interface"] == "lo"
    assert state["address"] == "127.0.0.1"  # read from the interface, not assumed


def test_the_routes_are_leader_only(leader_env):
    import falcon.testing

    from reactorkit.api.app import create_app
    from reactorkit.core.plugins import Registry

    worker = falcon.testing.TestClient(create_app(Registry.installed(), unit="worker1", leader=False))
    assert worker.simulate_get("/api/local_access_point").status_code == 404
