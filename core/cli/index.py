"""A cached index of what ``pio`` can run, so the CLI starts without loading plugins.

Loading every plugin (entry points, descriptor modules) costs tens of
milliseconds; ``pio --help``, ``pio run --help`` and even ``pio run <job>``
need only names, help texts, CLI options and import paths (and an automation
host job only its automations' classes and field types). The index holds
exactly that, as JSON in ``$DOT_PIOREACTOR/storage/cli_index.json``, and is
rebuilt from the plugin registry whenever its fingerprint changes: the
reactorkit version, ``SKIP_PLUGINS``, the modification times of the
site-packages directories on ``sys.path`` (an install or uninstall touches them),
of the built-in plugins' source files, of ``$DOT_PIOREACTOR/plugins/*.py`` and of the
source files of each third-party plugin package (the index lists them when it is
built, so editing an editable install — ``pip install -e`` — is noticed too).

Rebuilding it saves the leader's tables and topic mappings from the same registry too
(:mod:`reactorkit.core.storage_index`, for the ingestion job).

A job whose class or runner cannot be named by an import path (a lambda, a
nested class) is marked ``needs_registry`` and loaded the slow way.
"""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

INDEX_VERSION = 4

#: Plugin failures that leave jobs, commands or automations out of a registry: an index built from it is used
#: for this call but never saved (the failure may pass without any plugin file changing, e.g. a setting or a
#: file the plugin reads at registration appears later; a saved index would hide the plugin until the next
#: plugin change).
_INDEX_STAGES = ("import", "register_jobs", "register_cli_commands", "register_automations")


def _index_path() -> "Path":
    from pathlib import Path

    return Path(_dot_pioreactor()) / "storage" / "cli_index.json"


def _dot_pioreactor() -> str:
    return os.environ.get("DOT_PIOREACTOR") or os.path.join(os.path.expanduser("~"), ".pioreactor")


def _builtin_plugins_dir() -> str | None:
    import importlib.util

    spec = importlib.util.find_spec("reactorkit.builtin_plugins")
    locations = list(spec.submodule_search_locations or []) if spec else []
    return locations[0] if locations else None


def watched_files(registry: Any) -> list[str]:
    """The source files of the third-party entry-point plugins of ``registry`` (their package's ``*.py``)."""
    out: list[str] = []
    for name, plugin in registry.plugin_modules().items():
        info = registry.plugins.get(name)
        origin = getattr(plugin, "__file__", None)
        if info is None or info.is_builtin or info.source != "entry_points" or not origin:
            continue
        from pathlib import Path

        path = Path(origin)
        if path.name == "__init__.py":
            out.extend(str(p) for p in sorted(path.parent.rglob("*.py")) if "__pycache__" not in p.parts)
        else:
            out.append(str(path))
    return out


def fingerprint(watched: list[str] | tuple[str, ...] = ()) -> str:
    """A string that changes whenever installed plugins or their descriptors may have changed.

    Args:
        watched: Extra source files whose modification (or removal) counts (see :func:`watched_files`).
    """
    from reactorkit import __version__

    parts: list[str] = [str(INDEX_VERSION), __version__, os.environ.get("SKIP_PLUGINS", "")]
    for entry in sys.path:
        # only installation folders: the script's folder or the working directory differ between
        # `pio` and `python -m`, and would make every other call rebuild the index
        if not entry or not entry.rstrip("/").endswith(("site-packages", "dist-packages")):
            continue
        try:
            parts.append(f"{entry}:{os.stat(entry).st_mtime_ns}")
        except OSError:
            continue
    builtin = _builtin_plugins_dir()
    if builtin is not None:
        for plugin in sorted(os.scandir(builtin), key=lambda e: e.name):
            if plugin.is_dir() and not plugin.name.startswith("__"):
                for f in os.scandir(plugin.path):
                    if f.name.endswith(".py"):
                        parts.append(f"{plugin.name}/{f.name}:{f.stat().st_mtime_ns}")
    try:
        files = sorted((f for f in os.scandir(os.path.join(_dot_pioreactor(), "plugins")) if f.name.endswith(".py")),
                       key=lambda f: f.name)
    except OSError:
        files = []
    for f in files:
        parts.append(f"{f.name}:{f.stat().st_mtime_ns}")
    for name in watched:
        try:
            parts.append(f"{name}:{os.stat(name).st_mtime_ns}")
        except OSError:
            parts.append(f"{name}:missing")
    return "|".join(parts)


def _import_path(obj: Any) -> str | None:
    if obj is None:
        return None
    if isinstance(obj, str):
        return obj
    module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", "")
    if not module or not qualname or "<" in qualname or module.startswith("reactorkit_file_plugin_"):
        return None  # (an instance, e.g. a click command, has no qualname of its own: found through the registry)
    return f"{module}:{qualname}"


def build(registry: Any) -> dict[str, Any]:
    """The index of ``registry`` (jobs and CLI commands), as plain JSON-able data."""
    jobs: dict[str, Any] = {}
    for name, d in registry.jobs.items():
        job_class, runner = _import_path(d.job_class), _import_path(d.runner)
        jobs[name] = {
            "job_name": d.job_name,
            "display_name": d.display_name,
            "description": d.description,
            "source": d.source,
            "cli_options": [dict(o.to_dict(), choices=list(o.choices)) for o in d.cli_options],
            "accepts_extra_options": d.accepts_extra_options,
            "cli_arguments": list(d.cli_arguments),
            "stop_priority": d.stop_priority,
            "job_class": job_class,
            "runner": runner,
            "needs_registry": (d.job_class is not None and job_class is None) or (d.runner is not None and runner is None),
        }
    commands = {
        name: {"help": c.help, "command": _import_path(c.command), "source": c.source}
        for name, c in registry.cli_commands.items()
    }
    automations: dict[str, dict[str, Any]] = {}
    for kind, named in registry.automations.items():
        automations[kind] = {
            name: {"automation_class": _import_path(a.automation_class), "source": a.source,
                   "fields": [{"key": f.key, "type": f.type} for f in a.fields]}
            for name, a in named.items()
        }
    return {"jobs": jobs, "cli_commands": commands, "automations": automations, "watched": watched_files(registry)}


def read_watched() -> list[str]:
    """The watched files recorded in the saved index (empty when there is none)."""
    try:
        with open(_index_path()) as f:
            return list(json.load(f).get("watched") or ())
    except (OSError, ValueError, AttributeError):
        return []


def get_index(rebuild: bool = False) -> dict[str, Any]:
    """The current index: read from disk when its fingerprint matches, else rebuilt and saved (not saved when a
    plugin failed to import or to register its jobs, commands or automations: the next call tries it again).

    Args:
        rebuild: Rebuild and save it (and the storage index) whatever the fingerprint says: after a plugin
            change made here (``pio plugins install``/``uninstall``, the API's tasks), which the fingerprint
            misses when pip installs into a folder that is not a site-packages (``[plugins] install_target``).
    """
    path = _index_path()
    try:
        data = json.loads(path.read_text())
        if not rebuild and data.get("fingerprint") == fingerprint(data.get("watched") or ()):
            return data
    except (OSError, ValueError):
        pass
    from reactorkit.core.paths import atomic_write
    from reactorkit.core.plugins import Registry

    registry = Registry.installed()
    built = build(registry)
    data = {"fingerprint": fingerprint(built["watched"]), **built}
    if not any(getattr(f, "stage", None) in _INDEX_STAGES for f in registry.failures):
        try:
            atomic_write(path, json.dumps(data))
        except OSError:  # read-only state folder: work without the cache
            pass
    from reactorkit.core.storage_index import save

    save(registry, built["watched"])  # the leader's tables and topic mappings, from the same registry
    return data
