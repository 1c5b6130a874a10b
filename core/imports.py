"""Lazy imports by path: what descriptors name as ``"package.module:attribute"``.

Kept apart from :mod:`reactorkit.core.descriptors` so that a job process resolves
its class without building every descriptor dataclass.
"""

from __future__ import annotations

import pkgutil
from typing import Any


def resolve(target: Any) -> Any:
    """Import ``"package.module:attribute"`` lazily (:func:`pkgutil.resolve_name`); anything else is returned as is.

    Descriptors may name their class by import path so that registering a
    plugin never imports its heavy job module (``pio --help`` stays fast).

    Raises:
        ImportError / AttributeError / ValueError: the path does not lead to an object.
    """
    if isinstance(target, str):
        return pkgutil.resolve_name(target)
    return target
