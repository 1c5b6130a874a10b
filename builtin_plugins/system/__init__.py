"""System: plugins, system commands, the state folder, archives and uploads (built-in plugin)."""

from reactorkit.core.hooks import hookimpl

from .descriptors import ROUTES


@hookimpl
def register_routes():
    yield from ROUTES
