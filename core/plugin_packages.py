"""Installing and uninstalling plugin packages, and the installed-plugins listing (domain facts §9).

Used by ``pio plugins install/uninstall/list`` and by the system plugin's API tasks.
pip installs into this unit's environment, or into ``[plugins] install_target``
(a folder on ``PYTHONPATH``, e.g. for tests) when set. An install merges the
default config sections the plugins ship (``register_config_sections``) into
``config.ini``, adding only what is missing. After a change the
``pio serve`` master gets SIGHUP so fresh workers load the new plugin set
(descriptors and routes), and the plugins are loaded once in a fresh
interpreter: a plugin that fails to import is reported in the result (and in the
API's list of installed plugins), never fatal.
"""

from __future__ import annotations

import importlib
import json
import re
import shutil
import subprocess
import sys
from importlib.metadata import distributions
from pathlib import Path
from typing import Any

from reactorkit.core.task_functions import fail

PIP_TIMEOUT_S = 900
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9,._-]+\])?([<>=!~]=?[A-Za-z0-9.*+!_-]+(,[<>=!~]=?[A-Za-z0-9.*+!_-]+)*)?\Z")


def normalize(name: str) -> str:
    """PEP 503 name: lowercase, runs of ``-_.`` as ``-``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def install_target() -> str | None:
    from reactorkit.core.config import get_config

    value = get_config().get("plugins", "install_target", fallback="").strip()
    return value or None


def installed_plugins(include_builtin: bool = False) -> list[dict[str, Any]]:
    """``[{name, version, description, homepage, source, author, errors}]`` of this unit's plugins.

    Entry-point plugins are named by their distribution (what pip installs);
    file plugins by ``__plugin_name__`` (else the file's stem), as ``pio plugins list``
    names them. ``errors`` lists import and hook failures and every contribution that
    fails (route, table, topic mapping, CLI command: :meth:`Registry.check_contributions`).
    """
    from reactorkit.core.plugins import Registry, make_plugin_manager

    importlib.invalidate_caches()
    registry = Registry.from_plugins(*make_plugin_manager()).check_contributions()
    out = [info.to_dict() for info in registry.plugins.values() if include_builtin or not info.is_builtin]
    return sorted(out, key=lambda e: e["name"].lower())


def _check_name(name: str) -> None:
    if not NAME.fullmatch(name):
        raise fail(f"{name!r} is not a package name.", remediation="Give a name such as my-plugin or my-plugin==1.2.")


def _pip(args: list[str]) -> list[str]:
    cmd = [sys.executable, "-m", "pip", *args]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise fail("pip took too long.", cause=f"{' '.join(args[:2])} ran over {PIP_TIMEOUT_S} s.") from None
    lines = [ln for ln in (done.stdout + done.stderr).splitlines() if ln.strip()]
    if done.returncode != 0:
        errors = [ln for ln in lines if ln.startswith("ERROR")] or lines
        raise fail(f"pip {args[0]} failed (exit {done.returncode}).", cause=errors[-1] if errors else "no output",
                   remediation="Check the name/source; see the unit's task worker log for pip's full output.")
    return lines


def _in_fresh_interpreter(function: str) -> list[Any]:
    """``function()`` (``"module:name"``, returning JSON-able data) run in a new interpreter, which sees exactly
    what is installed now; ``[]`` when it fails (the listing reports a broken plugin, never this)."""
    code = f"import json, pkgutil; print(json.dumps(pkgutil.resolve_name({function!r})()))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    try:
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return []


def _fresh_listing() -> list[dict[str, Any]]:
    """:func:`installed_plugins` in a new interpreter."""
    return _in_fresh_interpreter("reactorkit.core.plugin_packages:installed_plugins")


def _matching(listing: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    wanted = normalize(re.split(r"[\[<>=!~]", name, maxsplit=1)[0])
    return [p for p in listing if wanted in (normalize(p["name"]), normalize(p.get("entry_point", "")))]


def install_package(name: str, source: str | None = None) -> dict[str, Any]:
    """``pip install --upgrade <source or name>``, then report how the plugin loads.

    Returns:
        ``{"installed": name, "plugins": [listing entries of it], "load_errors": [...], "config_added": [...]}``.

    Raises:
        TaskFailed: bad name or source, or pip failed.
    """
    _check_name(name)
    spec = source or name
    args = ["install", "--upgrade", "--no-input", "--disable-pip-version-check"]
    target = install_target()
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        args += ["--target", target]
    _pip(args + [spec])
    config_added = _merge_config_defaults()
    found = _matching(_fresh_listing(), name)
    errors = [e for p in found for e in p.get("errors", [])]
    return {"installed": name, "plugins": found, "load_errors": errors, "config_added": config_added}


def _merge_config_defaults() -> list[str]:
    """The plugins' default config sections merged into config.ini, in a fresh interpreter (sees the new plugin);
    returns the ``section.key`` added (a plugin's broken defaults are reported by the listing, never fatal)."""
    return _in_fresh_interpreter("reactorkit.core.config_defaults:merge_installed_config_sections")


def _remove_from_target(target: str, name: str) -> bool:
    wanted = normalize(name)
    for dist in distributions(path=[target]):
        if normalize(dist.metadata["Name"] or "") != wanted:
            continue
        root = Path(target).resolve()
        folders = set()
        for file in dist.files or ():
            path = Path(dist.locate_file(file)).resolve()
            if root in path.parents and path.is_file():
                path.unlink()
                folders.add(path.parent)
        for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
            while folder != root and root in folder.parents and folder.exists() and not any(folder.iterdir()):
                folder.rmdir()
                folder = folder.parent
        info = Path(str(dist._path)) if hasattr(dist, "_path") else None  # the .dist-info folder
        if info is not None and info.exists() and root in info.resolve().parents:
            shutil.rmtree(info)
        return True
    return False


def uninstall_package(name: str) -> dict[str, Any]:
    """Remove a plugin: a matching ``$DOT_PIOREACTOR/plugins/<name>.py`` first, else the pip distribution.

    Raises:
        TaskFailed: nothing of that name is installed, or pip failed.
    """
    from reactorkit.core.paths import dot_pioreactor

    _check_name(name)
    folder = dot_pioreactor() / "plugins"
    for candidate in sorted(folder.glob("*.py")) if folder.is_dir() else ():
        if normalize(candidate.stem) == normalize(name) or _declared_name(candidate) == name:
            candidate.unlink()
            return {"uninstalled": name, "source": f"plugins/{candidate.name}"}
    target = install_target()
    if target and _remove_from_target(target, name):
        return {"uninstalled": name, "source": "entry_points"}
    if not any(normalize(d.metadata["Name"] or "") == normalize(name) for d in distributions()):
        raise fail(f"Plugin {name!r} is not installed.", remediation="See pio plugins list.")
    _pip(["uninstall", "--yes", "--disable-pip-version-check", name])
    return {"uninstalled": name, "source": "entry_points"}


def _declared_name(path: Path) -> str | None:
    """``__plugin_name__ = "…"`` of a file plugin, read without importing it."""
    import ast

    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return None
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__plugin_name__" for t in node.targets):
            if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                return node.value.value
    return None
