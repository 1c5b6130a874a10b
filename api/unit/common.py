"""Helpers shared by the ``/unit_api`` and leader job resources: bodies, tasks, MQTT."""

from __future__ import annotations

from typing import Any, Iterable

import falcon

from reactorkit.api.errors import ApiError

_TYPE_NAMES = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "an integer",
               float: "a number"}


def invalid(cause: str, remediation: str | None = None) -> ApiError:
    """A 400 ``Invalid request body.`` naming what is wrong (§1.3)."""
    return ApiError(falcon.HTTP_400, "Invalid request body.", cause=cause,
                    remediation=remediation or "Fix the named field and send the request again.")


def read_body(req: falcon.Request) -> dict[str, Any]:
    """The JSON object of the request body; an empty body is ``{}``.

    Raises:
        ApiError: 400 when the body is not JSON or not an object.
    """
    try:
        media = req.get_media(default_when_empty=None)
    except falcon.MediaMalformedError as exc:
        raise invalid(f"The body is not valid JSON: {exc.description or exc.title}.",
                      "Send a JSON object with Content-Type: application/json.") from exc
    except falcon.HTTPError:
        raise
    if media is None:
        return {}
    if not isinstance(media, dict):
        raise invalid(f"The body must be a JSON object, got {_json_type(media)}.")
    return media


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    for kind, name in _TYPE_NAMES.items():
        if type(value) is kind:
            return name
    return type(value).__name__


def field(body: dict[str, Any], name: str, kind: type | tuple[type, ...], *, default: Any = None,
          required: bool = False, allow_null: bool = True) -> Any:
    """``body[name]`` checked against ``kind``.

    Raises:
        ApiError: 400 naming ``name`` when missing (and required) or of the wrong type.
    """
    if name not in body or (body[name] is None and allow_null and not required):
        if required:
            raise invalid(f"Field '{name}' is required.")
        return default
    value = body[name]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
    if not ok:
        expected = " or ".join(_TYPE_NAMES.get(k, k.__name__) for k in kinds)
        raise invalid(f"Field '{name}' must be {expected}, got {_json_type(value)}.")
    return value


def check_run_body(body: dict[str, Any]) -> dict[str, Any]:
    """A job-run body ``{options, env, args, config_overrides}`` (§8) with its defaults, the arguments and
    overrides as strings.

    The body was checked by the schema middleware (``RUN_BODY``: scalar options and env values,
    string or number arguments, overrides of three scalars), the only check of its shape.
    """
    args, overrides = body.get("args") or [], body.get("config_overrides") or []
    return {"options": body.get("options") or {}, "env": body.get("env") or {}, "args": [str(a) for a in args],
            "config_overrides": [[str(v) for v in item] for item in overrides]}


def _declared_value(label: str, name: str, datatype: str, value: Any, declared: Any) -> Any:
    """``value`` (a JSON value, or a string to be cast by ``datatype``) checked against ``declared``'s bounds."""
    from reactorkit.core.descriptors import SettingOutOfRange, describe_bounds
    from reactorkit.core.job import InvalidSettingValue, cast_setting

    number = datatype in ("float", "integer")
    try:
        if isinstance(value, str):
            value = cast_setting(datatype, value)
        elif number and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise InvalidSettingValue(f"{value!r} is not a valid {datatype}")
        return declared.check(value)
    except InvalidSettingValue:
        raise invalid(f"{label} must be {'a number' if number else 'a ' + datatype}, got {value!r}.",
                      f"Send {name} as a {'number' if number else datatype}.") from None
    except SettingOutOfRange as exc:
        raise invalid(f"{label} must be {describe_bounds(exc.min, exc.max, exc.unit)}, got {exc.value!r}.",
                      f"Send a value {describe_bounds(exc.min, exc.max, exc.unit)}.") from None


def check_job_settings(job: Any, settings: dict[str, Any]) -> None:
    """Check ``settings`` (``{key: value}``, as sent to ``…/{key}/set``) against the job's descriptor.

    Only what the descriptor declares is checked (an automation's own settings pass through).

    Args:
        job: The :class:`~reactorkit.core.descriptors.JobDescriptor`, or None (nothing to check).

    Raises:
        ApiError: 400 naming the setting: not editable, not a value of its type, or outside its bounds.
    """
    if job is None:
        return
    declared = {s.key: s for s in job.published_settings}
    for key, value in settings.items():
        setting = declared.get(str(key))
        if setting is None:
            continue
        if not setting.editable:
            editable = ", ".join(s.key for s in job.published_settings if s.editable) or "none"
            raise invalid(f"Setting '{key}' of {job.job_name} is not editable.",
                          f"Editable settings of {job.job_name}: {editable}.")
        _declared_value(f"Setting '{key}' of {job.job_name}", str(key), setting.datatype, value, setting)


def check_job_options(job: Any, options: dict[str, Any], on_unit: bool = True) -> None:
    """Check a job run's ``options`` against the bounds of the job's CLI options (which a setting of the same
    name declares once), then against the job's own ``check_options`` (bounds from the unit's config or state,
    e.g. ``[pump_limits]``).

    Raises:
        ApiError: 400 naming the option: not a number, outside its bounds, or refused by ``check_options``
            (run only ``on_unit``: the leader, fanning out, has neither the target unit's config nor its state;
            the unit checks when the request reaches it).
    """
    if job is None:
        return
    declared = {o.name: o for o in job.cli_options}
    for key, value in options.items():
        option = declared.get(str(key).replace("-", "_"))
        if option is None or option.type not in ("float", "integer") or value is None:
            continue
        _declared_value(f"Field 'options.{key}'", str(key), option.type, value, option)
    if on_unit and job.check_options is not None:
        from reactorkit.core.config import get_config
        from reactorkit.core.imports import resolve

        try:
            resolve(job.check_options)(job.job_name, {str(k).replace("-", "_"): v for k, v in options.items()},
                                       get_config())
        except ValueError as exc:
            cause = f"Field 'options': {exc}"
            raise invalid(cause if cause.endswith(".") else cause + ".",
                          f"Change the options of {job.job_name}, or the unit's config, as the message says.") from None


def unavailable_queue(exc: Exception) -> ApiError:
    return ApiError(falcon.HTTP_503, "The task queue is unavailable.", cause=f"{type(exc).__name__}: {exc}",
                    remediation="Check that Redis is running and reachable at $REDIS_URL / [redis] url.")


def enqueue_task(resp: falcon.Response, unit: str, func: str, *args: Any, timeout_s: int = 600,
                 **kwargs: Any) -> dict[str, Any]:
    """Queue ``func`` on this unit's rq queue and answer ``202`` with the task envelope (§8).

    Raises:
        ApiError: 503 when Redis cannot be reached.
    """
    from reactorkit.api.fanout import task_envelope
    from reactorkit.core.tasks import enqueue

    try:
        task_id = enqueue(func, *args, unit=unit, timeout_s=timeout_s, **kwargs)
    except Exception as exc:
        if _is_redis_error(exc):
            raise unavailable_queue(exc) from exc
        raise
    resp.status = falcon.HTTP_202
    resp.media = task_envelope(task_id, unit)
    return resp.media


def _is_redis_error(exc: Exception) -> bool:
    try:
        from redis.exceptions import RedisError
    except ImportError:  # pragma: no cover
        return False
    return isinstance(exc, RedisError)


def setting_payload(value: Any) -> str:
    """A ``…/set`` payload: strings as is, booleans ``True``/``False``, dicts/lists JSON (§2.4)."""
    import json

    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    if value is None:
        return ""
    return str(value)


def publish_messages(messages: Iterable[tuple[str, str]], *, qos: int = 1, stored: bool = False) -> None:
    """Publish ``(topic, payload)`` pairs (not retained) on one connection and wait until the broker has them.

    Commands (``…/set``) go by ``paho.mqtt.publish.multiple`` (:func:`reactorkit.core.mqtt.publish_messages`).
    Messages the leader stores (``stored=True``, e.g. log lines) go through this unit's durable
    outbox instead (a client of :func:`~reactorkit.core.mqtt.create_client`), which keeps each on
    disk until the leader has committed it; ``publish.multiple`` has no such outbox.

    Raises:
        ApiError: 503 when the broker cannot be reached.
    """
    from reactorkit.core.mqtt import create_client, publish_messages as publish

    messages = list(messages)
    if not messages:
        return
    try:
        if not stored:
            publish(messages, qos=qos)
            return
        client = create_client()
    except ConnectionError as exc:
        raise ApiError(falcon.HTTP_503, "The MQTT broker is unavailable.", cause=str(exc),
                       remediation="Check that mosquitto is running and [mqtt] in config.ini.") from exc
    try:
        infos = [client.publish(topic, payload, qos=qos, retain=False) for topic, payload in messages]
        for info in infos:
            info.wait_for_publish(5)
    finally:
        client.disconnect()
        client.loop_stop()
