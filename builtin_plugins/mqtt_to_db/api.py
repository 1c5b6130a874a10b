"""``GET /api/ingestion``: what the leader's ingestion has stored, what is on its way, what was lost."""

from __future__ import annotations

import falcon

from reactorkit.plugin import RouteResource

SCHEMAS = {
    "GET": {
        "summary": "Per unit: numbered readings received, duplicates dropped, readings still on their way (missing) "
                   "and readings lost (reported by the unit: its outbox was full), with the gaps themselves.",
        "query": {"experiment": {"type": "string", "description": "Only the gaps of this experiment."}},
        "responses": {"200": {
            "type": "object", "required": ["running", "units", "gaps"],
            "properties": {
                "running": {"type": "boolean"},
                "units": {"type": "array", "items": {
                    "type": "object", "required": ["pioreactor_unit", "received", "duplicates", "missing", "lost", "gaps"],
                    "properties": {"pioreactor_unit": {"type": "string"}, "received": {"type": "integer"},
                                   "duplicates": {"type": "integer"}, "missing": {"type": "integer"},
                                   "lost": {"type": "integer"}, "gaps": {"type": "integer"},
                                   "last_received_at": {"type": ["string", "null"]}}}},
                "gaps": {"type": "array", "items": {
                    "type": "object", "required": ["pioreactor_unit", "topic", "count", "first_seq", "last_seq"],
                    "properties": {"experiment": {"type": "string"}, "pioreactor_unit": {"type": "string"},
                                   "topic": {"type": "string"}, "count": {"type": "integer"},
                                   "first_seq": {"type": "integer"}, "last_seq": {"type": "integer"},
                                   "first_dropped_at": {"type": "string"}, "last_dropped_at": {"type": "string"},
                                   "reason": {"type": "string"}, "recorded_at": {"type": "string"}}}},
            },
        }},
    },
}


class Ingestion(RouteResource):
    """``GET /api/ingestion[?experiment=…]`` → ``{"running", "units": [{pioreactor_unit, received, duplicates,
    missing, lost, gaps, last_received_at}], "gaps": [{experiment, pioreactor_unit, topic, count, first_seq,
    last_seq, first_dropped_at, last_dropped_at, reason, recorded_at}]}``."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        from reactorkit.plugin import JobRegistry

        from . import ledger

        db = self.context.leader_db
        registry = JobRegistry()
        try:
            running = bool(registry.running(job_name="mqtt_to_db_streaming"))
        finally:
            registry.close()
        gaps = [{k: v for k, v in g.items() if k != "stream"} for g in ledger.gaps(db, req.get_param("experiment"))]
        resp.media = {"running": running, "units": ledger.summary(db), "gaps": gaps}
