"""Scopes of API tokens and the scope each HTTP operation needs.

``read`` < ``control`` < ``admin``: a token holds one scope and everything below it.

* ``read``: every GET (state, readings, logs, descriptors, config files);
* ``control``: the state-changing calls that run an experiment (jobs, pumps,
  experiments, profiles, calibrations, workers' assignments);
* ``admin``: config, plugins, system commands, tokens, the audit log, and the
  import/export of a unit's whole state.

An operation may declare ``"scope"`` in its OpenAPI description (a plugin's
``RouteDescriptor(schemas=…)``); otherwise :func:`scope_for` derives it from the
method and the path.
"""

from __future__ import annotations

import re

SCOPES = ("read", "control", "admin")
PUBLIC = "public"

#: Paths (OpenAPI form, after the root) whose state-changing methods need ``admin``.
_ADMIN_WRITES = re.compile(
    r"^/(?:units/\{[^}]+\}/|workers/\{[^}]+\}/)?(?:config|configs|plugins|system|tokens|zipped_dot_pioreactor|"
    r"import_zipped_dot_pioreactor|export_zipped_dot_pioreactor|audit|auth)(?:/|$)|^/workers/setup$")
#: Paths that need ``admin`` for every method, reads included (secrets, the audit trail, a unit's whole state).
_ADMIN_ALWAYS = re.compile(
    r"^/(?:units/\{[^}]+\}/|workers/\{[^}]+\}/)?(?:tokens|audit|auth|zipped_dot_pioreactor|"
    r"import_zipped_dot_pioreactor|export_zipped_dot_pioreactor|system/path)(?:/|$)")
#: Operations anyone may call: health and the API's own documentation.
_PUBLIC = re.compile(r"^/(?:health|openapi\.json|docs|static)(?:/|$)")


def covers(held: str, needed: str) -> bool:
    """True when a token of scope ``held`` may call an operation needing ``needed``."""
    if needed == PUBLIC:
        return True
    if held not in SCOPES or needed not in SCOPES:
        return False
    return SCOPES.index(held) >= SCOPES.index(needed)


def scope_for(method: str, path: str, declared: str | None = None) -> str:
    """The scope an operation needs: ``"public"``, ``"read"``, ``"control"`` or ``"admin"``.

    Args:
        method: HTTP method (``GET`` …).
        path: The operation's path in OpenAPI form, e.g. ``/api/units/{unit}/system/reboot``.
        declared: ``"scope"`` from the operation's description, when it has one (wins).

    Raises:
        ValueError: ``declared`` is not a scope.
    """
    if declared is not None:
        if declared not in (*SCOPES, PUBLIC):
            raise ValueError(f"scope {declared!r} is not one of {', '.join((*SCOPES, PUBLIC))}")
        return declared
    rest = path
    for root in ("/unit_api", "/api"):
        if path == root or path.startswith(root + "/"):
            rest = path[len(root):] or "/"
            break
    method = method.upper()
    if _PUBLIC.match(rest) and method in ("GET", "HEAD"):
        return PUBLIC
    if _ADMIN_ALWAYS.match(rest):
        return "admin"
    if method in ("GET", "HEAD", "OPTIONS"):
        return "read"
    if _ADMIN_WRITES.match(rest):
        return "admin"
    return "control"
