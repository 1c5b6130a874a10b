"""GET /api/ingestion: per-unit counts of the ingestion ledger and the gaps units reported."""

from reactorkit.builtin_plugins.mqtt_to_db import ledger


def test_ingestion_shows_what_is_on_its_way_and_what_was_lost(api, db):
    with db.transaction() as conn:
        ledger.claim(conn, [("worker1", "s", "p/pioreactor/worker1/exp/od_reading/od2", n) for n in (1, 2, 4, 5, 9)],
                     "2026-01-01T00:00:00.000Z")
        ledger.record_gap(conn, "worker1", "exp", {"stream": "s", "topic": "p/pioreactor/worker1/exp/od_reading/od2",
                                                   "first_seq": 6, "last_seq": 8, "count": 3, "first_at": 1.7e9,
                                                   "last_at": 1.7e9 + 2}, "2026-01-01T00:00:00.000Z")
    body = api.simulate_get("/api/ingestion").json
    [unit] = body["units"]
    assert (unit["pioreactor_unit"], unit["received"], unit["missing"], unit["lost"], unit["gaps"]) == (
        "worker1", 5, 1, 3, 1)
    [gap] = body["gaps"]
    assert (gap["count"], gap["first_seq"], gap["experiment"]) == (3, 6, "exp") and "stream" not in gap
    assert body["running"] is False
    assert api.simulate_get("/api/ingestion", params={"experiment": "other"}).json["gaps"] == []
