"""Profile files in ``$DOT_PIOREACTOR/experiment_profiles/`` (``.yaml``/``.yml``), safe names only."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from .document import safe_load

from reactorkit.plugin import UnsafePath, dot_pioreactor, safe_join

EXTENSIONS = (".yaml", ".yml")
MAX_PROFILE_BYTES = 1_000_000


class BadProfileName(ValueError):
    """A profile file name that is not ``<name>.yaml``/``.yml`` in the profiles folder."""


def profiles_dir() -> Path:
    """``$DOT_PIOREACTOR/experiment_profiles`` (created on demand)."""
    path = dot_pioreactor() / "experiment_profiles"
    path.mkdir(parents=True, exist_ok=True)
    return path


def check_name(filename: str) -> str:
    """``filename`` if it is a plain ``.yaml``/``.yml`` name (no folders, no hidden files).

    Raises:
        UnsafePath: it has a folder part, ``..`` or is absolute.
        BadProfileName: wrong extension, hidden, empty or too long.
    """
    if not isinstance(filename, str) or not filename.strip():
        raise BadProfileName("the filename is empty")
    if "/" in filename or "\\" in filename or "\x00" in filename or filename in (".", ".."):
        raise UnsafePath(f"{filename!r} is not a file name inside experiment_profiles/")
    if filename.startswith("."):
        raise BadProfileName(f"{filename!r} is hidden; names must not start with '.'")
    if not filename.lower().endswith(EXTENSIONS):
        raise BadProfileName(f"{filename!r} must end with .yaml or .yml")
    if len(filename) > 200:
        raise BadProfileName("the filename is longer than 200 characters")
    return filename


def profile_path(filename: str) -> Path:
    """The path of ``filename`` inside the profiles folder (it may not exist).

    Raises:
        UnsafePath, BadProfileName: see :func:`check_name`; also a link that leads outside.
    """
    return safe_join(profiles_dir(), check_name(filename))


def list_profiles() -> list[dict[str, Any]]:
    """``[{experimentProfile, file, fullpath}]`` newest first (by modification time).

    Files that are not YAML mappings are left out (they are still readable by name).
    """
    folder = profiles_dir()
    entries = []
    for entry in os.scandir(folder):
        if not entry.name.lower().endswith(EXTENSIONS) or entry.name.startswith("."):
            continue
        if not entry.is_file(follow_symlinks=False):
            continue
        try:
            data = safe_load(Path(entry.path).read_text(encoding="utf-8"))  # no aliases: a listing costs its bytes
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue
        if not isinstance(data, dict):
            continue
        entries.append((entry.stat(follow_symlinks=False).st_mtime, entry.name, data, entry.path))
    entries.sort(key=lambda e: (-e[0], e[1]))
    return [{"experimentProfile": with_defaults(data), "file": name, "fullpath": path}
            for _, name, data, path in entries]


def with_defaults(data: dict[str, Any]) -> dict[str, Any]:
    """A profile mapping with the schema's defaults filled in where absent, as the web UI reads listings:
    ``metadata {author, description}``, ``plugins []``, ``common {jobs}``, ``pioreactors {unit: {jobs, label}}``,
    ``inputs {}`` (values that are present are kept as written)."""
    out = dict(data)
    metadata = out.get("metadata") if isinstance(out.get("metadata"), dict) else {}
    out["metadata"] = {"author": None, "description": None, **metadata}
    out.setdefault("plugins", [])
    out["plugins"] = out["plugins"] if out["plugins"] is not None else []
    common = out.get("common") if isinstance(out.get("common"), dict) else {}
    out["common"] = {"jobs": {}, **common}
    units = out.get("pioreactors") if isinstance(out.get("pioreactors"), dict) else {}
    out["pioreactors"] = {unit: {"jobs": {}, "label": None, **(block if isinstance(block, dict) else {})}
                          for unit, block in units.items()}
    out["inputs"] = out.get("inputs") if isinstance(out.get("inputs"), dict) else {}
    return out


def resolve_for_run(path_text: str) -> Path:
    """The profile a run names: a file name in the profiles folder, or a path inside ``$DOT_PIOREACTOR``.

    Raises:
        UnsafePath: the path leads outside ``$DOT_PIOREACTOR``.
        FileNotFoundError: there is no such file.
    """
    root = dot_pioreactor().resolve()
    candidate = Path(path_text)
    if not candidate.is_absolute():
        in_profiles = profiles_dir() / candidate
        candidate = in_profiles if in_profiles.exists() else dot_pioreactor() / candidate
    resolved = candidate.resolve()
    if resolved != root and root not in resolved.parents:
        raise UnsafePath(f"{path_text!r} is outside {root}; put profiles in {root / 'experiment_profiles'}")
    if not resolved.is_file():
        raise FileNotFoundError(f"no profile at {resolved}")
    return resolved
