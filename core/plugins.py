"""Load plugins and collect what they contribute.

Two sources of plugins:

* the ``reactorkit.plugins`` entry-point group (built-ins register there too;
  an entry point whose module lives under ``reactorkit.builtin_plugins`` is a
  built-in, source ``"app"``);
* single-file plugins ``$DOT_PIOREACTOR/plugins/*.py``, imported in name order
  (source ``"plugins/<file>.py"``), with optional module variables
  ``__plugin_name__``, ``__plugin_summary__``, ``__plugin_version__``,
  ``__plugin_homepage__``, ``__plugin_author__``.

Hooks are called through pluggy's hook caller (``pm.hook.register_jobs()``), so
``tryfirst``/``trylast``, wrappers (``@hookimpl(wrapper=True)``, which see the
list of every implementation's records) and hook arguments behave as pluggy
documents. Each plain implementation runs inside its own guard
(:func:`guard_hookimpls`): a plugin that fails to import, raises in a hook, or
returns something that is not the expected record is skipped for that hook,
logged with its traceback, and listed in :attr:`Registry.failures`; everything
else keeps working. ``SKIP_PLUGINS=1`` loads built-ins only;
``REACTORKIT_TRACE_HOOKS=1`` logs every hook call and result (logger
``reactorkit.plugins.trace``, level INFO).

Duplicate keys: ``trylast`` implementations first, then the others, then
``tryfirst`` ones; within each, built-ins first, then third-party plugins in
name order. The later one wins and the override is logged at WARNING.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import sys
import traceback
from dataclasses import dataclass, field
from functools import cached_property
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any, Iterable

import pluggy

from reactorkit.core import descriptors as d
from reactorkit.core.hooks import PROJECT_NAME, specs
from reactorkit.core.paths import dot_pioreactor
from reactorkit.core.records import replace

ENTRY_POINT_GROUP = "reactorkit.plugins"
BUILTIN_PREFIX = "reactorkit.builtin_plugins."
TRACE_ENV = "REACTORKIT_TRACE_HOOKS"
logger = logging.getLogger("reactorkit.plugins")
trace_logger = logging.getLogger("reactorkit.plugins.trace")


@dataclass(frozen=True)
class PluginFailure:
    """A plugin that could not be loaded or whose hook failed.

    Attributes:
        plugin: The plugin's name (entry-point name or file stem).
        stage: ``"import"`` or the hook name, e.g. ``"register_jobs"``.
        error: One line, e.g. ``"ValueError: job_name must be snake_case …"``.
        traceback: Full traceback text for logs.
    """

    plugin: str
    stage: str
    error: str
    traceback: str = field(default="", repr=False)


@dataclass
class PluginInfo:
    """An installed plugin, as ``pio plugins list`` and the API's list of installed plugins show it."""

    name: str
    version: str = "Unknown"
    description: str = "Unknown"
    homepage: str = "Unknown"
    author: str = "Unknown"
    source: str = "entry_points"
    is_builtin: bool = False
    errors: list[str] = field(default_factory=list)
    distribution: str = ""

    @property
    def public_name(self) -> str:
        """The name a user installs and uninstalls: the distribution for a third-party package
        (``reactorkit-ph-plugin``), else the plugin's own name (built-ins, single files)."""
        if self.source == "entry_points" and self.distribution:
            return self.distribution
        return self.name

    def to_dict(self) -> dict[str, Any]:
        out = {
            "name": self.public_name,
            "version": self.version,
            "description": self.description,
            "homepage": self.homepage,
            "author": self.author,
            "source": self.source,
            "errors": list(self.errors),
        }
        if self.public_name != self.name:
            out["entry_point"] = self.name
        return out


@dataclass
class LoadedPlugins:
    """What :func:`make_plugin_manager` found: infos by name and import failures."""

    infos: dict[str, PluginInfo] = field(default_factory=dict)
    failures: list[PluginFailure] = field(default_factory=list)


def _record_failure(loaded: LoadedPlugins, plugin: str, stage: str, exc: BaseException) -> None:
    failure = PluginFailure(
        plugin=plugin,
        stage=stage,
        error=f"{type(exc).__name__}: {exc}",
        traceback="".join(traceback.format_exception(exc)),
    )
    loaded.failures.append(failure)
    info = loaded.infos.setdefault(plugin, PluginInfo(name=plugin))
    info.errors.append(f"{stage}: {failure.error}")
    logger.error("plugin %s failed at %s: %s\n%s", plugin, stage, failure.error, failure.traceback)


def _dist_metadata(ep: EntryPoint) -> dict[str, str]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return {}
    meta = dist.metadata
    homepage = meta.get("Home-page") or ""
    if not homepage:
        for url in meta.get_all("Project-URL") or []:
            homepage = url.split(",", 1)[-1].strip()
            break
    return {
        "version": dist.version or "Unknown",
        "description": meta.get("Summary") or "Unknown",
        "homepage": homepage or "Unknown",
        "author": meta.get("Author") or meta.get("Author-email") or "Unknown",
        "dist_name": meta.get("Name") or "",
    }


def make_plugin_manager(
    *, load_installed: bool = True, plugins_dir: Path | None = None
) -> tuple[pluggy.PluginManager, LoadedPlugins]:
    """Create the plugin manager with our hook specifications.

    Args:
        load_installed: Load the entry-point group and the plugins folder.
            Tests pass ``False`` and register plugins by hand.
        plugins_dir: Folder of single-file plugins; default
            ``$DOT_PIOREACTOR/plugins``.

    Returns:
        ``(plugin_manager, loaded)`` where ``loaded`` holds a
        :class:`PluginInfo` per plugin and the import failures.
    """
    pm = pluggy.PluginManager(PROJECT_NAME)
    pm.add_hookspecs(specs)
    if os.environ.get(TRACE_ENV, "").lower() in ("1", "true", "yes"):
        enable_hook_tracing(pm)
    loaded = LoadedPlugins()
    if not load_installed:
        return pm, loaded

    skip_third_party = os.environ.get("SKIP_PLUGINS", "").lower() in ("1", "true", "yes")
    eps = sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: (not ep.value.startswith(BUILTIN_PREFIX), ep.name))
    metadata: dict[int, dict[str, str]] = {}  # per distribution: its METADATA is parsed once, not per entry point
    for ep in eps:
        builtin = ep.value.startswith(BUILTIN_PREFIX)
        if skip_third_party and not builtin:
            continue
        if pm.has_plugin(ep.name):
            continue
        key = id(getattr(ep, "dist", None))
        if key not in metadata:
            metadata[key] = _dist_metadata(ep)
        meta = metadata[key]
        info = PluginInfo(
            name=ep.name,
            version=meta.get("version", "Unknown"),
            description=meta.get("description", "Unknown"),
            homepage=meta.get("homepage", "Unknown"),
            author=meta.get("author", "Unknown"),
            source="app" if builtin else "entry_points",
            is_builtin=builtin,
            distribution="" if builtin else meta.get("dist_name", ""),
        )
        loaded.infos[ep.name] = info
        try:
            module = ep.load()
            if builtin and module.__doc__:
                info.description = module.__doc__.strip().splitlines()[0]
            pm.register(module, name=ep.name)
        except Exception as exc:  # a broken plugin is reported, never fatal
            _record_failure(loaded, ep.name, "import", exc)

    if not skip_third_party:
        folder = plugins_dir if plugins_dir is not None else dot_pioreactor() / "plugins"
        for path in sorted(folder.glob("*.py")) if folder.is_dir() else ():
            _load_file_plugin(pm, loaded, path)
    return pm, loaded


def enable_hook_tracing(pm: pluggy.PluginManager, write: Any = None) -> Any:
    """Log every hook call of ``pm``: hook name, arguments, each implementation and the result.

    Args:
        write: Called with each trace line (str); default INFO on ``reactorkit.plugins.trace``.

    Returns:
        A function that switches tracing off again.
    """
    pm.trace.root.setwriter(write or (lambda line: trace_logger.info(line.rstrip())))
    return pm.enable_tracing()


class Contribution(list):
    """What one hook implementation returned: a list of records, plus where it came from.

    Attributes:
        plugin: The plugin's registered name.
        priority: 0 ``trylast``, 1 plain, 2 ``tryfirst``.
        error: The exception the implementation raised (the list is then empty), else ``None``.
    """

    def __init__(self, records: Iterable[Any], plugin: str, priority: int, error: BaseException | None = None):
        super().__init__(records)
        self.plugin = plugin
        self.priority = priority
        self.error = error


_GUARDED = "_reactorkit_guarded"


def guard_hookimpls(pm: pluggy.PluginManager) -> None:
    """Wrap each plain hook implementation of ``pm`` (once) so that it cannot break the hook call.

    The wrapped implementation returns a :class:`Contribution`: its records as a list (a generator
    is run to the end inside the guard), or an empty one carrying the exception it raised.
    Wrappers (``wrapper=True``/``hookwrapper=True``) are left as they are: they see the list of
    contributions. Implementations registered later are wrapped on the next call.
    """
    for caller in pm.hook.__dict__.values():
        if not isinstance(caller, pluggy.HookCaller):
            continue
        for impl in caller.get_hookimpls():
            if impl.wrapper or impl.hookwrapper or getattr(impl.function, _GUARDED, False):
                continue
            impl.function = _guarded(impl.function, impl.plugin_name, 2 if impl.tryfirst else 0 if impl.trylast else 1)


def _guarded(function: Any, plugin: str, priority: int) -> Any:
    def guarded(*args: Any, **kwargs: Any) -> Contribution:
        try:
            produced = function(*args, **kwargs)
            return Contribution(produced or (), plugin, priority)
        except Exception as exc:  # a broken plugin is reported, never fatal
            return Contribution((), plugin, priority, error=exc)

    setattr(guarded, _GUARDED, True)
    guarded.__wrapped__ = function  # type: ignore[attr-defined]
    return guarded


def _load_file_plugin(pm: pluggy.PluginManager, loaded: LoadedPlugins, path: Path) -> None:
    name = path.stem
    info = PluginInfo(name=name, source=f"plugins/{path.name}")
    loaded.infos[name] = info
    module_name = f"reactorkit_file_plugin_{name}"
    try:
        spec = importlib.util.spec_from_file_location(module_name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
        info.name = getattr(module, "__plugin_name__", name)
        info.version = str(getattr(module, "__plugin_version__", "Unknown"))
        info.description = getattr(module, "__plugin_summary__", "Unknown")
        info.homepage = getattr(module, "__plugin_homepage__", "Unknown")
        info.author = getattr(module, "__plugin_author__", "Unknown")
        if info.name != name:
            loaded.infos[info.name] = loaded.infos.pop(name)
        pm.register(module, name=info.name)
    except Exception as exc:
        sys.modules.pop(module_name, None)
        _record_failure(loaded, info.name, "import", exc)


class Registry:
    """The union of what the installed plugins contribute, validated and keyed.

    Build with :meth:`from_plugins`. Each kind is collected on first access.

    Attributes (each a dict, insertion-ordered):
        jobs: ``job_name -> JobDescriptor``
        automations: ``automation_type -> {automation_name -> AutomationDescriptor}``
        charts, datasets, calibration_protocols, routes, cli_commands: by key.
        tables: ``table -> TableDescriptor``; topic_mappings: list of ``TopicMapping``.
        failures: every :class:`PluginFailure` (imports and hooks).
        plugins: ``name -> PluginInfo``.
    """

    def __init__(self, pm: pluggy.PluginManager, loaded: LoadedPlugins | None = None) -> None:
        self._pm = pm
        self._loaded = loaded or LoadedPlugins()
        self.failures: list[PluginFailure] = list(self._loaded.failures)
        self._plugin_of: dict[int, str] = {}  # id(record) -> the plugin that contributed it
        for name, plugin in pm.list_name_plugin():
            if name not in self._loaded.infos and not name.startswith("_"):
                builtin = getattr(plugin, "__name__", "").startswith(BUILTIN_PREFIX)
                self._loaded.infos[name] = PluginInfo(name=name, source="app" if builtin else "entry_points", is_builtin=builtin)

    @classmethod
    def from_plugins(cls, pm: pluggy.PluginManager, loaded: LoadedPlugins | None = None) -> "Registry":
        """Collect from a plugin manager (as returned by :func:`make_plugin_manager`)."""
        return cls(pm, loaded)

    @classmethod
    def installed(cls) -> "Registry":
        """The registry of everything installed on this unit."""
        return cls(*make_plugin_manager())

    @property
    def plugins(self) -> dict[str, PluginInfo]:
        return self._loaded.infos

    def plugin_modules(self) -> dict[str, Any]:
        """``name -> module`` (or object) of every registered plugin."""
        return {name: plugin for name, plugin in self._pm.list_name_plugin() if plugin is not None}

    def _source_of(self, name: str) -> str:
        info = self._loaded.infos.get(name)
        if info is None:
            return name
        return "app" if info.is_builtin else name

    def _fail(self, plugin: str, hook: str, exc: BaseException) -> None:
        _record_failure(self._loaded, plugin, hook, exc)
        self.failures.append(self._loaded.failures[-1])

    def _collect(self, hook: str, expected: type | tuple[type, ...], **hook_args: Any) -> list[Any]:
        """Call ``hook`` through pluggy and return every valid record, in override order (later wins)."""
        guard_hookimpls(self._pm)
        try:
            contributions = getattr(self._pm.hook, hook)(**hook_args)
        except Exception as exc:  # a wrapper raised: the whole call is lost
            self._fail("(hook wrapper)", hook, exc)
            return []
        ordered = sorted(
            (c for c in contributions if isinstance(c, Contribution)),
            key=lambda c: (c.priority, self._source_of(c.plugin) != "app", c.plugin),
        )
        records: list[Any] = []
        for contribution in ordered:
            try:
                if contribution.error is not None:
                    raise contribution.error
                for record in contribution:
                    if not isinstance(record, expected):
                        names = expected.__name__ if isinstance(expected, type) else " or ".join(t.__name__ for t in expected)
                        raise TypeError(f"{hook} must yield {names}, got {type(record).__name__}: {record!r}")
            except Exception as exc:
                self._fail(contribution.plugin, hook, exc)
                continue
            source = self._source_of(contribution.plugin)
            for record in contribution:
                stamped = replace(record, source=source)
                self._plugin_of[id(stamped)] = contribution.plugin
                records.append(stamped)
        return records

    def _keyed(self, hook: str, expected: type) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for record in self._collect(hook, expected):
            previous = out.get(record.key)
            if previous is not None:
                logger.warning(
                    "%s %r from %s overrides the one from %s", hook, record.key, record.source, previous.source
                )
                del out[record.key]
            out[record.key] = record
        return out

    @cached_property
    def jobs(self) -> dict[str, d.JobDescriptor]:
        """Jobs by name; an automation host (``{type}_automation``)
        also publishes every field of its type's automations as an editable setting (declared on the field)."""
        jobs = self._keyed("register_jobs", d.JobDescriptor)
        for automation_type, named in self.automations.items():
            host = jobs.get(f"{automation_type}_automation")
            if host is None:
                continue
            declared = {s.key for s in host.published_settings}
            extra: list[d.PublishedSetting] = []
            for automation in named.values():
                for automation_field in automation.fields:
                    if automation_field.key not in declared:
                        declared.add(automation_field.key)
                        extra.append(automation_field.as_setting())
            if extra:
                jobs[host.job_name] = replace(host, published_settings=(*host.published_settings, *extra))
        return jobs

    @cached_property
    def automations(self) -> dict[str, dict[str, d.AutomationDescriptor]]:
        by_type: dict[str, dict[str, d.AutomationDescriptor]] = {t: {} for t in d.AUTOMATION_TYPES}
        for record in self._keyed("register_automations", d.AutomationDescriptor).values():
            by_type[record.automation_type][record.automation_name] = record
        return by_type

    @cached_property
    def charts(self) -> dict[str, d.ChartDescriptor]:
        return self._keyed("register_charts", d.ChartDescriptor)

    @cached_property
    def datasets(self) -> dict[str, d.DatasetDescriptor]:
        return self._keyed("register_datasets", d.DatasetDescriptor)

    @cached_property
    def calibration_protocols(self) -> dict[str, d.CalibrationProtocolDescriptor]:
        return self._keyed("register_calibration_protocols", d.CalibrationProtocolDescriptor)

    @cached_property
    def _storage(self) -> list[Any]:
        return self._collect("register_storage", (d.TableDescriptor, d.TopicMapping))

    @cached_property
    def tables(self) -> dict[str, d.TableDescriptor]:
        out: dict[str, d.TableDescriptor] = {}
        for record in self._storage:
            if isinstance(record, d.TableDescriptor):
                if record.table in out:
                    logger.warning("table %r from %s overrides %s", record.table, record.source, out[record.table].source)
                out[record.table] = record
        return out

    @cached_property
    def topic_mappings(self) -> list[d.TopicMapping]:
        return [r for r in self._storage if isinstance(r, d.TopicMapping)]

    @cached_property
    def routes(self) -> dict[str, d.RouteDescriptor]:
        return self._keyed("register_routes", d.RouteDescriptor)

    @cached_property
    def cli_commands(self) -> dict[str, d.CliCommandDescriptor]:
        return self._keyed("register_cli_commands", d.CliCommandDescriptor)

    @cached_property
    def settings_collections(self) -> dict[str, d.SettingsCollection]:
        return self._keyed("register_settings_collections", d.SettingsCollection)

    @cached_property
    def config_sections(self) -> list[d.ConfigSection]:
        return self._collect("register_config_sections", d.ConfigSection)

    def check_contributions(self) -> "Registry":
        """Try what the host does later with each contribution, and record what fails under its plugin.

        Routes: the resource imports; topic mappings: the parser imports and names a declared table;
        CLI commands: the command imports; tables: ``create_sql`` runs on an empty in-memory database. A failure is listed like a hook failure (stage ``route /api/…``,
        ``table …``, ``topic …``, ``cli command …``), its traceback in the log only.
        """
        import re
        import sqlite3

        from reactorkit.core.imports import resolve
        from reactorkit.core.leader_db import CORE_MIGRATIONS

        self.collect_all()
        core_tables = set(re.findall(r"CREATE TABLE IF NOT EXISTS (\w+)", "\n".join(CORE_MIGRATIONS)))

        def attempt(record: Any, stage: str, check: Any) -> None:
            try:
                check()
            except Exception as exc:
                self._fail(self._plugin_of.get(id(record), record.source), stage, exc)

        for route in self.routes.values():
            attempt(route, f"route {route.path}", lambda r=route: resolve(r.resource))
        for name, command in self.cli_commands.items():
            attempt(command, f"cli command {name}", lambda c=command: resolve(c.command))
        for mapping in self.topic_mappings:
            def check_mapping(m: Any = mapping) -> None:
                resolve(m.parse)
                if m.table not in self.tables and m.table not in core_tables:
                    raise LookupError(f"table {m.table!r} is not declared by any plugin")
            attempt(mapping, f"topic {mapping.topic}", check_mapping)
        for table in self.tables.values():
            def check_table(t: Any = table) -> None:
                conn = sqlite3.connect(":memory:")
                try:
                    conn.execute("CREATE TABLE experiments (experiment TEXT PRIMARY KEY)")
                    conn.executescript(t.create_sql)
                finally:
                    conn.close()
            attempt(table, f"table {table.table}", check_table)
        return self

    def collect_all(self) -> "Registry":
        """Collect every kind now (so :attr:`failures` is complete)."""
        for kind in ("jobs", "automations", "charts", "datasets", "calibration_protocols", "tables", "routes", "cli_commands",
                     "settings_collections", "config_sections"):
            getattr(self, kind)
        return self


def iter_descriptor_kinds() -> Iterable[str]:
    """The names of the descriptor kinds, in the order of :data:`descriptors.DESCRIPTOR_TYPES`."""
    return d.DESCRIPTOR_TYPES.keys()
