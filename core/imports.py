"""Lazy imports by path: what descriptors name as ``"package.module:attribute"``.

Kept apart from :mod:`reactorkit.core.descriptors` so that a job process resolves
its class without building every descriptor dataclass.
"""

from __future__ import annotations

import importlib
from typing import Any


def resolve(target: Any) -> Any:
    """Import ``"package.module:attribute"`` lazily; anything else is returned as is.

    Descriptors may name their class by import path so that registering a
    plugin never imports its heavy job module (``pio --help`` stays fast).

    Raises:
        ImportError / AttributeError: the path does not lead to an object.
    """
    if isinstance(target, str):
        module_name, _, attribute = target.partition(":")
        obj: Any = importlib.import_module(module_name)
        for part in attribute.split(".") if attribute else ():
            obj = getattr(obj, part)
        return obj
    return target
