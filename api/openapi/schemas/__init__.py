"""Request/response schemas of the routes, keyed by ``(METHOD, uri template)``.

Where an operation's description comes from, first match wins:

1. the resource's ``openapi`` attribute: ``{METHOD: operation}`` (a plugin's own resource);
2. the plugin's ``RouteDescriptor(schemas=…)`` for that path, read from the plugin registry: every plugin
   route's description, the built-in plugins' as a third-party plugin's (each next to its handler);
3. the modules of this package, for the core's own routes (:mod:`.unit`, :mod:`.leader`);
4. a generic description (any JSON object in, anything out, errors in the error shape).

Templates are compared without field converters (``{filename:path}`` is
``{filename}``) and without a trailing slash. The operation format is described
in :mod:`reactorkit.api.openapi.schemas.common`.
"""

from __future__ import annotations

import re
from typing import Any

from reactorkit.api.openapi.schemas import leader, unit
from reactorkit.api.openapi.schemas.common import COMPONENTS, op

_CONVERTER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::[^}]*)?\}")


def normalize(template: str) -> str:
    """``/a/{name:path}/`` → ``/a/{name}`` (converters and a trailing slash dropped)."""
    out = _CONVERTER.sub(r"{\1}", template)
    return out.rstrip("/") or "/"


def _merge(*tables: dict[tuple[str, str], dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for table in tables:
        for (method, template), operation in table.items():
            out[(method.upper(), normalize(template))] = operation
    return out


BUILTIN: dict[tuple[str, str], dict[str, Any]] = _merge(unit.OPERATIONS, leader.OPERATIONS)
"""The operation descriptions of the core routes (a plugin's routes are described by the plugin)."""


def builtin(method: str, template: str) -> dict[str, Any] | None:
    """The built-in description of ``method template``, or None."""
    return BUILTIN.get((method.upper(), normalize(template)))


def generic(method: str, resource: Any) -> dict[str, Any]:
    """The description of an operation nobody described: any JSON object in, anything out."""
    name = type(resource).__name__
    doc = (type(resource).__doc__ or "").strip().splitlines()
    summary = doc[0].strip() if doc else f"{name}.on_{method.lower()}"
    out = op(summary, description="No schema was declared for this operation.",
             responses={"2XX": {}})
    out["responses"].pop("200", None)
    out["generic"] = True
    if method.upper() in ("POST", "PUT", "PATCH"):
        out["body"] = {"type": "object"}
        out["body_content"] = "application/json"
        out["body_required"] = False
    return out


__all__ = ["BUILTIN", "COMPONENTS", "builtin", "generic", "normalize"]
