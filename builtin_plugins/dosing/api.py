"""Read and correct the vial bookkeeping (domain facts §3.8).

* ``GET|PATCH /unit_api/bioreactor/experiments/{experiment}`` on each unit;
* ``PATCH /api/workers/{u}/bioreactor/update/experiments/{experiment}`` on the
  leader: the same PATCH on each target worker, as an async fan-out (§1.2, §8).
"""

from __future__ import annotations

import logging
from typing import Any

import falcon

from reactorkit.plugin import ApiError, RouteResource
from reactorkit.plugin import openapi as oa
from reactorkit.builtin_plugins.dosing.bioreactor import (
    VARIABLES,
    BioreactorStore,
    InvalidBioreactorValue,
    publish_values,
)

logger = logging.getLogger("reactorkit.dosing.api")


def _publish(unit: str, experiment: str, values: dict[str, float], keys: list[str], config: Any) -> None:
    """Publish the changed variables retained; a broker that is down only logs a warning."""
    from reactorkit.plugin import mqtt as mq

    try:
        client = mq.create_client(config=config)
    except ConnectionError as exc:
        logger.warning("bioreactor values of %s saved but not published: %s", experiment, exc)
        return
    try:
        publish_values(client, unit, experiment, values, keys, config)
    finally:
        client.disconnect()
        client.loop_stop()


class BioreactorValues:
    """GET and PATCH the six bioreactor variables of an experiment on this unit.

    * ``GET`` → 200 ``{"values": {current_volume_ml, efflux_tube_volume_ml,
      alt_media_fraction, cumulative_media_added_ml, cumulative_alt_media_added_ml,
      cumulative_waste_removed_ml}}`` (config defaults for a new experiment).
    * ``PATCH {"values": {variable: number, …}}`` → 200 ``{"status": "success"}``;
      the values are stored and published retained on ``bioreactor/<var>``.
      400 (``Invalid request body.``) for a body without a ``values`` object, an
      unknown variable, a non-number, a negative number, a fraction above 1 or a
      volume above the vial capacity; nothing is written then.
    """

    def on_get(self, req: falcon.Request, resp: falcon.Response, experiment: str) -> None:
        from reactorkit.plugin import get_config

        resp.media = {"values": BioreactorStore(get_config()).get(experiment)}

    def on_patch(self, req: falcon.Request, resp: falcon.Response, experiment: str) -> None:
        from reactorkit.plugin import get_config, get_unit_name

        try:
            body = req.get_media(default_when_empty=None)
        except falcon.MediaMalformedError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("values"), dict):
            raise ApiError(falcon.HTTP_400, "Invalid request body.",
                           cause='Expected a JSON object {"values": {variable: number, …}}.',
                           remediation=f"Give some of: {', '.join(VARIABLES)}.")
        config = get_config()
        try:
            values = BioreactorStore(config).update(experiment, body["values"])
        except InvalidBioreactorValue as exc:
            raise ApiError(falcon.HTTP_400, "Invalid request body.", cause=f"values.{exc.field}: {exc}",
                           remediation=f"Give numbers ≥ 0 for some of: {', '.join(VARIABLES)} "
                                       "(alt_media_fraction within 0–1).") from None
        _publish(get_unit_name(), experiment, values, list(body["values"]), config)
        resp.media = {"status": "success"}


def check_values_body(body: Any) -> dict[str, Any]:
    """The ``values`` object of a bioreactor PATCH body, checked for shape (the units check the numbers).

    Raises:
        ApiError: 400 naming ``values`` or the unknown variable.
    """
    if not isinstance(body, dict) or not isinstance(body.get("values"), dict) or not body["values"]:
        raise ApiError(falcon.HTTP_400, "Invalid request body.",
                       cause='Expected a JSON object {"values": {variable: number, …}} with at least one variable.',
                       remediation=f"Give some of: {', '.join(VARIABLES)}.")
    unknown = sorted(k for k in body["values"] if k not in VARIABLES)
    if unknown:
        raise ApiError(falcon.HTTP_400, "Invalid request body.", cause=f"values.{unknown[0]}: not a bioreactor variable.",
                       remediation=f"Give some of: {', '.join(VARIABLES)}.")
    return dict(body["values"])


class BioreactorUpdateOnWorkers(RouteResource):
    """``PATCH /api/workers/{u}/bioreactor/update/experiments/{experiment} {"values": {…}}`` → 202 task.

    Each target worker gets ``PATCH /unit_api/bioreactor/experiments/{experiment}`` with the same values; the
    task's result is ``{unit: envelope}`` (a worker refusing a value reports its 400 there). Targets: the named
    worker, or for ``$broadcast`` the active workers assigned to the experiment (404 when none).
    """

    def on_patch(self, req: falcon.Request, resp: falcon.Response, pioreactor_unit: str, experiment: str) -> None:
        from urllib.parse import quote

        from redis.exceptions import RedisError

        from reactorkit.plugin import fanout, unavailable_queue

        try:
            body = req.get_media(default_when_empty=None)
        except falcon.MediaMalformedError:
            body = None
        values = check_values_body(body)
        scope = experiment if pioreactor_unit == fanout.BROADCAST else None
        units = self.context.fanout.targets(pioreactor_unit, "workers", experiment=scope)
        path = f"/unit_api/bioreactor/experiments/{quote(experiment, safe='')}"
        try:
            self.context.fanout.respond(resp, "PATCH", units, path, {"values": values})
        except RedisError as exc:
            raise unavailable_queue(exc) from exc


MEDIA_RATE_WINDOW_H = 3.0
_RATE = {"type": "object", "required": ["mediaRate", "altMediaRate"],
         "properties": {"mediaRate": {"type": "number"}, "altMediaRate": {"type": "number"}}}
MEDIA_RATES_SCHEMAS = {"GET": {"summary": "Media added by dosing automations over the last 3 h, mL/h per unit.",
                               "responses": {"200": {"type": "object", "additionalProperties": _RATE}}}}


class MediaRates(RouteResource):
    """``GET /api/experiments/{experiment}/media_rates``: mL/h added by dosing automations over the last 3 h.

    ``{unit: {mediaRate, altMediaRate}, …, "all": {…}}`` (domain facts §4.4): the
    ``add_media`` / ``add_alt_media`` volumes of ``dosing_events`` whose
    ``source_of_event`` starts with ``dosing_automation``, summed over the last
    3 hours of the cluster clock and divided by 3; ``all`` is the sum over units.
    An experiment without dosing gives zeros; an unknown experiment is a 404.
    """

    def on_get(self, req: falcon.Request, resp: falcon.Response, experiment: str) -> None:
        from reactorkit.plugin import get_clock, utc_iso_ms

        db = self.context.leader_db
        if not db.experiment_exists(experiment):
            raise ApiError(falcon.HTTP_404, f"Experiment {experiment!r} not found.",
                           cause=f"No experiment named {experiment!r} exists on this leader.",
                           remediation="Check GET /api/experiments, or create it with POST /api/experiments.")
        out: dict[str, dict[str, float]] = {}
        total_media = total_alt = 0.0
        if db.table_exists("dosing_events"):
            since = utc_iso_ms(get_clock().now() - MEDIA_RATE_WINDOW_H * 3600)
            rows = db.query(
                "SELECT pioreactor_unit,"
                " sum(CASE WHEN event = 'add_media' THEN volume_change_ml ELSE 0 END) AS media,"
                " sum(CASE WHEN event = 'add_alt_media' THEN volume_change_ml ELSE 0 END) AS alt"
                " FROM dosing_events WHERE experiment = ? AND timestamp >= ?"
                " AND event IN ('add_media', 'add_alt_media') AND source_of_event LIKE 'dosing_automation%'"
                " GROUP BY pioreactor_unit ORDER BY pioreactor_unit",
                (experiment, since))
            for r in rows:
                media, alt = float(r["media"] or 0) / MEDIA_RATE_WINDOW_H, float(r["alt"] or 0) / MEDIA_RATE_WINDOW_H
                out[r["pioreactor_unit"]] = {"mediaRate": round(media, 4), "altMediaRate": round(alt, 4)}
                total_media += media
                total_alt += alt
        out["all"] = {"mediaRate": round(total_media, 4), "altMediaRate": round(total_alt, 4)}
        resp.media = out


# ------------------------------------------------------------------------ OpenAPI
# The operation descriptions of this module's routes, keyed by (METHOD, path): the routes' descriptors name this
# table (``RouteDescriptor(schemas=…)``) and the API's OpenAPI document takes each route's entries from it.
BIOREACTOR_VALUES = oa.obj(
    current_volume_ml={"type": "number", "minimum": 0}, efflux_tube_volume_ml={"type": "number", "minimum": 0},
    alt_media_fraction={"type": "number", "minimum": 0, "maximum": 1},
    cumulative_media_added_ml={"type": "number", "minimum": 0},
    cumulative_alt_media_added_ml={"type": "number", "minimum": 0},
    cumulative_waste_removed_ml={"type": "number", "minimum": 0},
    _extra=False, _doc="Bioreactor variables (mL, fraction 0–1).",
)


def _dosing() -> dict[tuple[str, str], dict[str, Any]]:
    path = "/unit_api/bioreactor/experiments/{experiment}"
    return {
        ("GET", path): oa.op("The six bioreactor variables of an experiment on this unit.",
                          ok=oa.obj(("values",), values=oa.mapping(oa.NUM))),
        ("PATCH", path): oa.op("Correct some bioreactor variables (stored and published).", ok=oa.STATUS,
                            body=oa.obj(("values",), values={**BIOREACTOR_VALUES, "minProperties": 1}),
                            body_required=True, path={"experiment": oa.TOPIC_LEVEL}),
        ("PATCH", "/api/workers/{pioreactor_unit}/bioreactor/update/experiments/{experiment}"): oa.fan_out(
            "Correct bioreactor variables on a worker ($broadcast: the active workers assigned to the experiment).",
            oa.obj(_doc='The worker\'s {"status": "success"}, stripped of its status (§1.2): {}.'),
            body=oa.obj(("values",), values={**BIOREACTOR_VALUES, "minProperties": 1}), body_required=True,
            path={"experiment": oa.TOPIC_LEVEL}),
    }


OPENAPI = _dosing()
