"""This unit's config files over HTTP.

* ``GET /unit_api/config/merged``: the merged view (defaults, ``config.ini``,
  ``unit_config.ini``) as ``{section: {key: value}}``.
* ``GET /unit_api/config/specific``: ``unit_config.ini`` as text;
  ``PATCH``/``POST {code}`` replaces it after checking it parses, alone and
  merged after the shared file.
* ``PUT /unit_api/config/shared {code}`` (beyond the contract): how the leader
  pushes the shared ``config.ini`` to its workers after ``PATCH /api/config/shared``.

Files are written atomically; a refused text leaves the old file untouched. A save whose resulting config would
set ``[api] max_body_bytes`` or ``max_text_chars`` below what its own body needs is refused (400, see
:func:`reactorkit.api.body_limits.check_save_resendable`).
"""

from __future__ import annotations

from typing import Any

import falcon

from reactorkit.api.body_limits import check_save_resendable, save_size
from reactorkit.api.errors import invalid_config, protected_setting
from reactorkit.core.config_guard import ProtectedSetting, check_unchanged
from reactorkit.api.unit.common import read_body
from reactorkit.core.config import forget_config_files, load_config, shared_config_path, unit_config_path
from reactorkit.core.config_validation import InvalidConfig, normalise, validate_shared, validate_specific
from reactorkit.core.auth.mqtt import CREDENTIALS_FILE
from reactorkit.core.paths import atomic_write, dot_pioreactor


def _read(path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""


def _save(req: falcon.Request, resp: falcon.Response, path: Any, code: str, validate: Any,
          stacks: list[list[str]]) -> None:
    """``validate()``, then refuse a change of a protected setting, then a config that would refuse this same
    save (``stacks``: the INI texts of each config the save results in, see
    :func:`reactorkit.api.body_limits.check_save_resendable`), then write ``code`` to ``path`` (temp file +
    rename) and forget the cached config and the clock built from it; answers ``{"status": "success"}``.

    Raises:
        ApiError: 400 for an invalid file (:func:`invalid_config`) or body bounds below this save's own body;
            403 for a changed protected setting.
    """
    try:
        validate()
        check_unchanged(_read(path), code)
    except InvalidConfig as exc:
        raise invalid_config(exc) from None
    except ProtectedSetting as exc:
        raise protected_setting(exc) from None
    check_save_resendable(stacks, save_size(req))
    atomic_write(path, code)
    forget_config_files()
    resp.media = {"status": "success"}


def _code(req: falcon.Request) -> str:
    return normalise(read_body(req)["code"])  # a string: checked by the schema middleware (CODE_BODY)


class MergedConfig:
    """``GET /unit_api/config/merged``."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        config = load_config()
        merged = {section: dict(config.items(section, raw=True)) for section in config.sections()}
        if merged.get("mqtt", {}).get("password") and (dot_pioreactor() / CREDENTIALS_FILE).exists():
            merged["mqtt"] = {**merged["mqtt"], "password": ""}  # the unit's own broker password stays on the unit
        resp.media = merged


class SpecificConfig:
    """``GET /unit_api/config/specific`` (text) and ``PATCH``/``POST {code}``."""

    def __init__(self, unit: str) -> None:
        self.unit = unit

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = falcon.MEDIA_TEXT
        resp.text = _read(unit_config_path())

    def on_patch(self, req: falcon.Request, resp: falcon.Response) -> None:
        code = _code(req)
        shared = _read(shared_config_path())
        _save(req, resp, unit_config_path(), code, lambda: validate_specific(code, self.unit, shared),
              [[shared, code]])

    on_post = on_patch


class SharedConfigCopy:
    """``PUT /unit_api/config/shared {code}``: the leader's copy of ``config.ini``."""

    def on_put(self, req: falcon.Request, resp: falcon.Response) -> None:
        code = _code(req)
        _save(req, resp, shared_config_path(), code, lambda: validate_shared(code),
              [[code], [code, _read(unit_config_path())]])  # units whose own file sets no bound, and this one
