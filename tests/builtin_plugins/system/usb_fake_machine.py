"""A fake kernel view for USB tests: ``/proc/mounts``, ``/sys/block`` and ``/dev`` in a temporary folder.

The USB module reads those three paths (module constants); :class:`FakeMachine`
points them at files it writes, so a test can plug, label and mount drives.
"""

from __future__ import annotations

from pathlib import Path


class FakeMachine:
    """Disks, partitions, labels and mounts of a pretend machine (patched into ``reactorkit…system.usb``).

    Starts with a system disk ``vda`` mounted on ``/``.
    """

    def __init__(self, root: Path, monkeypatch) -> None:
        from reactorkit.builtin_plugins.system import usb

        self.root = root
        self.proc_mounts = root / "proc_mounts"
        self.sys_block = root / "sys" / "block"
        self.dev = root / "dev"
        self.media = root / "media"
        for folder in (self.sys_block, self.dev, self.media):
            folder.mkdir(parents=True, exist_ok=True)
        self.proc_mounts.write_text("proc /proc proc rw,relatime 0 0\n")
        monkeypatch.setattr(usb, "PROC_MOUNTS", self.proc_mounts)
        monkeypatch.setattr(usb, "SYS_BLOCK", self.sys_block)
        monkeypatch.setattr(usb, "DEV", self.dev)
        self.add_disk("vda", removable=False, partitions={})
        self.mount("vda", "/", fstype="ext4")

    def add_disk(self, name: str, *, removable: bool = True, on_usb_bus: bool = False, sectors: int = 2_000_000,
                 partitions: dict[str, int] | None = None) -> None:
        """A disk (``/sys/block/<name>`` with ``removable``/``size``, ``/dev/<name>``) and its partitions
        (``{name: sectors}``); ``on_usb_bus`` makes its sysfs path run through a usb bus, as a USB hard drive's."""
        if on_usb_bus:
            real = self.root / "sys" / "devices" / "platform" / "usb1" / "1-1" / "block" / name
            real.mkdir(parents=True)
            (self.sys_block / name).symlink_to(real)
        folder = self.sys_block / name
        folder.mkdir(exist_ok=True)
        (folder / "removable").write_text("1\n" if removable else "0\n")
        (folder / "size").write_text(f"{sectors}\n")
        (self.dev / name).write_text("")
        for part, part_sectors in (partitions if partitions is not None else {f"{name}1": sectors - 2048}).items():
            (folder / part).mkdir()
            (folder / part / "partition").write_text("1\n")
            (folder / part / "size").write_text(f"{part_sectors}\n")
            (self.dev / part).write_text("")

    def label(self, device: str, label: str) -> None:
        """``/dev/disk/by-label/<label>`` → the device (spaces written as udev does, ``\\x20``)."""
        folder = self.dev / "disk" / "by-label"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / label.replace(" ", "\\x20")).symlink_to(Path("..") / ".." / device)

    def mount(self, device: str, mount_point: str | Path, *, fstype: str = "vfat", read_only: bool = False) -> str:
        """Add a ``/proc/mounts`` line (a real folder is made for mount points under :attr:`media`)."""
        target = str(mount_point)
        if target.startswith(str(self.media)):
            Path(target).mkdir(parents=True, exist_ok=True)
        escaped = target.replace(" ", "\\040")
        with self.proc_mounts.open("a") as fh:
            fh.write(f"{self.dev / device} {escaped} {fstype} {'ro' if read_only else 'rw'},relatime 0 0\n")
        return target

    def unmount(self, device: str) -> None:
        lines = [ln for ln in self.proc_mounts.read_text().splitlines() if not ln.startswith(f"{self.dev / device} ")]
        self.proc_mounts.write_text("\n".join(lines) + "\n")

    def drive(self, name: str = "STICK", device: str = "sda1", **kw) -> Path:
        """Plug in ``sda`` (one partition) and mount it on ``media/<name>``; the mount point."""
        disk = device.rstrip("0123456789")
        if not (self.sys_block / disk).exists():
            self.add_disk(disk, partitions={device: 1_000_000})
        return Path(self.mount(device, self.media / name, **kw))
