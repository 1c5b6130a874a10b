"""USB drives of this unit: what is plugged in and mounted (leader-api.md "usb" routes).

Everything is read from the kernel, nothing is assumed:

* a *disk* is an entry of ``/sys/block`` that is removable
  (``/sys/block/<disk>/removable`` is ``1``) or attached over USB (its sysfs
  path runs through a ``usb`` bus), and that holds no system filesystem
  (``/``, ``/boot``, ``/boot/firmware``) — a Pi booted from a USB drive never
  offers to eject its own root;
* a *drive* is a filesystem of such a disk listed in ``/proc/mounts``
  (wherever it is mounted: ``/media/<user>/<label>`` by udisks, or a fstab
  entry), with its size and free space (bytes);
* an *unmounted partition* is a partition of such a disk
  (``/sys/block/<disk>/<part>/partition`` exists; the disk itself when it has
  none) with a ``/dev`` node and no mount.

What is on the drives: :mod:`.usb_artifacts`; mounting and ejecting:
:mod:`.usb_tasks`; installing a plugin from the leader's drive: :mod:`.usb_install`.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

PROC_MOUNTS = Path("/proc/mounts")
SYS_BLOCK = Path("/sys/block")
DEV = Path("/dev")
SYSTEM_MOUNT_POINTS = frozenset({"/", "/boot", "/boot/firmware"})
LOCK_TIMEOUT_S = 30.0
SECTOR_BYTES = 512  # /sys/block/*/size counts 512-byte sectors whatever the device's sector size


class NoDrive(LookupError):
    """Nothing to act on: no USB drive mounted (or none to mount), or not the named one."""


@dataclass(frozen=True)
class Drive:
    """A mounted USB filesystem.

    Attributes:
        device: Its block device, e.g. ``/dev/sda1``.
        disk: The disk it belongs to, e.g. ``sda``.
        mount_point: Where it is mounted.
        fstype: ``vfat``, ``exfat``, ``ext4`` …
        read_only: Mounted ``ro``.
        label: Filesystem label (``/dev/disk/by-label``), or None.
        size_bytes, free_bytes: Capacity and space left (None when it cannot be read).
    """

    device: str
    disk: str
    mount_point: str
    fstype: str
    read_only: bool
    label: str | None
    size_bytes: int | None
    free_bytes: int | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Partition:
    """A partition of a USB disk that is not mounted: ``device`` (``/dev/sdb1``), ``disk``, ``size_bytes``, ``label``."""

    device: str
    disk: str
    size_bytes: int
    label: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ------------------------------------------------------------------ kernel
def _unescape_mount_field(text: str) -> str:
    """``/proc/mounts`` writes space, tab, newline and backslash as octal (``\\040``)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), text)


def read_mounts() -> list[tuple[str, str, str, list[str]]]:
    """``[(source, mount_point, fstype, options)]`` of ``/proc/mounts`` (empty when unreadable)."""
    try:
        text = PROC_MOUNTS.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 4:
            out.append((_unescape_mount_field(parts[0]), _unescape_mount_field(parts[1]), parts[2],
                        parts[3].split(",")))
    return out


def dev_path(name: str) -> str:
    """``/dev/<name>`` (``sda1`` → ``/dev/sda1``)."""
    return str(DEV / name)


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None


def _disks() -> list[str]:
    try:
        return sorted(p.name for p in SYS_BLOCK.iterdir())
    except OSError:
        return []


def disk_of(name: str) -> str | None:
    """The disk (``sda``) a block device name (``sda1`` or ``sda``) belongs to, or None."""
    if (SYS_BLOCK / name).exists():
        return name
    for disk in _disks():
        if (SYS_BLOCK / disk / name / "partition").exists():
            return disk
    return None


def is_usb_disk(disk: str) -> bool:
    """Removable (``removable`` is 1) or on a USB bus (its sysfs path contains ``/usb``)."""
    if _read(SYS_BLOCK / disk / "removable") == "1":
        return True
    return "/usb" in os.path.realpath(SYS_BLOCK / disk)


def _device_name(source: str) -> str | None:
    if not source.startswith(str(DEV) + "/"):
        return None
    return Path(os.path.realpath(source)).name


def system_disks(mounts: list[tuple[str, str, str, list[str]]] | None = None) -> set[str]:
    """Disks holding ``/``, ``/boot`` or ``/boot/firmware`` (never offered as USB drives)."""
    out = set()
    for source, target, _, _ in mounts if mounts is not None else read_mounts():
        name = _device_name(source)
        if target in SYSTEM_MOUNT_POINTS and name:
            disk = disk_of(name)
            if disk:
                out.add(disk)
    return out


def labels() -> dict[str, str]:
    """``{device name: label}`` from ``/dev/disk/by-label`` (udev escapes such as ``\\x20`` decoded)."""
    folder = DEV / "disk" / "by-label"
    out: dict[str, str] = {}
    try:
        links = list(folder.iterdir())
    except OSError:
        return out
    for link in links:
        label = re.sub(r"\\x([0-9a-fA-F]{2})", lambda m: chr(int(m.group(1), 16)), link.name)
        out[Path(os.path.realpath(link)).name] = label
    return out


def _usage(mount_point: str) -> tuple[int | None, int | None]:
    try:
        usage = shutil.disk_usage(mount_point)
    except OSError:
        return None, None
    return usage.total, usage.free


def mounted_drives() -> list[Drive]:
    """USB filesystems mounted now, sorted by mount point (one entry per mount point)."""
    mounts = read_mounts()
    excluded = system_disks(mounts)
    names = labels()
    seen: dict[str, Drive] = {}
    for source, target, fstype, options in mounts:
        name = _device_name(source)
        if not name or target in seen:
            continue
        disk = disk_of(name)
        if disk is None or disk in excluded or not is_usb_disk(disk):
            continue
        size, free = _usage(target)
        seen[target] = Drive(device=dev_path(name), disk=disk, mount_point=target, fstype=fstype,
                             read_only="ro" in options, label=names.get(name), size_bytes=size, free_bytes=free)
    return sorted(seen.values(), key=lambda d: d.mount_point)


def _sectors(path: Path) -> int:
    try:
        return int(_read(path / "size") or 0)
    except ValueError:
        return 0


def unmounted_partitions() -> list[Partition]:
    """Partitions of USB disks with a ``/dev`` node, a size and no mount, sorted by device."""
    mounts = read_mounts()
    excluded = system_disks(mounts)
    mounted = {_device_name(source) for source, _, _, _ in mounts}
    names = labels()
    out = []
    for disk in _disks():
        if disk in excluded or not is_usb_disk(disk) or _sectors(SYS_BLOCK / disk) == 0:
            continue
        try:
            parts = sorted(p.name for p in (SYS_BLOCK / disk).iterdir() if (p / "partition").exists())
        except OSError:
            parts = []
        if not parts:
            parts = [disk]  # a drive formatted without a partition table
        for name in parts:
            folder = SYS_BLOCK / disk if name == disk else SYS_BLOCK / disk / name
            if name in mounted or not (DEV / name).exists() or _sectors(folder) == 0:
                continue
            out.append(Partition(device=dev_path(name), disk=disk, size_bytes=_sectors(folder) * SECTOR_BYTES,
                                 label=names.get(name)))
    return out


def status() -> dict[str, Any]:
    """``{"present", "mounted", "drives": [Drive], "unmounted": [Partition]}`` of this unit.

    ``present``: a USB drive is plugged in (mounted or not); ``mounted``: at least one is mounted.
    """
    drives = mounted_drives()
    unmounted = unmounted_partitions()
    return {"present": bool(drives or unmounted), "mounted": bool(drives),
            "drives": [d.to_dict() for d in drives], "unmounted": [p.to_dict() for p in unmounted]}


def writable_drive() -> Drive | None:
    """The first mounted USB drive that is not read-only (by mount point), or None."""
    return next((d for d in mounted_drives() if not d.read_only and os.access(d.mount_point, os.W_OK)), None)


# ------------------------------------------------------------------- choose
def choose_unmounted(device: str | None) -> Partition:
    """The partition to mount: ``device`` (``/dev/sdb1`` or ``sdb1``) or the first unmounted one.

    Raises:
        NoDrive: nothing to mount, or ``device`` is not an unmounted USB partition.
    """
    candidates = unmounted_partitions()
    if not candidates:
        mounted = mounted_drives()
        if mounted:
            raise NoDrive("every USB drive is already mounted: " + ", ".join(d.mount_point for d in mounted))
        raise NoDrive("no USB drive is plugged into this unit")
    if device is None:
        return candidates[0]
    name = Path(device).name
    for partition in candidates:
        if Path(partition.device).name == name:
            return partition
    raise NoDrive(f"{device} is not an unmounted USB partition here; these are: "
                  + ", ".join(p.device for p in candidates))


def choose_mounted(device: str | None) -> list[Drive]:
    """The drives to eject: those of ``device``'s disk (a device, disk or mount point), or every mounted one.

    Raises:
        NoDrive: no USB drive is mounted, or ``device`` names none of them.
    """
    drives = mounted_drives()
    if not drives:
        raise NoDrive("no USB drive is mounted on this unit")
    if device is None:
        return drives
    name = Path(device).name
    disks = {d.disk for d in drives if device in (d.device, d.mount_point) or name in (Path(d.device).name, d.disk)}
    if not disks:
        raise NoDrive(f"{device} is not a mounted USB drive here; these are: "
                      + ", ".join(f"{d.device} on {d.mount_point}" for d in drives))
    return [d for d in drives if d.disk in disks]


def usb_lock() -> Any:
    """The unit's USB lock (a ``filelock.FileLock`` on ``$DOT_PIOREACTOR/storage/.usb.lock``): held while a drive
    is mounted, ejected, or written to or copied from."""
    from filelock import FileLock

    from reactorkit.plugin import storage_dir

    return FileLock(str(storage_dir() / ".usb.lock"))


def acquire_usb_lock(timeout: float = LOCK_TIMEOUT_S) -> Any:
    """:func:`usb_lock`, acquired (release it when done).

    Raises:
        TaskFailed: another USB operation held it for ``timeout`` seconds.
    """
    from filelock import Timeout

    from reactorkit.plugin import fail_task as fail

    lock = usb_lock()
    try:
        lock.acquire(timeout=timeout)
    except Timeout:
        raise fail("The USB drive is busy.", cause=f"Another USB operation held the lock for {timeout:g} s.",
                   remediation="Wait for the running export, mount or eject to finish, then try again.") from None
    return lock
