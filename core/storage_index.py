"""A cached copy of the plugins' leader tables and topic mappings, so the ingestion starts without loading plugins.

Loading every plugin (entry points, pluggy, each plugin's descriptors) costs
tens of milliseconds, and the leader's ingestion job needs from it only two
things: the tables to create (``TableDescriptor``) and the topic mappings to
store (``TopicMapping``, whose ``parse`` is named by import path). This module
keeps exactly those as JSON in ``$DOT_PIOREACTOR/storage/storage_index.json``,
under the fingerprint of the CLI index (:func:`reactorkit.core.cli.index.fingerprint`:
reactorkit's version, ``SKIP_PLUGINS``, the site-packages folders, the built-in
plugins' and ``plugins/*.py`` files and each third-party plugin package's source
files), and rebuilds it from the plugin registry whenever that changes.

When a mapping's parser cannot be named by an import path (a lambda, a
``functools.partial``, a function of a file plugin), or a plugin failed to
import or to give its storage records, nothing is cached and the caller gets
the registry itself, as before.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from typing import Any

INDEX_VERSION = 1
FILE_NAME = "storage_index.json"


class StorageRecords:
    """The storage records of the installed plugins, as the registry yields them.

    Attributes:
        tables: ``table -> TableDescriptor`` (registry order).
        topic_mappings: ``TopicMapping`` records; ``parse`` is a ``"module:function"`` path.
    """

    def __init__(self, tables: dict[str, Any], topic_mappings: list[Any]) -> None:
        self.tables = tables
        self.topic_mappings = topic_mappings


def _index_path() -> str:
    from reactorkit.core.cli.index import _dot_pioreactor

    return os.path.join(_dot_pioreactor(), "storage", FILE_NAME)


#: Plugin failures that leave records out of a registry (a plugin's import, its storage hook).
_STORAGE_STAGES = ("import", "register_storage")


def build(registry: Any) -> dict[str, Any] | None:
    """The JSON-able storage records of ``registry``; None when a parser has no import path that leads back to it,
    or when a plugin failed to import or to give its storage records (a failure may pass without any plugin file
    changing: it is never kept, and is logged again at the next start, as without the index)."""
    from reactorkit.core.cli.index import _import_path
    from reactorkit.core.imports import resolve

    topic_mappings, descriptors = registry.topic_mappings, registry.tables  # their failures: registry.failures
    if any(getattr(f, "stage", None) in _STORAGE_STAGES for f in getattr(registry, "failures", ())):
        return None
    mappings = []
    for mapping in topic_mappings:
        path = _import_path(mapping.parse)
        if path is None:
            return None
        if not isinstance(mapping.parse, str):
            try:
                if resolve(path) is not mapping.parse:
                    return None
            except Exception:
                return None
        mappings.append({"topic": mapping.topic, "table": mapping.table, "parse": path, "source": mapping.source})
    tables = [asdict(descriptor) for descriptor in descriptors.values()]
    return {"version": INDEX_VERSION, "tables": tables, "topic_mappings": mappings}


def records_of(data: dict[str, Any]) -> StorageRecords:
    """The records of a saved index (see :func:`build`).

    Raises:
        KeyError / TypeError / ValueError: the data is not a storage index of this version.
    """
    from reactorkit.core.descriptors import TableDescriptor, TimeSeries, TopicMapping

    if data.get("version") != INDEX_VERSION:
        raise ValueError("storage index of another version")
    tables: dict[str, Any] = {}
    for fields in data["tables"]:
        series = fields.get("time_series")
        descriptor = TableDescriptor(**{**fields, "migrations": tuple(fields.get("migrations") or ()),
                                        "time_series": TimeSeries(**series) if series else None})
        tables[descriptor.table] = descriptor
    mappings = [TopicMapping(**fields) for fields in data["topic_mappings"]]
    return StorageRecords(tables, mappings)


def installed_storage() -> Any:
    """The tables and topic mappings of everything installed on this unit.

    Returns:
        A :class:`StorageRecords` read from the saved index when its fingerprint is current and it holds
        records; else the plugin registry (:meth:`~reactorkit.core.plugins.Registry.installed`) after saving
        its records for the next call (none when :func:`build` says they cannot be kept: saved again at each
        call, so a plugin failure that passed is cached from the next call on). Both have ``tables`` and
        ``topic_mappings``. A missing, half-written or foreign index is rebuilt, never an error.
    """
    from reactorkit.core.cli.index import fingerprint

    try:
        with open(_index_path()) as f:
            data = json.load(f)
        if data.get("fingerprint") == fingerprint(data.get("watched") or ()) and data.get("records") is not None:
            return records_of(data["records"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    registry = _registry()
    save(registry)
    return registry


def save(registry: Any, watched: list[str] | None = None) -> None:
    """Save the storage records of ``registry`` (the installed plugins' registry) for :func:`installed_storage`.

    Args:
        watched: The third-party plugins' source files (:func:`~reactorkit.core.cli.index.watched_files`;
            computed when not given).

    A read-only state folder, or a record JSON cannot hold, leaves the index unsaved (never an error).
    """
    from pathlib import Path

    from reactorkit.core.cli.index import fingerprint, watched_files
    from reactorkit.core.paths import atomic_write

    watched = watched_files(registry) if watched is None else watched
    try:
        saved = {"fingerprint": fingerprint(watched), "watched": watched, "records": build(registry)}
        atomic_write(Path(_index_path()), json.dumps(saved), durable=False)  # a cache: rebuilt if lost
    except (OSError, TypeError, ValueError):
        pass


def _registry() -> Any:
    from reactorkit.core.plugins import Registry

    return Registry.installed()
