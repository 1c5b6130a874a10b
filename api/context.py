"""The app's context: what every route of the app, plugin routes included, is built with.

A plugin route whose resource class takes a ``context`` argument is built as
``Resource(context=app_context)`` (as datasette passes itself to ``register_routes``'s
views), so it uses the app's plugin registry, config, leader database and fan-out
client instead of rebuilding or reopening them.
"""

from __future__ import annotations

import inspect
import os
import threading
from functools import cached_property
from pathlib import Path
from typing import Any, Callable

from reactorkit.core.config import get_config


def as_config_source(config: Any) -> Callable[[], Any]:
    """``() -> Config`` for an object that reads settings after it was built: ``config`` itself when it is such a
    function (:meth:`AppContext.config_source`: the app's config as it is at each call), else a function returning
    the given :class:`~reactorkit.core.config.Config` (fixed, as tests give one)."""
    return config if callable(config) else (lambda: config)


class AppContext:
    """The app's shared state.

    Attributes:
        registry: The plugin :class:`~reactorkit.core.plugins.Registry` the app was built from.
        config: This unit's merged :class:`~reactorkit.core.config.Config` as it is now: the process's
            :func:`~reactorkit.core.config.get_config` (read again once a config file was saved or replaced:
            the API's per-request :func:`~reactorkit.core.config.recheck_config_files`), unless the context was
            built with a config of its own (``config=`` given: that one, as given). Read it where it is used
            (``context.config.get(...)`` in the request), not once when a resource is built.
        unit: This unit's name.
        leader: Whether this unit serves ``/api`` (the leader).
        leader_db: The leader's :class:`~reactorkit.core.leader_db.LeaderDB` (``db`` is the same),
            opened and migrated (plugin tables included) on first use, one per app.
        fanout: A :class:`~reactorkit.api.fanout.FanOut` client: calls ``/unit_api`` on units with
            this config and resolves targets (``$broadcast``, an experiment's workers) from ``leader_db``.
        job_registry: This unit's :class:`~reactorkit.core.job_registry.JobRegistry` for reads (the running
            jobs), opened once per app and process.
        extensions: Per-app state a plugin keeps between requests (a cache …), under a key of its own
            (``context.extensions.setdefault("my_plugin.cache", {})``), so nothing lives in module globals.
    """

    def __init__(self, registry: Any, config: Any, unit: str, leader: bool = True, db: Any = None) -> None:
        self.registry = registry
        self._config = config  # None: the process's current config (see ``config``)
        self.unit = unit
        self.leader = leader
        self._db = db
        self._lock = threading.Lock()
        self._jobs: tuple[Any, tuple[int, str, int]] | None = None
        self._jobs_path: tuple[tuple[str, str | None], str] | None = None
        self.extensions: dict[str, Any] = {}

    @property
    def config(self) -> Any:
        # get_config() is two attribute reads while the files are unchanged (the per-request recheck is a stat)
        pinned = self._config
        return pinned if pinned is not None else get_config()

    @config.setter
    def config(self, value: Any) -> None:
        self._config = value

    def config_source(self) -> Callable[[], Any]:
        """``() -> Config``: this context's current config (``config``), for objects built once per app that
        read settings later (the health checks, the fan-out client, the unit probes)."""
        return lambda: self.config

    @property
    def leader_db(self) -> Any:
        if self._db is None:
            with self._lock:
                if self._db is None:
                    from reactorkit.core.leader_db import LeaderDB

                    # the context's own config, if any; else the database follows the process's config (its
                    # leader name), its file being the one of [storage] database when it was opened
                    self._db = LeaderDB(config=self._config, registry=self.registry)
        return self._db

    @property
    def db(self) -> Any:
        return self.leader_db

    @property
    def job_registry(self) -> Any:
        # opening one costs ~1 ms (the schema check); opened again when the file was replaced (a state archive
        # imported) or after a fork (a gunicorn worker)
        path = self._job_registry_path()
        try:
            inode = os.stat(path).st_ino
        except OSError:
            inode = -1
        with self._lock:
            cached = self._jobs
            if cached is not None and cached[1] == (os.getpid(), path, inode):
                return cached[0]
            from reactorkit.core.job_registry import JobRegistry

            registry = JobRegistry(path=Path(path))
            self._jobs = (registry, (os.getpid(), path, os.stat(path).st_ino))
        if cached is not None:
            cached[0].close()
        return registry

    def _job_registry_path(self) -> str:
        """``[storage] temporary_cache`` as a path (under ``$DOT_PIOREACTOR`` when relative), built again only when
        the setting or ``$DOT_PIOREACTOR`` changed (building a ``Path`` per request cost more than the query)."""
        key = (self.config.get("storage", "temporary_cache"), os.environ.get("DOT_PIOREACTOR"))
        cached = self._jobs_path
        if cached is None or cached[0] != key or key[1] is None:
            cached = self._jobs_path = (key, str(self.config.path("storage", "temporary_cache")))
        return cached[1]

    @cached_property
    def fanout(self) -> Any:
        from reactorkit.api.fanout import FanOut

        return FanOut(self.config_source(), lambda: self.leader_db, self.unit)


class RouteResource:
    """Base of a route resource built with the app's context (``self.context``, an :class:`AppContext`).

    A subclass whose ``__init__`` takes no ``context`` (e.g. ``super().__init__("reboot")``) is built
    with its own arguments and gets ``context`` set right after.

    Example::

        class PhReadings(RouteResource):
            def on_get(self, req, resp, experiment):
                resp.media = self.context.leader_db.query("SELECT * FROM ph_readings WHERE experiment = ?",
                                                          (experiment,))
    """

    context: Any = None

    def __init__(self, context: AppContext | None = None) -> None:
        self.context = context


def build_resource(resource: Any, context: AppContext) -> Any:
    """A route's resource: an instance as is; a class built with ``context=`` when its ``__init__``
    takes a ``context`` parameter, else with no argument.

    Raises:
        TypeError: the class needs other arguments.
    """
    if not isinstance(resource, type):
        return resource
    try:
        wants = "context" in inspect.signature(resource).parameters
    except (TypeError, ValueError):  # a builtin or C class: no signature
        wants = False
    built = resource(context=context) if wants else resource()
    if isinstance(built, RouteResource) and built.context is None:
        built.context = context
    return built
