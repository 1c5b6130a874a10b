"""Artifacts on this unit's mounted USB drives: plugin wheels, sdists and zip archives (see :mod:`.usb`).

Files at a drive's top level or one visible folder down count: ``*.whl``
(wheel), ``*.tar.gz`` (sdist) and ``*.zip`` (release archives, exports,
state-folder backups). Wheel and sdist names give the package and version
(PEP 427, PEP 625), so a plugin can be asked for by name and version specifier.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Iterator

from .usb import mounted_drives

MAX_ARTIFACTS = 1000
ARTIFACT_KINDS = ((".whl", "wheel"), (".tar.gz", "sdist"), (".zip", "zip"))
SKIPPED_FOLDERS = frozenset({"System Volume Information", "$RECYCLE.BIN", "lost+found"})


def artifact_kind(name: str) -> str | None:
    """``wheel`` (``.whl``), ``sdist`` (``.tar.gz``), ``zip`` (``.zip``) or None for other files."""
    lower = name.lower()
    return next((kind for suffix, kind in ARTIFACT_KINDS if lower.endswith(suffix)), None)


def package_of(name: str, kind: str) -> tuple[str | None, str | None]:
    """``(distribution name, version)`` of a wheel or sdist file name (PEP 427 / PEP 625), else ``(None, None)``."""
    from packaging.utils import InvalidSdistFilename, InvalidWheelFilename, parse_sdist_filename, parse_wheel_filename

    try:
        if kind == "wheel":
            dist, version, _, _ = parse_wheel_filename(name)
            return str(dist), str(version)
        if kind == "sdist":
            dist, version = parse_sdist_filename(name)
            return str(dist), str(version)
    except (InvalidWheelFilename, InvalidSdistFilename, ValueError):
        pass
    return None, None


def _walk(root: Path) -> Iterator[Path]:
    """Files at ``root`` and one visible folder down."""
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError:
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_file(follow_symlinks=False):
            yield Path(entry.path)
        elif entry.is_dir(follow_symlinks=False) and entry.name not in SKIPPED_FOLDERS:
            try:
                inner = sorted(os.scandir(entry.path), key=lambda e: e.name)
            except OSError:
                continue
            for sub in inner:
                if not sub.name.startswith(".") and sub.is_file(follow_symlinks=False):
                    yield Path(sub.path)


def artifacts() -> dict[str, Any]:
    """Artifacts on this unit's mounted USB drives.

    Returns:
        ``{"drives": [mount points], "artifacts": [{name, path (on the drive), drive, kind (wheel|sdist|zip),
        package, version, size_bytes, modified_at (UTC ISO-8601)}]}``; at most 1000 artifacts.
    """
    drives = mounted_drives()
    found: list[dict[str, Any]] = []
    for drive in drives:
        root = Path(drive.mount_point)
        for path in _walk(root):
            kind = artifact_kind(path.name)
            if kind is None:
                continue
            try:
                info = path.stat()
            except OSError:
                continue
            package, version = package_of(path.name, kind)
            found.append({"name": path.name, "path": str(path.relative_to(root)), "drive": drive.mount_point,
                          "kind": kind, "package": package, "version": version, "size_bytes": info.st_size,
                          "modified_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(info.st_mtime))})
            if len(found) >= MAX_ARTIFACTS:
                break
    return {"drives": [d.mount_point for d in drives], "artifacts": found}


def find_plugin_artifact(requirement: str) -> Path | None:
    """The newest wheel (else sdist) on this unit's mounted drives satisfying ``requirement``.

    Args:
        requirement: A file name on the drive (``my_plugin-1.0-py3-none-any.whl``) or a package name with an
            optional version specifier (``my-plugin``, ``my-plugin==1.0``).

    Returns:
        The artifact's path on the drive, or None.
    """
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name
    from packaging.version import InvalidVersion, Version

    listing = artifacts()["artifacts"]
    for item in listing:
        if item["name"] == requirement and item["kind"] in ("wheel", "sdist"):
            return Path(item["drive"]) / item["path"]
    try:
        wanted = Requirement(requirement)
    except InvalidRequirement:
        return None
    best: tuple[tuple[Version, bool], Path] | None = None  # newest version first, a wheel before an sdist
    for item in listing:
        if item["package"] is None or canonicalize_name(item["package"]) != canonicalize_name(wanted.name):
            continue
        try:
            version = Version(item["version"])
        except InvalidVersion:
            continue
        if wanted.specifier and not wanted.specifier.contains(version, prereleases=True):
            continue
        key = (version, item["kind"] == "wheel")
        if best is None or key > best[0]:
            best = (key, Path(item["drive"]) / item["path"])
    return best[1] if best else None
