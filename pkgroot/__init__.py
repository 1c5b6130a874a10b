"""reactorkit: control software for small networked bioreactors.

The import root. ``reactorkit.core`` holds the plugin contract and shared
services, ``reactorkit.api`` the HTTP app, ``reactorkit.builtin_plugins`` the
features shipped with the project.
"""

__version__ = "0.1.0"
