"""The unit's ``monitor`` job: its readers on fake system files, and the job as a real process on a real broker."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from reactorkit.builtin_plugins.system import monitor as m
from reactorkit.core.testing import stop_process


# ------------------------------------------------------------------ readers, on fake files
def fake_net(root: Path, interfaces: dict[str, dict[str, str | bool]]) -> Path:
    """``/sys/class/net`` with ``{name: {"address": mac, "wireless": bool, "device": bool}}``."""
    net = root / "net"
    net.mkdir()
    for name, spec in interfaces.items():
        folder = net / name
        folder.mkdir()
        (folder / "address").write_text(f"{spec['address']}\n")
        if spec.get("wireless"):
            (folder / "wireless").mkdir()
        if spec.get("device"):
            (folder / "device").mkdir()
    return net


def test_a_pi_s_network_interfaces_give_both_mac_addresses(tmp_path):
    net = fake_net(tmp_path, {"lo": {"address": "00:00:00:00:00:00"},
                              "eth0": {"address": "dc:a6:32:00:00:01", "device": True},
                              "wlan0": {"address": "dc:a6:32:00:00:02", "wireless": True, "device": True}})
    assert m.read_mac_addresses(net) == ("dc:a6:32:00:00:02", "dc:a6:32:00:00:01")


def test_other_interface_names_are_found_by_kind_and_virtual_ones_are_left_out(tmp_path):
    net = fake_net(tmp_path, {"br0": {"address": "02:00:00:00:00:09"},
                              "enp3s0": {"address": "aa:bb:cc:00:00:01", "device": True},
                              "wlp2s0": {"address": "aa:bb:cc:00:00:02", "wireless": True, "device": True}})
    assert m.read_mac_addresses(net) == ("aa:bb:cc:00:00:02", "aa:bb:cc:00:00:01")


def test_missing_interfaces_give_none(tmp_path):
    assert m.read_mac_addresses(tmp_path / "no-such-folder") == (None, None)
    net = fake_net(tmp_path, {"eth0": {"address": "00:00:00:00:00:00", "device": True}})
    assert m.read_mac_addresses(net) == (None, None)


def test_cpu_temperature_comes_from_the_first_thermal_zone_in_millidegrees(tmp_path):
    zone = tmp_path / "thermal_zone0"
    zone.mkdir()
    (zone / "temp").write_text("48312\n")
    assert m.read_cpu_temperature(tmp_path) == 48.3
    (zone / "temp").write_text("garbage")
    assert m.read_cpu_temperature(tmp_path) is None
    assert m.read_cpu_temperature(tmp_path / "none") is None


def test_available_disk_space_is_the_free_percentage(tmp_path):
    import shutil

    usage = shutil.disk_usage(tmp_path)
    assert m.read_available_disk_space(tmp_path) == round(100 * usage.free / usage.total)
    assert m.read_available_disk_space(tmp_path / "missing") is None


def test_the_board_model_comes_from_the_device_tree_else_the_platform(tmp_path):
    (tmp_path / "model").write_bytes(b"Raspberry Pi 4 Model B Rev 1.4\x00")
    assert m.read_rpi_machine(tmp_path) == "Raspberry Pi 4 Model B Rev 1.4"
    import platform

    off_pi = m.read_rpi_machine(tmp_path / "none")
    assert platform.machine() in off_pi and "Raspberry" not in off_pi


def test_ipv4_is_none_without_a_route_or_for_loopback():
    def unreachable() -> str:
        raise OSError(101, "Network is unreachable")

    assert m.read_ipv4(unreachable) is None
    assert m.read_ipv4(lambda: "127.0.1.1") is None
    assert m.read_ipv4(lambda: "192.168.1.23") == "192.168.1.23"


def test_versions_off_a_pi_are_the_simulated_ones_and_the_app_version_is_the_api_s(tmp_path, monkeypatch):
    import falcon.testing

    from reactorkit.api.resources.system import AppVersion
    from reactorkit.core.config import Config

    monkeypatch.setenv("HARDWARE", "simulated")
    monkeypatch.delenv("FIRMWARE", raising=False)
    app = falcon.App()
    app.add_route("/unit_api/versions/app", AppVersion())
    api_version = falcon.testing.TestClient(app).simulate_get("/unit_api/versions/app").json["version"]
    out = m.versions(Config(), "2026-01-01T00:00:00.000000Z", device_tree=tmp_path)
    assert out == {"app": api_version, "hat": m.SIMULATED_HAT, "firmware": m.SIMULATED_FIRMWARE,
                   "hat_serial": m.SIMULATED_HAT_SERIAL, "rpi_machine": m.read_rpi_machine(tmp_path),
                   "timestamp": "2026-01-01T00:00:00.000000Z"}
    monkeypatch.setenv("FIRMWARE", "1.3")
    assert m.versions(Config(), "t", device_tree=tmp_path)["firmware"] == "1.3"


def test_versions_on_a_pi_read_the_hat_eeprom(tmp_path, monkeypatch):
    from reactorkit.core.config import Config

    monkeypatch.setenv("HARDWARE", "pi")
    (tmp_path / "model").write_bytes(b"Raspberry Pi 5 Model B Rev 1.0\x00")
    out = m.versions(Config(), "t", device_tree=tmp_path)
    assert (out["hat"], out["hat_serial"], out["firmware"]) == (None, None, None)  # no HAT fitted
    (tmp_path / "hat").mkdir()
    (tmp_path / "hat" / "product_ver").write_bytes(b"0x0011\x00")
    (tmp_path / "hat" / "uuid").write_bytes(b"1d3b2a7c-0000-4000-8000-000000000001\x00")
    out = m.versions(Config(), "t", device_tree=tmp_path)
    assert (out["hat"], out["hat_serial"], out["rpi_machine"]) == (
        "0x0011", "1d3b2a7c-0000-4000-8000-000000000001", "Raspberry Pi 5 Model B Rev 1.0")


def test_the_descriptor_is_a_long_running_autostarted_job_of_the_system_plugin():
    from reactorkit.core.plugins import Registry

    descriptor = Registry.installed().jobs["monitor"]
    assert descriptor.is_long_running and descriptor.autostart and descriptor.source == "app"
    assert {s.key for s in descriptor.published_settings} == {
        "versions", "computer_statistics", "ipv4", "wlan_mac_address", "eth_mac_address", "button_down"}


# ------------------------------------------------------------------ the job, a real process on a real broker
def monitor_topic(unit_env, setting: str) -> str:
    return f"{unit_env.prefix}pioreactor/{unit_env.unit}/$experiment/monitor/{setting}"


@pytest.mark.integration
def test_the_job_publishes_its_state_and_versions_under_experiment_and_disconnects_at_stop(
        unit_env, mqtt_recorder, spawn_job):
    from reactorkit import __version__

    since = time.monotonic()
    proc = spawn_job("monitor")  # $EXPERIMENT is test_exp: the monitor runs under $experiment anyway
    mqtt_recorder.wait_for(monitor_topic(unit_env, "$state"), lambda p: p == b"ready", since=since)
    versions = json.loads(mqtt_recorder.wait_for(monitor_topic(unit_env, "versions"), bool, since=since))
    assert set(versions) == {"app", "hat", "firmware", "hat_serial", "rpi_machine", "timestamp"}
    assert versions["app"] == __version__
    stats = json.loads(mqtt_recorder.wait_for(monitor_topic(unit_env, "computer_statistics"), bool, since=since))
    assert set(stats) == {"available_disk_space", "cpu_temperature_celcius", "timestamp"}
    assert 0 <= stats["available_disk_space"] <= 100
    assert mqtt_recorder.wait_for(monitor_topic(unit_env, "button_down"), bool, since=since) == b"False"
    assert not [t for t, *_ in mqtt_recorder.messages if f"/{unit_env.experiment}/monitor/" in t]

    assert stop_process(proc, signal.SIGINT) == 0
    mqtt_recorder.wait_for(monitor_topic(unit_env, "$state"), lambda p: p == b"disconnected", since=since)
    mqtt_recorder.wait_for(monitor_topic(unit_env, "versions"), lambda p: p == b"", since=since)


@pytest.mark.integration
def test_a_blink_asked_by_the_ui_is_answered_in_the_log(unit_env, mqtt_recorder, spawn_job):
    since = time.monotonic()
    spawn_job("monitor")
    mqtt_recorder.wait_for(monitor_topic(unit_env, "$state"), lambda p: p == b"ready", since=since)
    mqtt_recorder.publish(monitor_topic(unit_env, "flicker_led_response_okay"), "1")
    log = json.loads(mqtt_recorder.wait_for(
        f"{unit_env.prefix}pioreactor/{unit_env.unit}/$experiment/logs/app/info",
        lambda p: b"blink" in p, since=since))
    assert log["task"] == "monitor" and unit_env.unit in log["message"]


@pytest.mark.integration
def test_a_killed_monitor_is_lost_by_its_last_will(unit_env, mqtt_recorder, spawn_job):
    since = time.monotonic()
    proc = spawn_job("monitor")
    mqtt_recorder.wait_for(monitor_topic(unit_env, "$state"), lambda p: p == b"ready", since=since)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    mqtt_recorder.wait_for(monitor_topic(unit_env, "$state"), lambda p: p == b"lost", since=since, timeout=300)


@pytest.mark.integration
def test_stop_all_leaves_the_monitor_running(unit_env, mqtt_recorder, spawn_job):
    import subprocess

    from reactorkit.core.testing import pio_command

    since = time.monotonic()
    proc = spawn_job("monitor")
    mqtt_recorder.wait_for(monitor_topic(unit_env, "$state"), lambda p: p == b"ready", since=since)
    killed = subprocess.run(pio_command("kill", "--all-jobs"), env=unit_env.env(), capture_output=True, text=True)
    assert killed.returncode == 0, killed.stderr
    listed = subprocess.run(pio_command("jobs", "list", "--json"), env=unit_env.env(), capture_output=True, text=True)
    assert [j["job_name"] for j in json.loads(listed.stdout)] == ["monitor"]
    assert proc.poll() is None
