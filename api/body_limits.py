"""Bounded JSON request bodies: size, nesting depth and text length, refused in the contract's error shape.

Config ``[api]`` (each request costs at most what these allow):

* ``max_body_bytes`` (1,048,576): a JSON body above it is refused with 413
  (``Content-Length`` checked before reading; a body without one is read up
  to the limit and no further);
* ``max_json_depth`` (64): deeper nesting of objects and arrays is a 400
  (checked on the raw text before parsing, so 5,000 nested brackets never
  reach the parser's recursion);
* ``max_text_chars`` (100,000): a longer string anywhere in the body is a 400
  naming its path (a profile's YAML is a string field, and fits).

File uploads (state archives, plugin files) are not JSON and keep their own limits.

A config saved through the API (``/api/config…``, ``/api/configs/…``, ``/unit_api/config…``) applies from the
next request on, so a bound saved too low would refuse the save that raises it again (the config text travels in
a JSON body) and leave only the unit's own files to edit by hand. :func:`check_save_resendable` refuses such a
save (400, the config left as it was): the config it results in must keep ``max_body_bytes`` at least the size in
bytes of that save's own JSON body and ``max_text_chars`` at least the length of its longest text (the config
text it carries), so the same save can always be sent again.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Iterable

import falcon
from falcon.media import BaseHandler

from reactorkit.api.errors import ApiError

DEFAULT_MAX_BODY_BYTES = 1_048_576
DEFAULT_MAX_DEPTH = 64
DEFAULT_MAX_TEXT_CHARS = 100_000


def nesting_depth(text: str, limit: int) -> int:
    """Deepest ``{``/``[`` nesting of JSON ``text`` (strings skipped), stopping early once above ``limit``."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    return deepest
        elif ch in "]}":
            depth -= 1
    return deepest


def _long_text(value: Any, limit: int, path: str = "") -> tuple[str, int] | None:
    if isinstance(value, str):
        return (path or "(body)", len(value)) if len(value) > limit else None
    if isinstance(value, dict):
        for key, item in value.items():
            if len(key) > limit:
                return (f"{path}.{key[:20]}…" if path else f"{key[:20]}…", len(key))
            found = _long_text(item, limit, f"{path}.{key}" if path else str(key))
            if found:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = _long_text(item, limit, f"{path}[{i}]")
            if found:
                return found
    return None


class BoundedJSONHandler(BaseHandler):
    """Falcon media handler for ``application/json`` with the bounds of the module docstring.

    Args:
        max_body_bytes, max_depth, max_text_chars: The bounds (bytes, levels, characters), when no ``config``.
        config: A Config, or ``() -> Config`` returning the app's as it is now: the bounds are its ``[api]``
            values (defaults above), taken again only when another config object comes or the config changed
            (its ``generation``): a limit saved through the API applies from the next request, with no re-parse
            of the files per request.
    """

    def __init__(self, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, max_depth: int = DEFAULT_MAX_DEPTH,
                 max_text_chars: int = DEFAULT_MAX_TEXT_CHARS, *, config: Any = None) -> None:
        super().__init__()
        self._fixed = (max_body_bytes, max_depth, max_text_chars)
        self._source = None
        if config is not None:
            from reactorkit.api.context import as_config_source

            self._source = as_config_source(config)
        self._kept: tuple[Any, int, tuple[int, int, int]] | None = None  # (config, generation, bounds)

    def bounds(self) -> tuple[int, int, int]:
        """``(max_body_bytes, max_depth, max_text_chars)`` now."""
        if self._source is None:
            return self._fixed
        config = self._source()
        generation = getattr(config, "generation", 0)
        kept = self._kept
        if kept is None or kept[0] is not config or kept[1] != generation:
            kept = self._kept = (config, generation, bounds_of(config))
        return kept[2]

    @property
    def max_body_bytes(self) -> int:
        return self.bounds()[0]

    @property
    def max_depth(self) -> int:
        return self.bounds()[1]

    @property
    def max_text_chars(self) -> int:
        return self.bounds()[2]

    @staticmethod
    def _too_large(size: str, max_body_bytes: int) -> ApiError:
        return ApiError(falcon.HTTP_413, "Request body too large.",
                        cause=f"The JSON body is {size}; this API accepts at most {max_body_bytes} bytes "
                              "([api] max_body_bytes).",
                        remediation="Send a smaller body (split the request), or raise [api] max_body_bytes.")

    def deserialize(self, stream: Any, content_type: str | None, content_length: int | None) -> Any:
        max_body_bytes, max_depth, max_text_chars = self.bounds()
        if content_length is not None and content_length > max_body_bytes:
            raise self._too_large(f"{content_length} bytes", max_body_bytes)
        raw = stream.read(max_body_bytes + 1)
        if len(raw) > max_body_bytes:
            raise self._too_large(f"more than {max_body_bytes} bytes", max_body_bytes)
        if not raw:
            raise falcon.MediaNotFoundError("JSON")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise falcon.MediaMalformedError("JSON") from exc
        depth = nesting_depth(text, max_depth)
        if depth > max_depth:
            raise ApiError(falcon.HTTP_400, "JSON body nested too deeply.",
                           cause=f"Objects and arrays are nested more than {max_depth} levels "
                                 "([api] max_json_depth).",
                           remediation="Send a flatter document.")
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise falcon.MediaMalformedError("JSON") from exc  # the routes word it ("not valid JSON: …")
        found = _long_text(data, max_text_chars)
        if found:
            where, length = found
            raise ApiError(falcon.HTTP_400, "Text field too long.",
                           cause=f"Field {where!r} has {length} characters; at most {max_text_chars} are accepted "
                                 "([api] max_text_chars).",
                           remediation=f"Shorten {where!r}.")
        return data

    def serialize(self, media: Any, content_type: str | None) -> bytes:
        return json.dumps(media, ensure_ascii=False).encode("utf-8")


def bounds_of(config: Any) -> tuple[int, int, int]:
    """``[api] max_body_bytes, max_json_depth, max_text_chars`` of ``config``; a value unset, not an integer or
    below 1 is the default above (logged): a typo saved through the API must not refuse every JSON body, the
    request that would correct it included."""
    return (_positive(config, "max_body_bytes", DEFAULT_MAX_BODY_BYTES),
            _positive(config, "max_json_depth", DEFAULT_MAX_DEPTH),
            _positive(config, "max_text_chars", DEFAULT_MAX_TEXT_CHARS))


def _positive(config: Any, key: str, default: int) -> int:
    raw = config.get("api", key, fallback=None)
    if raw is None or not raw.strip():
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        logging.getLogger("reactorkit.api").warning("[api] %s = %r is not a positive integer; %d is used", key, raw,
                                                    default)
        return default
    return value


def install(app: falcon.App, config: Any) -> BoundedJSONHandler:
    """Use a :class:`BoundedJSONHandler` for JSON request bodies of ``app``, its bounds from ``[api]`` of
    ``config`` (a Config, or ``() -> Config``: the app's as it is at each request)."""
    handler = BoundedJSONHandler(config=config)
    for media_type in (falcon.MEDIA_JSON, "application/json; charset=UTF-8"):
        app.req_options.media_handlers[media_type] = handler
    return handler


def _longest_text(value: Any) -> int:
    """Characters of the longest string or object key anywhere in the JSON ``value`` (0 when none)."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict):
        return max((max(len(k), _longest_text(v)) for k, v in value.items()), default=0)
    if isinstance(value, list):
        return max((_longest_text(v) for v in value), default=0)
    return 0


def save_size(req: falcon.Request) -> tuple[int, int]:
    """``(bytes, characters)`` the bounds must allow for the JSON body of ``req`` to be accepted again: its
    ``Content-Length`` (without one, the length of the parsed body written back as JSON with ASCII escapes, at
    least as long as a compact UTF-8 encoding of it) and its longest string or key, as
    :class:`BoundedJSONHandler` measures them. The body is the one already parsed (Falcon keeps it)."""
    media = req.get_media(default_when_empty=None)
    size = req.content_length
    if size is None:
        size = len(json.dumps(media).encode("utf-8"))
    return size, _longest_text(media)


def resulting_config(texts: Iterable[str]) -> Any:
    """The built-in defaults with the INI ``texts`` read over them in order (later wins), as the unit merges its
    files; a text that does not parse is left out (its save's own validation reports it)."""
    import configparser

    from reactorkit.core.config import DEFAULTS, Config

    config = Config()
    config.read_string(DEFAULTS)
    for text in texts:
        layer = Config()
        try:
            layer.read_string(text or "")
        except configparser.Error:
            continue
        config.read_dict({section: dict(layer.items(section, raw=True)) for section in layer.sections()})
    return config


def check_save_resendable(stacks: Iterable[Iterable[str]], size: tuple[int, int]) -> None:
    """Refuse a config save that would lock the API out of the same save.

    Args:
        stacks: Each config the save results in, as the INI texts merged over the defaults, in order (e.g. the
            shared text alone, for units whose own file sets nothing, and with this unit's ``unit_config.ini``).
        size: ``(bytes, characters)`` of the save's own JSON body (:func:`save_size`).

    Raises:
        ApiError: 400 naming ``[api] max_body_bytes`` and/or ``max_text_chars``, the value the save would
            set and the least value that keeps the save acceptable, when a resulting config's bound
            (as :func:`bounds_of` reads it: a value that is not a positive integer is the default) is below
            ``size``.
    """
    body_bytes, text_chars = size
    for texts in stacks:
        max_body_bytes, _, max_text_chars = bounds_of(resulting_config(texts))
        problems = []
        if max_body_bytes < body_bytes:
            problems.append((f"[api] max_body_bytes would be {max_body_bytes}, below the {body_bytes} bytes of this "
                             "save's own JSON body", f"[api] max_body_bytes to at least {body_bytes} (default "
                             f"{DEFAULT_MAX_BODY_BYTES})"))
        if max_text_chars < text_chars:
            problems.append((f"[api] max_text_chars would be {max_text_chars}, below the {text_chars} characters "
                             "of the config text this save carries", f"[api] max_text_chars to at least "
                             f"{text_chars} (default {DEFAULT_MAX_TEXT_CHARS})"))
        if problems:
            raise ApiError(falcon.HTTP_400, "Config would refuse its own save.",
                           cause="; ".join(p[0] for p in problems) + ": the API would then refuse the save that "
                                 "raises it again, leaving only the unit's own files to edit.",
                           remediation="Set " + " and ".join(p[1] for p in problems) + " in the text you save, "
                                       "or leave it unset, and save again.")
