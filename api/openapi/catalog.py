"""What the app serves: every ``(method, uri template)`` with its resource and operation description.

How routes are found: :class:`reactorkit.api.app.App` records each
``add_route(uri_template, resource, **kwargs)`` call in ``app.route_table``
(template → ``(resource, kwargs)``, a later call for the same template
replacing the earlier one, as Falcon's router does), so every route is seen
whoever mounts it — the core, the leader API or a plugin's ``register_routes``.
The methods of a route are its responders as Falcon maps them
(``falcon.routing.map_http_methods``, ``suffix`` included). For an app that
is not a reactorkit ``App`` the routes come from ``falcon.inspect`` walking the
compiled router instead.

The :class:`Catalog` is built once per app, on first use (after every route was
added), and shared by the OpenAPI document, the request validation and ``?wait=``.
"""

from __future__ import annotations

import copy
import re
import threading
from dataclasses import dataclass, field
from typing import Any

from reactorkit.api.openapi import schemas

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
ROOTS = ("/unit_api", "/api")


@dataclass(frozen=True)
class Route:
    """One mounted route: its URI template (as mounted), resource and HTTP methods."""

    template: str
    resource: Any
    methods: tuple[str, ...]


@dataclass
class Operation:
    """One ``method template`` of the app with its description (see :mod:`.schemas.common`)."""

    method: str
    template: str
    resource: Any
    spec: dict[str, Any]
    source: str  # "resource", "descriptor", "builtin" or "generic"
    _validators: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def path(self) -> str:
        """The OpenAPI path: the template without converters or a trailing slash."""
        return schemas.normalize(self.template)

    @property
    def is_async(self) -> bool:
        return bool(self.spec.get("async"))

    def validator(self, kind: str, schema: dict[str, Any]) -> Any:
        """A cached ``jsonschema`` validator of ``schema`` (``kind`` names the cache slot)."""
        found = self._validators.get(kind)
        if found is None:
            from jsonschema import Draft202012Validator

            found = self._validators[kind] = Draft202012Validator(with_components(schema))
        return found


def with_components(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with ``$defs``-free references to ``#/components/schemas/…`` resolvable on its own."""
    if "$ref" not in repr(schema):
        return schema
    return {**schema, "components": {"schemas": schemas.COMPONENTS}}


def routes_of(app: Any) -> list[Route]:
    """Every route of ``app`` (see the module docstring for how they are found)."""
    import falcon.routing

    table = getattr(app, "route_table", None)
    out: list[Route] = []
    if isinstance(table, dict):
        for template, (resource, kwargs) in table.items():
            mapped = falcon.routing.map_http_methods(resource, suffix=kwargs.get("suffix"))
            out.append(Route(template, resource, tuple(m for m in METHODS if m in mapped)))
        return out
    return _routes_by_inspection(app)


def _routes_by_inspection(app: Any) -> list[Route]:
    import falcon.routing

    out: list[Route] = []

    def walk(nodes: Any) -> None:
        for node in nodes:
            if node.resource is not None and node.method_map:
                mapped = falcon.routing.map_http_methods(node.resource)
                out.append(Route(node.uri_template, node.resource, tuple(m for m in METHODS if m in mapped)))
            walk(node.children)

    walk(getattr(app._router, "_roots", []))  # as falcon.inspect.inspect_compiled_router does
    return out


def relax_optional(body: dict[str, Any]) -> dict[str, Any]:
    """An object body schema whose optional top-level fields also accept ``null`` (the API treats a ``null``
    field as an absent one)."""
    if body.get("type") != "object" or not body.get("properties"):
        return body
    required = set(body.get("required", ()))
    out = copy.deepcopy(body)
    for name, schema in out["properties"].items():
        if name not in required and not _accepts_null(schema):
            out["properties"][name] = {"anyOf": [schema, {"type": "null"}]}
    return out


def _accepts_null(schema: dict[str, Any]) -> bool:
    kind = schema.get("type")
    if kind is None and not any(k in schema for k in ("anyOf", "oneOf", "allOf", "$ref", "enum")):
        return True
    if kind == "null" or (isinstance(kind, list) and "null" in kind):
        return True
    return any(_accepts_null(s) for s in schema.get("anyOf", ()))


def _resolve(value: Any) -> Any:
    from reactorkit.core.descriptors import resolve

    return resolve(value) if isinstance(value, str) else value


class Catalog:
    """Every operation of an app, by ``(METHOD, template)``.

    Args:
        app: The Falcon app (its routes are read when the catalog is built).
        registry: Plugin registry whose ``routes`` may carry ``schemas``.
    """

    def __init__(self, app: Any, registry: Any = None) -> None:
        self.operations: dict[tuple[str, str], Operation] = {}
        declared = self._declared(registry)
        for route in routes_of(app):
            own = getattr(route.resource, "openapi", None)
            own = _resolve(own) if own is not None else None
            from_descriptor = declared.get(schemas.normalize(route.template), {})
            for method in route.methods:
                if method in ("HEAD", "OPTIONS") and not _defines(route.resource, method):
                    continue
                spec, source = None, ""
                if isinstance(own, dict) and isinstance(own.get(method), dict):
                    spec, source = own[method], "resource"
                elif isinstance(from_descriptor.get(method), dict):
                    spec, source = from_descriptor[method], "descriptor"
                else:
                    spec = schemas.builtin(method, route.template)
                    source = "builtin"
                if spec is None:
                    spec, source = schemas.generic(method, route.resource), "generic"
                spec = dict(spec)
                if isinstance(spec.get("body"), dict):
                    spec["body"] = relax_optional(spec["body"])
                self.operations[(method, route.template)] = Operation(method, route.template, route.resource, spec,
                                                                      source)

    @staticmethod
    def _declared(registry: Any) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for route in (getattr(registry, "routes", None) or {}).values():
            declared = getattr(route, "schemas", None)
            if declared is None:
                continue
            try:
                declared = _resolve(declared)
            except Exception:  # a plugin's broken reference: the route is described generically
                continue
            if isinstance(declared, dict):
                path = schemas.normalize(route.path)
                out[path] = operations_of(declared, path)
        return out

    def get(self, method: str, template: str | None) -> Operation | None:
        """The operation Falcon routed a request to (``req.method``, ``req.uri_template``)."""
        if template is None:
            return None
        return self.operations.get((method.upper(), template))

    def under(self, root: str) -> list[Operation]:
        """Operations whose path starts with ``root`` + ``/`` (``/unit_api`` or ``/api``), sorted."""
        prefix = root.rstrip("/") + "/"
        ops = [o for o in self.operations.values() if o.template.startswith(prefix)]
        return sorted(ops, key=lambda o: (o.path, METHODS.index(o.method) if o.method in METHODS else 99))


def operations_of(declared: dict[Any, Any], path: str) -> dict[str, Any]:
    """``{METHOD: operation}`` of ``path`` from what a route descriptor's ``schemas`` names: that mapping itself,
    or a plugin's table of several routes keyed by ``(METHOD, uri template)`` (the entries of ``path``)."""
    if declared and all(isinstance(k, tuple) for k in declared):
        return {str(m).upper(): s for (m, t), s in declared.items() if schemas.normalize(t) == path}
    return {str(m).upper(): s for m, s in declared.items()}


def _defines(resource: Any, method: str) -> bool:
    return callable(getattr(resource, f"on_{method.lower()}", None))


_lock = threading.Lock()


def catalog_of(app: Any) -> Catalog:
    """The app's :class:`Catalog`, built on first call (``app.context.openapi_catalog``)."""
    context = app.context
    found = getattr(context, "openapi_catalog", None)
    if found is None:
        with _lock:
            found = getattr(context, "openapi_catalog", None)
            if found is None:
                found = Catalog(app, getattr(context, "registry", None))
                context.openapi_catalog = found
    return found


_FIELD = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::([^}]*))?\}")


def path_fields(template: str) -> list[tuple[str, str | None]]:
    """``[(name, converter)]`` of a URI template's fields."""
    return [(m.group(1), m.group(2)) for m in _FIELD.finditer(template)]
