"""USB drive detection and artifacts, read from a fake /proc/mounts, /sys/block and /dev."""

import os

import pytest
from usb_fake_machine import FakeMachine

from reactorkit.builtin_plugins.system import usb, usb_artifacts


@pytest.fixture
def machine(tmp_path, monkeypatch):
    return FakeMachine(tmp_path, monkeypatch)


def test_a_machine_without_usb_drives_reports_none(machine):
    assert usb.status() == {"present": False, "mounted": False, "drives": [], "unmounted": []}
    assert usb.writable_drive() is None
    assert usb_artifacts.artifacts() == {"drives": [], "artifacts": []}


def test_a_mounted_removable_drive_is_reported_with_label_and_space(machine):
    mount_point = machine.drive("MY STICK")
    machine.label("sda1", "MY STICK")
    status = usb.status()
    assert status["present"] is True and status["mounted"] is True
    [drive] = status["drives"]
    assert drive["device"] == str(machine.dev / "sda1") and drive["disk"] == "sda"
    assert drive["mount_point"] == str(mount_point)  # the \040 of /proc/mounts is a space again
    assert drive["label"] == "MY STICK" and drive["fstype"] == "vfat" and drive["read_only"] is False
    assert drive["size_bytes"] > 0 and 0 <= drive["free_bytes"] <= drive["size_bytes"]
    assert status["unmounted"] == []
    assert usb.writable_drive().mount_point == str(mount_point)


def test_a_drive_on_a_usb_bus_counts_even_if_not_flagged_removable(machine):
    machine.add_disk("sdb", removable=False, on_usb_bus=True, partitions={"sdb1": 4096, "sdb2": 8192})
    machine.mount("sdb2", machine.media / "DATA")
    status = usb.status()
    assert [d["device"] for d in status["drives"]] == [str(machine.dev / "sdb2")]
    assert status["unmounted"] == [{"device": str(machine.dev / "sdb1"), "disk": "sdb", "size_bytes": 4096 * 512,
                                    "label": None}]


def test_fixed_disks_and_the_disk_holding_the_system_are_never_usb_drives(machine):
    machine.add_disk("nvme0n1", removable=False, partitions={"nvme0n1p1": 100})
    machine.mount("nvme0n1p1", machine.media / "fixed")
    machine.add_disk("sdc", partitions={"sdc1": 100, "sdc2": 100})  # a Pi booted from USB
    machine.mount("sdc2", "/boot/firmware")
    machine.mount("sdc1", machine.media / "other")
    assert usb.status()["drives"] == [] and usb.status()["unmounted"] == []


def test_a_drive_without_a_partition_table_is_offered_whole(machine):
    machine.add_disk("sdd", partitions={})
    assert [p["device"] for p in usb.status()["unmounted"]] == [str(machine.dev / "sdd")]
    machine.mount("sdd", machine.media / "WHOLE")
    assert [d["disk"] for d in usb.status()["drives"]] == ["sdd"] and usb.status()["unmounted"] == []


def test_a_read_only_drive_is_not_writable(machine):
    machine.drive(read_only=True)
    assert usb.mounted_drives()[0].read_only is True
    assert usb.writable_drive() is None


def test_choosing_what_to_mount_and_eject_names_the_candidates(machine):
    with pytest.raises(usb.NoDrive, match="no USB drive is plugged"):
        usb.choose_unmounted(None)
    with pytest.raises(usb.NoDrive, match="no USB drive is mounted"):
        usb.choose_mounted(None)
    machine.add_disk("sda", partitions={"sda1": 100, "sda2": 100})
    assert usb.choose_unmounted(None).device == str(machine.dev / "sda1")
    assert usb.choose_unmounted("sda2").device == str(machine.dev / "sda2")
    with pytest.raises(usb.NoDrive, match="sda1"):
        usb.choose_unmounted("/dev/sdz9")
    machine.mount("sda1", machine.media / "A")
    machine.mount("sda2", machine.media / "B")
    with pytest.raises(usb.NoDrive, match="already mounted"):
        usb.choose_unmounted(None)
    # a disk is ejected whole, whichever of its filesystems is named
    assert [d.device for d in usb.choose_mounted(str(machine.media / "B"))] == [str(machine.dev / "sda1"),
                                                                              str(machine.dev / "sda2")]
    with pytest.raises(usb.NoDrive, match="not a mounted USB drive"):
        usb.choose_mounted("sdq")


def write(path, data=b"x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_artifacts_are_wheels_sdists_and_zips_at_the_top_or_one_folder_down(machine):
    root = machine.drive()
    write(root / "my_plugin-1.2.0-py3-none-any.whl", b"wheel")
    write(root / "plugins" / "other_plugin-0.3.tar.gz")
    write(root / "release_26.7.2.zip")
    write(root / "notes.txt")
    write(root / ".hidden" / "secret-1.0-py3-none-any.whl")
    write(root / "a" / "b" / "deep-1.0-py3-none-any.whl")
    write(root / "System Volume Information" / "x-1.0-py3-none-any.whl")
    found = {a["path"]: a for a in usb_artifacts.artifacts()["artifacts"]}
    assert set(found) == {"my_plugin-1.2.0-py3-none-any.whl", "plugins/other_plugin-0.3.tar.gz",
                          "release_26.7.2.zip"}
    wheel = found["my_plugin-1.2.0-py3-none-any.whl"]
    assert (wheel["kind"], wheel["package"], wheel["version"], wheel["size_bytes"]) == ("wheel", "my-plugin", "1.2.0", 5)
    assert wheel["drive"] == str(root) and wheel["modified_at"].endswith("Z")
    assert (found["plugins/other_plugin-0.3.tar.gz"]["kind"], found["plugins/other_plugin-0.3.tar.gz"]["version"]) \
        == ("sdist", "0.3")
    assert found["release_26.7.2.zip"]["kind"] == "zip" and found["release_26.7.2.zip"]["package"] is None


def test_a_plugin_is_found_by_name_version_specifier_or_file_name(machine):
    root = machine.drive()
    write(root / "my_plugin-1.0.0-py3-none-any.whl")
    write(root / "my_plugin-1.1.0.tar.gz")
    write(root / "wheels" / "my_plugin-1.1.0-py3-none-any.whl")
    write(root / "my_plugin-2.0.0rc1-py3-none-any.whl")
    assert usb_artifacts.find_plugin_artifact("My_Plugin") == root / "my_plugin-2.0.0rc1-py3-none-any.whl"
    # the newest version that satisfies the specifier; a wheel before an sdist of the same version
    assert usb_artifacts.find_plugin_artifact("my-plugin<2") == root / "wheels" / "my_plugin-1.1.0-py3-none-any.whl"
    assert usb_artifacts.find_plugin_artifact("my-plugin==1.0.0") == root / "my_plugin-1.0.0-py3-none-any.whl"
    assert usb_artifacts.find_plugin_artifact("my_plugin-1.1.0.tar.gz") == root / "my_plugin-1.1.0.tar.gz"
    assert usb_artifacts.find_plugin_artifact("my-plugin>3") is None
    assert usb_artifacts.find_plugin_artifact("another-plugin") is None


def test_an_unreadable_kernel_view_means_no_drives(machine, monkeypatch):
    monkeypatch.setattr(usb, "PROC_MOUNTS", machine.root / "missing")
    monkeypatch.setattr(usb, "SYS_BLOCK", machine.root / "missing_too")
    assert usb.status() == {"present": False, "mounted": False, "drives": [], "unmounted": []}


def test_this_machine_is_read_without_errors():
    """The real /proc/mounts and /sys/block of the machine running the tests: whatever is there, a valid status."""
    status = usb.status()
    assert status["present"] == bool(status["drives"] or status["unmounted"])
    assert all(d["mount_point"] not in usb.SYSTEM_MOUNT_POINTS for d in status["drives"])
    assert all(os.path.isabs(d["device"]) for d in status["drives"] + status["unmounted"])
