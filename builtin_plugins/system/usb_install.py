"""Leader task: install a plugin found on the leader's USB drive on units of the cluster (§9).

The artifact (a wheel or sdist on the leader's mounted drive, see
:func:`.usb.find_plugin_artifact`) is copied into the leader's
``$DOT_PIOREACTOR/uploads`` under its own file name (pip reads the name and
version from it), under the USB lock so the drive is not ejected meanwhile.
Then every target installs it through ``/unit_api/plugins/install``: the
leader from that local file, the other units from the leader's
``/unit_api/system/uploads/<file>`` URL.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Any

from reactorkit.plugin import fail_task as fail


def copy_to_uploads(artifact: Path) -> Path:
    """Copy ``artifact`` into ``$DOT_PIOREACTOR/uploads`` (atomically and durably: a hidden temporary name, then
    :func:`durable_replace`, so the copy outlives the drive's removal and a power cut).

    Raises:
        TaskFailed: the drive was removed or cannot be read, or the name is not a plain file name.
    """
    from reactorkit.plugin import UnsafePath, durable_replace, safe_join

    from .files import uploads_dir

    folder = uploads_dir()
    try:
        target = safe_join(folder, artifact.name)
    except UnsafePath as exc:
        raise fail("The artifact's name cannot be used.", cause=str(exc), remediation="Rename the file.") from None
    tmp = folder / f".{artifact.name}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        shutil.copyfile(artifact, tmp)
        durable_replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise fail(f"Could not copy {artifact.name} from the USB drive.", cause=f"{type(exc).__name__}: {exc}",
                   remediation="Check that the drive is still plugged in and mounted (GET /unit_api/usb).") from None
    return target


def install_from_leader_usb(requirement: str, units: list[str]) -> dict[str, Any]:
    """Find ``requirement`` on this (leader) unit's USB drive, copy it to the uploads and install it on ``units``.

    Args:
        requirement: A file name on the drive or a package name with an optional version specifier.
        units: Target units (the leader may be one of them).

    Returns:
        ``{unit: envelope}`` of each unit's ``/unit_api/plugins/install`` task (as ``…/plugins/install``).

    Raises:
        TaskFailed: no drive is mounted, no artifact matches, or it cannot be copied.
    """
    from reactorkit.plugin import unit_url
    from reactorkit.plugin import get_unit_name

    from .api import UPLOAD_URL
    from .plugin_tasks import fan_out_long
    from .usb import acquire_usb_lock, mounted_drives
    from .usb_artifacts import find_plugin_artifact

    lock = acquire_usb_lock()
    try:
        if not mounted_drives():
            raise fail("No USB drive is mounted on the leader.", remediation="Plug the drive into the leader and "
                       "mount it (POST /api/units/<leader>/usb/mount).")
        artifact = find_plugin_artifact(requirement)
        if artifact is None:
            raise fail(f"No wheel or sdist for {requirement!r} on the leader's USB drive.",
                       remediation="See GET /api/units/<leader>/usb/artifacts for what is on the drive.")
        local = copy_to_uploads(artifact)
    finally:
        lock.release()
    leader = get_unit_name()
    url = unit_url(leader) + UPLOAD_URL + local.name
    name = requirement if not requirement.endswith((".whl", ".tar.gz")) else _package_name(local.name)
    per_unit = {u: {"args": [name], "options": {"source": str(local) if u == leader else url}} for u in units}
    return fan_out_long("POST", units, "/unit_api/plugins/install", None, json_per_unit=per_unit)


def _package_name(filename: str) -> str:
    """The distribution name of a wheel/sdist file name (what the units report as installed)."""
    from .usb_artifacts import artifact_kind, package_of

    kind = artifact_kind(filename) or ""
    package, _ = package_of(filename, kind)
    return package or filename
