"""The pluggy markers of the ``reactorkit`` project.

Plugins decorate their hook implementations with :data:`hookimpl`; the
specifications live in :mod:`reactorkit.core.hooks.specs`. A hook that only hands
over records a module declares can be written with :func:`yields`.

``hookimpl`` and ``hookspec`` are made on first use (PEP 562 module ``__getattr__``),
which imports pluggy (with :mod:`inspect`, ~0.25 MB). A plugin package whose
``__init__`` only uses :func:`yields` can therefore be imported without pluggy: a
job that imports a plugin's module (the leader's ingestion imports every plugin's
message parsers) does not carry pluggy. Implementations made by :func:`yields`
before the markers exist are marked when the markers are made: the plugin manager
(:mod:`reactorkit.core.plugins`) makes them before it registers a plugin (its
specifications, :mod:`reactorkit.core.hooks.specs`, use ``hookspec``); a manager built
with pluggy alone should use ``hookimpl`` or ``hookspec`` first.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Iterator

PROJECT_NAME = "reactorkit"

# implementations made by `yields` before the markers exist: (function, hookimpl options)
_pending: list[tuple[Callable[[], Iterator[Any]], dict[str, Any]]] = []
_lock = threading.Lock()


def _make_markers() -> None:
    """Create ``hookspec``/``hookimpl`` (imports pluggy) and mark the pending implementations."""
    import pluggy

    with _lock:
        if "hookimpl" in globals():
            return
        impl = pluggy.HookimplMarker(PROJECT_NAME)
        for function, options in _pending:
            impl(**options)(function)
        _pending.clear()
        globals()["hookspec"] = pluggy.HookspecMarker(PROJECT_NAME)
        globals()["hookimpl"] = impl


def __getattr__(name: str) -> Any:
    if name in ("hookimpl", "hookspec"):
        _make_markers()
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def yields(*records: Any, **options: Any) -> Callable[[], Iterator[Any]]:
    """A hook implementation that yields ``records``, for a plugin module's ``register_*`` names::

        register_jobs = yields(STIRRING)                 # @hookimpl def register_jobs(): yield STIRRING
        register_charts = yields(*CHARTS)                # … yield from CHARTS
        register_calibration_protocols = yields(f"{__name__}.calibration_protocols:protocol_descriptors")

    Args:
        records: Records, or ``"module:function"`` strings naming a function that returns an iterable of
            records: imported and called each time the hook runs (so that registering the plugin does
            not import a heavy module).
        options: :data:`hookimpl` options (``tryfirst``, ``trylast``).

    Returns:
        The implementation, marked with :data:`hookimpl` (at once if the markers exist, else when they are
        first used, which is before any plugin can be registered); pluggy matches it to a specification by
        the name it is given in the module.
    """

    def implementation() -> Iterator[Any]:
        import pkgutil

        for record in records:
            if isinstance(record, str):
                yield from pkgutil.resolve_name(record)()
            else:
                yield record

    with _lock:
        marker = globals().get("hookimpl")
        if marker is None:
            _pending.append((implementation, options))
            return implementation
    return marker(**options)(implementation) if options else marker(implementation)


__all__ = ["hookimpl", "hookspec", "yields", "PROJECT_NAME"]
