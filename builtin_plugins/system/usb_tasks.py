"""Tasks the unit's rq worker runs for the USB routes: mount and eject (see :mod:`.usb`).

Both hold the unit's USB lock (``$DOT_PIOREACTOR/storage/.usb.lock``; writing
an export to a drive holds it too) and run the configured system commands of
:mod:`.commands` (``[system] usb_mount_command``, ``usb_unmount_command``,
``usb_power_off_command``; enabled by default only on a Raspberry Pi). Every
outcome is checked against ``/proc/mounts`` afterwards, never assumed.
"""

from __future__ import annotations

import os
from typing import Any

from reactorkit.plugin import fail_task as fail

from .usb import NoDrive, acquire_usb_lock, choose_mounted, choose_unmounted, dev_path, mounted_drives

def mount(device: str | None = None) -> dict[str, Any]:
    """Task: mount ``device`` (default: the first unmounted USB partition) with ``[system] usb_mount_command``.

    Returns:
        ``{"mounted": true, "device", "mount_point", "drive": Drive}``.

    Raises:
        TaskFailed: nothing to mount, system commands disabled, the command failed, or the device is still not
            mounted afterwards.
    """
    from .commands import run_command

    lock = acquire_usb_lock()
    try:
        try:
            partition = choose_unmounted(device)
        except NoDrive as exc:
            raise fail("No USB drive to mount.", cause=str(exc),
                       remediation="Plug a USB drive into the unit, or see GET /unit_api/usb.") from None
        run_command("usb_mount", device=partition.device, disk=dev_path(partition.disk))
        drive = next((d for d in mounted_drives() if d.device == partition.device), None)
        if drive is None:
            raise fail(f"{partition.device} is still not mounted.",
                       cause="The mount command succeeded but /proc/mounts does not list the device.",
                       remediation="Check [system] usb_mount_command, or mount it by hand.")
        return {"mounted": True, "device": drive.device, "mount_point": drive.mount_point, "drive": drive.to_dict()}
    finally:
        lock.release()


def eject(device: str | None = None) -> dict[str, Any]:
    """Task: flush, unmount every filesystem of the drive(s) and power the disk(s) off.

    Args:
        device: A device (``/dev/sda1``), disk (``sda``) or mount point; default every mounted USB drive.

    Returns:
        ``{"ejected": [{device, disk, mount_point}], "powered_off": {disk: bool}, "power_off_errors": {disk: cause}}``;
        a disk that cannot be powered off is still safe to unplug once unmounted.

    Raises:
        TaskFailed: no drive mounted, system commands disabled, or unmounting failed.
    """
    from .commands import run_command

    lock = acquire_usb_lock()
    try:
        try:
            drives = choose_mounted(device)
        except NoDrive as exc:
            raise fail("No USB drive to eject.", cause=str(exc),
                       remediation="See GET /unit_api/usb for the drives of this unit.") from None
        os.sync()
        for drive in drives:
            run_command("usb_unmount", device=drive.device, disk=dev_path(drive.disk), mount_point=drive.mount_point)
        still = [d.mount_point for d in mounted_drives() if d.device in {x.device for x in drives}]
        if still:
            raise fail("The USB drive is still mounted.", cause=f"Still mounted: {', '.join(still)}.",
                       remediation="Stop whatever uses the drive (an open file, a shell in it) and eject again.")
        powered: dict[str, bool] = {}
        errors: dict[str, str] = {}
        for disk in sorted({d.disk for d in drives}):
            problem = _power_off(disk)
            powered[disk] = problem is None
            if problem:
                errors[disk] = problem
        return {"ejected": [{"device": d.device, "disk": d.disk, "mount_point": d.mount_point} for d in drives],
                "powered_off": powered, "power_off_errors": errors}
    finally:
        lock.release()


def _power_off(disk: str) -> str | None:
    """Run ``[system] usb_power_off_command`` for ``disk``; None when it worked, else why not."""
    import shlex
    import subprocess

    from .commands import command_for

    command = command_for("usb_power_off", disk=dev_path(disk), device=dev_path(disk))
    if not command:
        return "no [system] usb_power_off_command is configured"
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{shlex.join(command)}: {type(exc).__name__}: {exc}"
    if done.returncode != 0:
        lines = (done.stdout + done.stderr).strip().splitlines()
        return f"{shlex.join(command)} exited {done.returncode}: {lines[-1] if lines else 'no output'}"
    return None
