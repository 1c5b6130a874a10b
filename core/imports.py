"""Lazy imports by path: what descriptors name as ``"package.module:attribute"``.

Kept apart from :mod:`reactorkit.core.descriptors` so that a job process resolves
its class without building every descriptor dataclass.
"""

from __future__ import annotations

import importlib
from typing import Any


def resolve(target: Any) -> Any:
    """Import ``"package.module:attribute"`` lazily (as :func:`pkgutil.resolve_name` does); anything else is
    returned as is.

    Descriptors may name their class by import path so that registering a
    plugin never imports its heavy job module (``pio --help`` stays fast).

    ``"module:attr.attr"`` of ASCII identifiers (what every descriptor gives) is imported here with
    :func:`importlib.import_module` and read with ``getattr``, as ``pkgutil.resolve_name`` does: importing pkgutil
    and compiling its pattern at the first call took 0.8-1.1 ms of every ``pio run`` before its job was ready. Any
    other form (no colon, non-ASCII names, malformed) goes to ``pkgutil.resolve_name``.

    Raises:
        ImportError / AttributeError / ValueError: the path does not lead to an object.
    """
    if not isinstance(target, str):
        return target
    module, colon, attrs = target.partition(":")
    names = attrs.split(".")
    if colon and target.isascii() and all(part.isidentifier() for part in (*module.split("."), *names)):
        obj = importlib.import_module(module)
        for name in names:
            obj = getattr(obj, name)
        return obj
    import pkgutil

    return pkgutil.resolve_name(target)
