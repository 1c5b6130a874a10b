"""The pluggy markers of the ``reactorkit`` project.

Plugins decorate their hook implementations with :data:`hookimpl`; the
specifications live in :mod:`reactorkit.core.hooks.specs`.
"""

import pluggy

PROJECT_NAME = "reactorkit"
hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

__all__ = ["hookimpl", "hookspec", "PROJECT_NAME"]
