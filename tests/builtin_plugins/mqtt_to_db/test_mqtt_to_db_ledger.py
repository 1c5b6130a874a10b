"""The ingestion's ledger: each numbered message stored once, gaps recorded once, summaries."""

import json

import pytest

from reactorkit.builtin_plugins.mqtt_to_db import ledger
from reactorkit.core.leader_db import LeaderDB
from reactorkit.core.plugins import Registry


@pytest.fixture
def db(tmp_path, monkeypatch):
    monkeypatch.setenv("DOT_PIOREACTOR", str(tmp_path))
    d = LeaderDB(tmp_path / "leader.sqlite", registry=Registry.installed(), foreign_keys=False)
    yield d
    d.close()


def claim(db, numbered):
    with db.transaction() as conn:
        return ledger.claim(conn, numbered, "2026-01-01T00:00:00.000Z")


def test_a_number_is_fresh_once_across_batches_and_within_one(db):
    first = claim(db, [("w1", "s", "t", 1), ("w1", "s", "t", 2), ("w1", "s", "t", 2)])
    assert first == {("w1", "s", "t", 1), ("w1", "s", "t", 2)}
    second = claim(db, [("w1", "s", "t", 2), ("w1", "s", "t", 3), ("w1", "s2", "t", 2), ("w2", "s", "t", 2)])
    assert second == {("w1", "s", "t", 3), ("w1", "s2", "t", 2), ("w2", "s", "t", 2)}
    row = db.query_one("SELECT ranges, received, duplicates FROM ingestion_sequences"
                       " WHERE pioreactor_unit = 'w1' AND stream = 's' AND topic = 't'")
    assert (json.loads(row["ranges"]), row["received"], row["duplicates"]) == ([[1, 3]], 3, 2)


def test_a_rolled_back_batch_claims_nothing(db):
    with pytest.raises(RuntimeError):
        with db.transaction() as conn:
            ledger.claim(conn, [("w1", "s", "t", 1)], "2026-01-01T00:00:00.000Z")
            raise RuntimeError("the rows could not be written")
    assert claim(db, [("w1", "s", "t", 1)]) == {("w1", "s", "t", 1)}


def test_gap_reports_are_recorded_once_and_extended(db):
    report = {"stream": "s", "topic": "p/pioreactor/w1/exp/od_reading/od2", "first_seq": 6, "last_seq": 8, "count": 3,
              "first_at": 1.7e9, "last_at": 1.7e9 + 10, "reason": "outbox full"}
    with db.transaction() as conn:
        assert ledger.record_gap(conn, "w1", "exp", report, "2026-01-01T00:00:00.000Z")
        assert not ledger.record_gap(conn, "w1", "exp", report, "2026-01-01T00:00:00.000Z")
        assert ledger.record_gap(conn, "w1", "exp", {**report, "last_seq": 9, "count": 4}, "2026-01-01T00:00:00.000Z")
    [gap] = ledger.gaps(db, "exp")
    assert (gap["first_seq"], gap["last_seq"], gap["count"], gap["experiment"]) == (6, 9, 4, "exp")


def test_summary_separates_what_is_on_its_way_from_what_is_lost(db):
    claim(db, [("w1", "s", "t", n) for n in (1, 2, 3, 5, 6, 10)])  # 4 and 7–9 not (yet) here
    with db.transaction() as conn:
        ledger.record_gap(conn, "w1", "exp", {"stream": "s", "topic": "t", "first_seq": 7, "last_seq": 9, "count": 3,
                                              "first_at": 1.7e9, "last_at": 1.7e9}, "2026-01-01T00:00:00.000Z")
    [w1] = ledger.summary(db)
    assert (w1["received"], w1["missing"], w1["lost"], w1["gaps"]) == (6, 1, 3, 1)
