"""reactorkit.core: hook specifications and the services every plugin uses.

Nothing here imports a built-in plugin; features reach the host only through
the ``reactorkit.plugins`` entry-point group.
"""
