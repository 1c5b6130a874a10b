"""The pluggy markers of the ``reactorkit`` project.

Plugins decorate their hook implementations with :data:`hookimpl`; the
specifications live in :mod:`reactorkit.core.hooks.specs`. A hook that only hands
over records a module declares can be written with :func:`yields`.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

import pluggy

PROJECT_NAME = "reactorkit"
hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


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
        The implementation, marked with :data:`hookimpl`; pluggy matches it to a specification by the
        name it is given in the module.
    """

    def implementation() -> Iterator[Any]:
        import pkgutil

        for record in records:
            if isinstance(record, str):
                yield from pkgutil.resolve_name(record)()
            else:
                yield record

    return hookimpl(**options)(implementation) if options else hookimpl(implementation)


__all__ = ["hookimpl", "hookspec", "yields", "PROJECT_NAME"]
