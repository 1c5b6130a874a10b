"""USB routes on an in-process leader over a fake kernel view; tasks run on a real rq worker (the test Redis DB).

Mount and eject run real commands: shell one-liners standing in for udisksctl that edit the fake /proc/mounts.
"""

import shlex
import sys

import pytest
from usb_fake_machine import FakeMachine

from reactorkit.core.config import set_config

pytestmark = pytest.mark.integration


@pytest.fixture
def machine(leader_env, tmp_path, monkeypatch):
    return FakeMachine(tmp_path / "machine", monkeypatch)


def task(client, accepted, run_tasks):
    assert accepted.status_code == 202, accepted.text
    assert accepted.json["status"] == "accepted"
    run_tasks()
    return client.simulate_get(accepted.json["result_url_path"]).json


def enable_commands(leader_env, machine, *, unmount_works=True, power_off_works=True):
    """System commands on, with stand-ins for udisksctl acting on the fake /proc/mounts."""
    py = shlex.quote(sys.executable)
    mounts = shlex.quote(str(machine.proc_mounts))
    media = shlex.quote(str(machine.media / "AUTO"))
    mount = (f"{py} -c \"import sys, os; os.makedirs(sys.argv[2], exist_ok=True); "
             f"open(sys.argv[3], 'a').write(sys.argv[1] + ' ' + sys.argv[2] + ' vfat rw 0 0\\n')\" "
             f"{{device}} {media} {mounts}")
    unmount = (f"{py} -c \"import sys; p = sys.argv[2]; lines = open(p).read().splitlines(); "
               f"open(p, 'w').write(''.join(ln + '\\n' for ln in lines if not ln.startswith(sys.argv[1] + ' ')))\" "
               f"{{device}} {mounts}") if unmount_works else "true"
    power_off = "true" if power_off_works else f"{py} -c \"import sys; sys.exit('cannot power off ' + sys.argv[1])\" {{disk}}"
    leader_env.write_config(f"[system]\ncommands_enabled = 1\nusb_mount_command = {mount}\n"
                            f"usb_unmount_command = {unmount}\nusb_power_off_command = {power_off}\n",
                            name="unit_config.ini")
    set_config(None)


def test_status_and_artifacts_of_this_unit(leader_client, machine):
    assert leader_client.simulate_get("/unit_api/usb").json == {"present": False, "mounted": False, "drives": [],
                                                                "unmounted": []}
    root = machine.drive()
    (root / "my_plugin-1.0-py3-none-any.whl").write_bytes(b"w")
    status = leader_client.simulate_get("/unit_api/usb").json
    assert status["mounted"] is True and status["drives"][0]["mount_point"] == str(root)
    listing = leader_client.simulate_get("/unit_api/usb/artifacts").json
    assert listing["drives"] == [str(root)]
    assert [(a["name"], a["kind"], a["package"]) for a in listing["artifacts"]] == [
        ("my_plugin-1.0-py3-none-any.whl", "wheel", "my-plugin")]


def test_mount_and_eject_with_nothing_to_act_on_are_409_in_the_error_shape(leader_client, machine):
    for path in ("/unit_api/usb/mount", "/unit_api/usb/eject"):
        reply = leader_client.simulate_post(path)
        assert reply.status_code == 409, reply.text
        assert set(reply.json) == {"error", "cause", "remediation", "status"} and reply.json["status"] == 409
        assert "no USB drive" in reply.json["cause"]
    machine.add_disk("sda", partitions={"sda1": 100})
    reply = leader_client.simulate_post("/unit_api/usb/mount", json={"device": "/dev/sdz1"})
    assert reply.status_code == 409 and str(machine.dev / "sda1") in reply.json["cause"]
    assert leader_client.simulate_post("/unit_api/usb/mount", json={"device": 3}).status_code == 400


def test_mount_off_a_pi_fails_saying_system_commands_are_disabled(leader_client, machine, run_tasks):
    machine.add_disk("sda", partitions={"sda1": 100})
    done = task(leader_client, leader_client.simulate_post("/unit_api/usb/mount"), run_tasks)
    assert done["status"] == "failed"
    assert "disabled" in done["error"] and "simulated" in done["cause"] and "commands_enabled" in done["remediation"]
    assert leader_client.simulate_get("/unit_api/usb").json["mounted"] is False


def test_mount_runs_the_command_and_reports_where_the_drive_is(leader_env, leader_client, machine, run_tasks):
    enable_commands(leader_env, machine)
    machine.add_disk("sda", partitions={"sda1": 100, "sda2": 100})
    done = task(leader_client, leader_client.simulate_post("/unit_api/usb/mount", json={"device": "sda2"}), run_tasks)
    assert done["status"] == "succeeded", done
    assert done["result"]["device"] == str(machine.dev / "sda2")
    assert done["result"]["mount_point"] == str(machine.media / "AUTO")
    status = leader_client.simulate_get("/unit_api/usb").json
    assert [d["device"] for d in status["drives"]] == [str(machine.dev / "sda2")]
    assert [p["device"] for p in status["unmounted"]] == [str(machine.dev / "sda1")]


def test_eject_unmounts_every_filesystem_of_the_disk_and_reports_power_off(leader_env, leader_client, machine,
                                                                          run_tasks):
    enable_commands(leader_env, machine, power_off_works=False)
    machine.add_disk("sda", partitions={"sda1": 100, "sda2": 100})
    machine.mount("sda1", machine.media / "A")
    machine.mount("sda2", machine.media / "B")
    done = task(leader_client, leader_client.simulate_post("/unit_api/usb/eject", json={"device": "sda1"}), run_tasks)
    assert done["status"] == "succeeded", done
    assert sorted(e["mount_point"] for e in done["result"]["ejected"]) == [str(machine.media / "A"),
                                                                         str(machine.media / "B")]
    assert done["result"]["powered_off"] == {"sda": False}
    assert "cannot power off" in done["result"]["power_off_errors"]["sda"]
    assert leader_client.simulate_get("/unit_api/usb").json["mounted"] is False


def test_eject_fails_when_the_drive_stays_mounted(leader_env, leader_client, machine, run_tasks):
    enable_commands(leader_env, machine, unmount_works=False)
    machine.drive()
    done = task(leader_client, leader_client.simulate_post("/unit_api/usb/eject"), run_tasks)
    assert done["status"] == "failed"
    assert done["error"] == "The USB drive is still mounted." and str(machine.media / "STICK") in done["cause"]


def test_leader_usb_routes_queue_fan_outs_and_refuse_unknown_units(leader_env, leader_client, machine):
    me = leader_env.unit
    for method, path in (("GET", "usb"), ("GET", "usb/artifacts"), ("POST", "usb/mount"), ("POST", "usb/eject")):
        reply = leader_client.simulate_request(method, f"/api/units/{me}/{path}")
        assert reply.status_code == 202, (path, reply.text)
        assert reply.json["result_url_path"] == f"/unit_api/task_results/{reply.json['task_id']}"
        unknown = leader_client.simulate_request(method, f"/api/units/nobody/{path}")
        assert unknown.status_code == 400 and "nobody" in unknown.json["error"]
