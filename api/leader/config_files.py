"""Config endpoints of the leader (domain facts §10): shared ``config.ini``, unit-specific files, merged views, history.

* ``GET|PATCH /api/config/shared``: the leader's ``config.ini`` (text / ``{code}``).
  Saving checks the INI syntax (no duplicate sections or keys), requires
  ``[cluster.topology] leader_hostname`` and ``leader_address`` and an ``[mqtt]``
  section, refuses ``http://`` addresses, turns en/em dashes into ``-``, writes
  atomically and records the text in ``config_files_histories`` as ``config.ini``.
* ``GET|PATCH /api/config/units/{unit}/specific``: that unit's ``unit_config.ini``
  (the leader's own file, or a synchronous proxy to the worker's
  ``/unit_api/config/specific``); validated together with the shared file;
  history ``unit_config.ini::{unit}``.
* A save (either file) whose resulting config would set ``[api] max_body_bytes`` or ``max_text_chars`` below
  what its own JSON body needs is refused with a 400 (so the same save can always be sent again; see
  :func:`reactorkit.api.body_limits.check_save_resendable`).
* ``GET /api/config/units/{unit}``: merged configs ``{"configs": {unit: {section: {key: value}}},
  "errors": {unit: error}}`` (``$broadcast``: every unit; workers through
  ``/unit_api/config/merged``, 10 s).
* History GETs: ``[{filename, timestamp, data}]``, newest first.

Classic aliases: ``/api/configs`` (file names: ``config.ini`` and ``config_{unit}.ini``
for each unit's specific file), ``/api/configs/{filename}`` (GET text, PATCH ``{code}``),
``/api/configs/{filename}/history``, ``/api/units/{unit}/configuration`` (``{unit: merged}``).
"""

from __future__ import annotations

import configparser
from typing import Any

import falcon

from reactorkit.api.body_limits import check_save_resendable, save_size
from reactorkit.api.errors import ApiError, invalid_config, protected_setting
from reactorkit.core.config_guard import ProtectedSetting, check_unchanged
from reactorkit.api.leader.common import (
    BROADCAST,
    Context,
    read_body,
    require_unit,
    success,
    unit_not_found,
)
from reactorkit.core.config_validation import (
    SHARED,
    InvalidConfig,
    normalise,
    validate_shared,
    validate_specific,
)
from reactorkit.core.leader_db import now_iso

MERGED_TIMEOUT_S = 10.0


def _read_text(path: Any) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""


def _record(ctx: Context, filename: str, data: str) -> None:
    ctx.db.execute("INSERT INTO config_files_histories (timestamp, filename, data) VALUES (?, ?, ?)",
                   (now_iso(), filename, data))


def _history(ctx: Context, filename: str) -> list[dict[str, Any]]:
    return ctx.db.query("SELECT filename, timestamp, data FROM config_files_histories WHERE filename = ?"
                        " ORDER BY timestamp DESC, rowid DESC", (filename,))


def _code(req: falcon.Request) -> str:
    return normalise(read_body(req)["code"])  # a string: checked by the schema middleware (CODE_BODY)


# ------------------------------------------------------------------ shared
def shared_text() -> str:
    from reactorkit.core.config import shared_config_path

    return _read_text(shared_config_path())


def _scope_of(req: falcon.Request) -> str | None:
    record = getattr(req.context, "token", None)
    return getattr(record, "scope", None) or ("admin" if getattr(req.context, "auth", "") == "off" else None)


def shared_for_caller(req: falcon.Request) -> str:
    """``config.ini`` with the broker user the caller's web UI connects with (see
    :func:`reactorkit.core.auth.mqtt.shared_config_for`)."""
    from reactorkit.core.auth.mqtt import shared_config_for

    return shared_config_for(shared_text(), _scope_of(req))


def save_shared(ctx: Context, code: str, size: tuple[int, int] | None = None) -> str:
    """Validate, write atomically, record history; returns the text saved (the UI's broker user is not written
    back, see :func:`reactorkit.core.auth.mqtt.shared_config_to_save`).

    ``size``: ``(bytes, characters)`` of the save's JSON body (:func:`reactorkit.api.body_limits.save_size`);
    given, a text whose ``[api]`` body bounds would refuse that body (alone, for units whose own file sets none,
    or merged with this unit's ``unit_config.ini``) is refused.

    Raises: ApiError 400 (invalid text, bounds below ``size``), 403 (protected setting)."""
    from reactorkit.core.auth.mqtt import shared_config_to_save

    code = shared_config_to_save(code, shared_text())
    from reactorkit.core.config import forget_config_files, shared_config_path, unit_config_path
    from reactorkit.core.paths import atomic_write

    try:
        validate_shared(code)
        check_unchanged(shared_text(), code)
    except InvalidConfig as exc:
        raise invalid_config(exc) from None
    except ProtectedSetting as exc:
        raise protected_setting(exc) from None
    if size is not None:
        check_save_resendable([[code], [code, _read_text(unit_config_path())]], size)
    atomic_write(shared_config_path(), code)
    _record(ctx, SHARED, code)
    forget_config_files()  # this process re-reads the files (and the clock's [simulation]) next time
    return code


class SharedConfig:
    """``GET /api/config/shared`` (text) and ``PATCH {code}``."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = falcon.MEDIA_TEXT
        resp.text = shared_for_caller(req)

    def on_patch(self, req: falcon.Request, resp: falcon.Response) -> None:
        code = _code(req)
        code = save_shared(self.ctx, code, save_size(req))
        synced = sync_shared(self.ctx, code)
        success(resp, **({"sync": synced} if synced else {}))

    on_put = on_patch  # the web UI saves with PUT


def sync_shared(ctx: Context, code: str) -> dict[str, Any]:
    """Push the saved ``config.ini`` to every worker (``PUT /unit_api/config/shared``), concurrently.

    Returns:
        ``{unit: envelope}`` as :func:`reactorkit.api.fanout.fan_out` reports them; a worker that
        is off is reported, not fatal (it gets the file at the next save).
    """
    from reactorkit.api import fanout

    others = [w["pioreactor_unit"] for w in ctx.db.workers() if w["pioreactor_unit"] != ctx.unit]
    if not others:
        return {}
    return fanout.fan_out("PUT", others, "/unit_api/config/shared", {"code": code}, timeout=10.0, config=ctx.config)


class SharedConfigHistory:
    """``GET /api/config/shared/history``."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = _history(self.ctx, SHARED)


# ---------------------------------------------------------------- specific
def _proxy_error(unit: str, what: str, exc: Exception | str) -> ApiError:
    return ApiError(falcon.HTTP_502, f"Could not {what} {unit}'s unit_config.ini.", cause=str(exc),
                    remediation=f"Check that {unit} is on and serving /unit_api (see [cluster.addresses]).")


def _check_specific_target(ctx: Context, unit: str) -> None:
    if unit == BROADCAST:
        raise ApiError(falcon.HTTP_400, "$broadcast is not allowed here.",
                       cause="Unit-specific config is read and written one unit at a time.",
                       remediation="Name one unit, e.g. /api/config/units/worker1/specific.")
    require_unit(ctx, unit, allow_broadcast=False)


def specific_text(ctx: Context, unit: str) -> str:
    """``unit``'s ``unit_config.ini`` (the leader's own file, else from the worker). Raises: ApiError 502."""
    import httpx

    from reactorkit.core.auth.client import cluster_headers

    from reactorkit.core.cluster import unit_url
    from reactorkit.core.config import unit_config_path

    if unit == ctx.unit:
        return _read_text(unit_config_path())
    try:
        reply = httpx.get(f"{unit_url(unit, ctx.config)}/unit_api/config/specific", timeout=5.0,
                          headers=cluster_headers())
    except httpx.HTTPError as exc:
        raise _proxy_error(unit, "read", exc) from None
    if reply.status_code != 200:
        raise _proxy_error(unit, "read", f"/unit_api/config/specific answered {reply.status_code}")
    return reply.text


def save_specific(ctx: Context, unit: str, code: str, size: tuple[int, int] | None = None) -> None:
    """Validate with the shared file, write (locally or through the worker), record history.

    ``size``: ``(bytes, characters)`` of the save's JSON body (:func:`reactorkit.api.body_limits.save_size`);
    given, a text whose ``[api]`` body bounds, merged over the shared file, would refuse that body is refused
    (a worker checks again against the body the leader sends it).

    Raises: ApiError 400 (invalid text, bounds below ``size``), 403 (protected setting), 502 (worker)."""
    import httpx

    from reactorkit.core.auth.client import cluster_headers

    from reactorkit.core.cluster import unit_url
    from reactorkit.core.config import forget_config_files, unit_config_path
    from reactorkit.core.paths import atomic_write

    shared = shared_text()  # one read: the validation and the body bounds judge the same shared file
    try:
        validate_specific(code, unit, shared)
        if unit == ctx.unit:  # a worker checks its own file (PATCH /unit_api/config/specific)
            check_unchanged(_read_text(unit_config_path()), code)
    except InvalidConfig as exc:
        raise invalid_config(exc) from None
    except ProtectedSetting as exc:
        raise protected_setting(exc) from None
    if size is not None:
        check_save_resendable([[shared, code]], size)
    if unit == ctx.unit:
        atomic_write(unit_config_path(), code)
        forget_config_files()
    else:
        try:
            reply = httpx.patch(f"{unit_url(unit, ctx.config)}/unit_api/config/specific", json={"code": code},
                                headers=cluster_headers(),
                                timeout=5.0)
        except httpx.HTTPError as exc:
            raise _proxy_error(unit, "write", exc) from None
        if reply.status_code >= 400:
            raise _proxy_error(unit, "write", f"/unit_api/config/specific answered {reply.status_code}: {reply.text}")
    _record(ctx, f"unit_config.ini::{unit}", code)


class SpecificConfig:
    """``GET /api/config/units/{unit}/specific`` (text) and ``PATCH {code}``."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def on_get(self, req: falcon.Request, resp: falcon.Response, pioreactor_unit: str) -> None:
        _check_specific_target(self.ctx, pioreactor_unit)
        resp.content_type = falcon.MEDIA_TEXT
        resp.text = specific_text(self.ctx, pioreactor_unit)

    def on_patch(self, req: falcon.Request, resp: falcon.Response, pioreactor_unit: str) -> None:
        code = _code(req)
        _check_specific_target(self.ctx, pioreactor_unit)
        save_specific(self.ctx, pioreactor_unit, code, save_size(req))
        success(resp)

    on_put = on_patch  # the web UI saves with PUT


class SpecificConfigHistory:
    """``GET /api/config/units/{unit}/specific/history``."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def on_get(self, req: falcon.Request, resp: falcon.Response, pioreactor_unit: str) -> None:
        _check_specific_target(self.ctx, pioreactor_unit)
        rows = _history(self.ctx, f"unit_config.ini::{pioreactor_unit}")
        resp.media = rows + _history(self.ctx, f"config_{pioreactor_unit}.ini")


# ------------------------------------------------------------------ merged
def _as_dict(config: configparser.ConfigParser) -> dict[str, dict[str, str]]:
    return {section: {k: v if v is not None else "" for k, v in config.items(section, raw=True)}
            for section in config.sections()}


def merged_configs(ctx: Context, unit: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(configs, errors)`` keyed by unit (``$broadcast``: every unit)."""
    from reactorkit.api import fanout
    from reactorkit.core.config import load_config

    units = ctx.db.units() if unit == BROADCAST else [unit]
    configs: dict[str, Any] = {}
    errors: dict[str, Any] = {}
    others = [u for u in units if u != ctx.unit]
    if ctx.unit in units:
        try:
            configs[ctx.unit] = _as_dict(load_config())
        except configparser.Error as exc:
            errors[ctx.unit] = {"kind": "invalid_config", "message": str(exc)}
    if others:
        for name, envelope in fanout.fan_out("GET", others, "/unit_api/config/merged", timeout=MERGED_TIMEOUT_S,
                                             config=ctx.config).items():
            if envelope.get("ok"):
                configs[name] = envelope["value"]
            else:
                errors[name] = envelope.get("error")
    return dict(sorted(configs.items())), dict(sorted(errors.items()))


def _for_caller(req: falcon.Request, configs: dict[str, Any]) -> dict[str, Any]:
    """Each unit's merged config with the broker credentials the caller may have (the web UI's, by scope)."""
    from reactorkit.core.auth.mqtt import for_browser

    scope = _scope_of(req)
    return {unit: for_browser(config, scope) if isinstance(config, dict) else config
            for unit, config in configs.items()}


class UnitConfig:
    """``GET /api/config/units/{unit}`` → ``{"configs": {unit: {...}}, "errors": {unit: error}}``."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def on_get(self, req: falcon.Request, resp: falcon.Response, pioreactor_unit: str) -> None:
        require_unit(self.ctx, pioreactor_unit)
        configs, errors = merged_configs(self.ctx, pioreactor_unit)
        resp.media = {"configs": _for_caller(req, configs), "errors": errors}


class ClassicUnitConfiguration:
    """``GET /api/units/{unit}/configuration`` (classic) → ``{unit: {section: {key: value}}}``."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def on_get(self, req: falcon.Request, resp: falcon.Response, pioreactor_unit: str) -> None:
        require_unit(self.ctx, pioreactor_unit)
        configs, _ = merged_configs(self.ctx, pioreactor_unit)
        resp.media = _for_caller(req, configs)


# ----------------------------------------------------------------- classic
def _classic_target(ctx: Context, filename: str) -> str | None:
    """``None`` for the shared file, else the unit of ``config_{unit}.ini``. Raises: ApiError 404."""
    if filename == SHARED:
        return None
    if filename.startswith("config_") and filename.endswith(".ini"):
        unit = filename[len("config_"):-len(".ini")]
        if unit in ctx.db.units():
            return unit
        raise unit_not_found(unit)
    raise ApiError(falcon.HTTP_404, f"No config file {filename!r}.", cause="Known files are listed by GET /api/configs.",
                   remediation="Use config.ini or config_<unit>.ini.")


class ClassicConfigs:
    """``GET /api/configs`` → ``["config.ini", "config_<unit>.ini", …]``."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = [SHARED, *(f"config_{u}.ini" for u in self.ctx.db.units())]


class ClassicConfigFile:
    """``GET|PATCH /api/configs/{filename}``."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def on_get(self, req: falcon.Request, resp: falcon.Response, filename: str) -> None:
        unit = _classic_target(self.ctx, filename)
        resp.content_type = falcon.MEDIA_TEXT
        resp.text = shared_for_caller(req) if unit is None else specific_text(self.ctx, unit)

    def on_patch(self, req: falcon.Request, resp: falcon.Response, filename: str) -> None:
        code = _code(req)
        unit = _classic_target(self.ctx, filename)
        if unit is None:
            save_shared(self.ctx, code, save_size(req))
        else:
            save_specific(self.ctx, unit, code, save_size(req))
        success(resp)


class ClassicConfigHistory:
    """``GET /api/configs/{filename}/history``."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def on_get(self, req: falcon.Request, resp: falcon.Response, filename: str) -> None:
        unit = _classic_target(self.ctx, filename)
        if unit is None:
            resp.media = _history(self.ctx, SHARED)
        else:
            resp.media = _history(self.ctx, f"unit_config.ini::{unit}") + _history(self.ctx, filename)

