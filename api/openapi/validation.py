"""Request validation against the operation descriptions (the same schemas the OpenAPI document shows).

Falcon middleware: after routing and before the responder runs, the JSON body,
the declared query parameters and the declared path fields of the request are
checked. A wrong type, a
missing field or a value out of range is a 400 ``Invalid request body.`` (or
``Invalid query parameter '<name>'.``) whose ``cause`` names the field, e.g.
``Field 'options.target_rpm' must be a string, number, boolean or null, got an
object.``; nothing of the request has been acted on then. Handlers keep their
own domain checks (an unknown job, an experiment that does not exist …).

Only JSON bodies are checked (multipart uploads are the handlers' business);
an empty body counts as ``{}`` when the body is required, and is let through
otherwise. Falcon caches the parsed body, so handlers read it again for free.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

import falcon

from reactorkit.api.errors import ApiError
from reactorkit.api.openapi.catalog import Operation, catalog_of

_TYPE_NAMES = {"object": "an object", "array": "an array", "string": "a string", "integer": "an integer",
               "number": "a number", "boolean": "a boolean", "null": "null"}


def json_type(value: Any) -> str:
    """The JSON type name of a Python value, with its article (``an object``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def field_path(parts: Iterable[Any]) -> str:
    """``["options", "x"]`` → ``options.x``; ``["args", 0]`` → ``args[0]``."""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _expected(types: Any) -> str:
    names = [types] if isinstance(types, str) else list(types)
    if "number" in names and "integer" in names:
        names.remove("integer")
    words = [_TYPE_NAMES.get(n, n) for n in names]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def got(value: Any) -> str:
    """What was sent, for a type error: a scalar with its value (``5 (an integer)``), an object or array by
    its type only (``an object``)."""
    kind = json_type(value)
    if value is None or isinstance(value, (dict, list)):
        return kind
    text = repr(value) if not isinstance(value, bool) else ("true" if value else "false")
    return f"{text if len(text) <= 40 else text[:37] + '…'} ({kind})"


def describe(error: Any) -> str:
    """One sentence naming the field a ``jsonschema`` error is about and what was expected."""
    where = field_path(error.absolute_path)
    kind = error.validator
    if "propertyNames" in error.schema_path:
        return f"A name in field '{where or 'body'}' {constraint(error)}."
    if kind == "required":
        missing = next((name for name in error.validator_value if name not in (error.instance or {})), None)
        name = field_path([*error.absolute_path, missing]) if missing is not None else where
        return f"Field '{name}' is required."
    if kind == "additionalProperties" and isinstance(error.instance, dict):
        allowed = set((error.schema.get("properties") or {}))
        extra = sorted(k for k in error.instance if k not in allowed)
        name = field_path([*error.absolute_path, extra[0]]) if extra else where
        return f"Field '{name}' is not allowed here; use {', '.join(sorted(allowed)) or 'no fields'}."
    subject = f"Field '{where}'" if where else "The body"
    if kind == "type":
        return f"{subject} must be {_expected(error.validator_value)}, got {got(error.instance)}."
    if kind == "enum":
        return f"{subject} must be one of {', '.join(repr(v) for v in error.validator_value)}, got {error.instance!r}."
    if kind in ("anyOf", "oneOf") and error.context:
        type_errors = [e for e in error.context if e.validator == "type" and not list(e.relative_path)]
        if len(type_errors) == len(error.context):  # no branch had the right type
            types: list[str] = []
            for e in type_errors:
                types.extend([e.validator_value] if isinstance(e.validator_value, str) else e.validator_value)
            return f"{subject} must be {_expected(list(dict.fromkeys(types)))}, got {got(error.instance)}."
        others = [e for e in error.context if e not in type_errors]
        return describe(max(others, key=lambda e: len(list(e.absolute_path))))
    if kind == "minProperties" and error.validator_value == 1:
        return f"{subject} must not be empty."
    return f"{subject} {constraint(error)}."


_BOUNDS = {"minimum": "≥", "maximum": "≤", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}


def constraint(error: Any) -> str:
    """``must be ≥ 1, got 0``: what a value-level ``jsonschema`` error asks for (without the field's name)."""
    kind, limit, value = error.validator, error.validator_value, error.instance
    if kind in _BOUNDS:
        return f"must be {_BOUNDS[kind]} {limit}, got {value!r}"
    if kind in ("minItems", "maxItems"):
        return f"must have {'at least' if kind == 'minItems' else 'at most'} {limit} items, got {len(value)}"
    if kind in ("minLength", "maxLength"):
        return f"must have {'at least' if kind == 'minLength' else 'at most'} {limit} characters, got {len(value)}"
    if kind == "pattern":
        meaning = (error.schema or {}).get("description")
        return f"must be {meaning[0].lower() + meaning[1:].rstrip('.')} (pattern {limit}), got {value!r}" if meaning \
            else f"must match {limit}, got {value!r}"
    if kind == "enum":
        return f"must be one of {', '.join(repr(v) for v in limit)}, got {value!r}"
    return f"is invalid: {error.message}"


def first_error(validator: Any, instance: Any) -> Any:
    """The most relevant error of ``instance`` (deepest first), or None when it is valid."""
    from jsonschema.exceptions import best_match

    return best_match(validator.iter_errors(instance))


def invalid_body(cause: str, operation: Operation) -> ApiError:
    return ApiError(falcon.HTTP_400, "Invalid request body.", cause=cause,
                    remediation=f"Fix the field named and send it again; the body's schema is in the OpenAPI "
                                f"document ({operation.method} {operation.path}).")


def read_json_body(req: falcon.Request, operation: Operation) -> Any:
    """The parsed JSON body (None when empty).

    Raises:
        ApiError: 400 when it is not JSON; Falcon's 415 for other media types.
    """
    try:
        return req.get_media(default_when_empty=None)
    except falcon.MediaMalformedError as exc:
        raise malformed_json(exc, operation) from None


def malformed_json(exc: falcon.MediaMalformedError, operation: Operation) -> ApiError:
    """400 for a body that is not JSON, naming the line and column where parsing stopped."""
    import json

    parse = exc.__cause__ if isinstance(exc.__cause__, json.JSONDecodeError) else None
    if parse is None:
        return ApiError(falcon.HTTP_400, "The body is not valid JSON.", cause=str(exc.description or exc.title),
                        remediation=f"Send a JSON body with Content-Type: application/json; its schema is in the "
                                    f"OpenAPI document ({operation.method} {operation.path}).")
    where = f"line {parse.lineno}, column {parse.colno}"
    return ApiError(falcon.HTTP_400, f"The body is not valid JSON ({where}).",
                    cause=f"JSON parsing stopped at {where}: {parse.msg}.",
                    remediation=f"Fix the JSON at {where} (strings in double quotes, no trailing comma) and send it "
                                f"again; the body's schema is in the OpenAPI document ({operation.method} "
                                f"{operation.path}).")


def check_body(req: falcon.Request, operation: Operation) -> None:
    """Raises: ApiError 400 when a JSON body does not parse (line and column) or does not match the
    operation's schema (naming the field), whether or not the operation declares a body schema."""
    schema = operation.spec.get("body")
    media = operation.spec.get("body_content") or "application/json"
    if media != "application/json":
        return
    content_type = (req.content_type or "application/json").split(";")[0].strip().lower()
    if content_type not in ("application/json", "") and not content_type.endswith("+json"):
        return  # another media type: Falcon (415) or the handler decides
    if not isinstance(schema, dict) and not req.content_length:
        return
    body = read_json_body(req, operation)
    if not isinstance(schema, dict):
        return
    if body is None:
        if not operation.spec.get("body_required"):
            return
        body = {}
    bad = unpaired_surrogate(body)
    if bad is not None:
        raise invalid_body(f"Field '{bad or 'body'}' has an unpaired UTF-16 surrogate (\\uD800–\\uDFFF escape): "
                           "it is not Unicode text.", operation)
    error = first_error(operation.validator("body", schema), body)
    if error is not None:
        raise invalid_body(describe(error), operation)


def _has_surrogate(text: str) -> bool:
    return any("\ud800" <= c <= "\udfff" for c in text)


def unpaired_surrogate(value: Any, path: tuple[Any, ...] = ()) -> str | None:
    """The path of the first string (or object key) holding an unpaired surrogate, else None.

    JSON text may spell one as an escape (``"\\ud9b0"``); such strings cannot be
    encoded as UTF-8 (for MQTT, SQLite, files), so the body is refused.
    """
    if isinstance(value, str):
        return field_path(path) if _has_surrogate(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and _has_surrogate(key):
                return field_path(path) or "body"
            found = unpaired_surrogate(item, (*path, key))
            if found is not None:
                return found
    if isinstance(value, list):
        for i, item in enumerate(value):
            found = unpaired_surrogate(item, (*path, i))
            if found is not None:
                return found
    return None


def coerce(raw: str, schema: dict[str, Any]) -> Any:
    """A query-string value as the type its schema names (unchanged when it cannot be)."""
    kinds = schema.get("type")
    kinds = [kinds] if isinstance(kinds, str) else list(kinds or [])
    text = raw.strip()
    if "integer" in kinds:
        try:
            return int(text)
        except ValueError:
            try:
                number = float(text)
            except ValueError:
                return raw
            return int(number) if math.isfinite(number) and number.is_integer() else raw
    if "number" in kinds:
        try:
            number = float(text)
        except ValueError:
            return raw
        return number if math.isfinite(number) else raw
    if "boolean" in kinds:
        lowered = text.lower()
        if lowered in ("1", "true", "yes", "on", "y", "t"):
            return True
        if lowered in ("0", "false", "no", "off", "n", "f"):
            return False
    return raw


def check_query(req: falcon.Request, operation: Operation) -> None:
    """Raises: ApiError 400 naming the first declared query parameter that does not match its schema."""
    for name, schema in (operation.spec.get("query") or {}).items():
        raw = req.params.get(name)
        if isinstance(raw, list):
            raw = raw[-1]
        if raw is None or raw == "":
            continue
        value = coerce(raw, schema)
        error = first_error(operation.validator(f"query:{name}", schema), value)
        if error is None:
            continue
        expected = schema.get("type")
        problem = (f"must be {_expected(expected)}, got {raw!r}" if error.validator == "type" and expected
                   else constraint(error))
        raise ApiError(falcon.HTTP_400, f"Invalid query parameter '{name}'.",
                       cause=f"Query parameter '{name}' {problem}.",
                       remediation=f"Send {name} as the OpenAPI document describes ({operation.method} "
                                   f"{operation.path}).")


def check_path(params: dict[str, Any], operation: Operation) -> None:
    """Raises: ApiError 400 naming the first path field that does not match its declared schema."""
    for name, schema in (operation.spec.get("path") or {}).items():
        if name not in params:
            continue
        error = first_error(operation.validator(f"path:{name}", schema), params[name])
        if error is not None:
            remediation = (f"Use one of: {', '.join(str(v) for v in error.validator_value)}."
                           if error.validator == "enum" else
                           f"See {operation.method} {operation.path} in the OpenAPI document.")
            raise ApiError(falcon.HTTP_400, f"Invalid {name} {params[name]!r}.",
                           cause=f"Path parameter '{name}' {constraint(error)}.", remediation=remediation)


class ValidationMiddleware:
    """Checks each routed request against its operation's schemas (see the module docstring)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def process_resource(self, req: falcon.Request, resp: falcon.Response, resource: Any,
                         params: dict[str, Any]) -> None:
        if resource is None:
            return
        operation = catalog_of(self.app).get(req.method, req.uri_template)
        if operation is None:
            return
        req.context.operation = operation
        check_path(params, operation)
        check_query(req, operation)
        if req.method in ("POST", "PUT", "PATCH", "DELETE"):
            check_body(req, operation)
