"""mqtt_to_db without a broker: what is skipped, routing, log rows, batch writes that survive bad rows."""

import json
import subprocess
import sys

import pytest

from reactorkit.builtin_plugins import mqtt_to_db, od_reading, stirring
from reactorkit.builtin_plugins.mqtt_to_db.descriptors import parse_log
from reactorkit.builtin_plugins.mqtt_to_db.job import BatchWriter, TopicRouter, rows_of, should_skip
from reactorkit.core.descriptors import TopicMapping
from reactorkit.core.leader_db import LeaderDB
from reactorkit.core.plugins import Registry


def test_the_job_is_long_running_and_maps_logs(plugin_manager):
    plugin_manager.register(mqtt_to_db, name="mqtt_to_db")
    registry = Registry.from_plugins(plugin_manager)
    job = registry.jobs["mqtt_to_db_streaming"]
    assert job.is_long_running and not job.display
    assert [(m.topic, m.table) for m in registry.topic_mappings] == [("pioreactor/+/+/logs/#", "logs")]


@pytest.mark.parametrize("topic, payload, retained, skipped", [
    ("pioreactor/w1/exp/stirring/measured_rpm", b"{}", False, False),
    ("pioreactor/w1/exp/stirring/measured_rpm", b"{}", True, True),
    ("pioreactor/w1/exp/stirring/measured_rpm", b"", False, True),
    ("pioreactor/w1/_testing_exp/stirring/measured_rpm", b"{}", False, True),
])
def test_retained_empty_and_testing_messages_are_skipped(topic, payload, retained, skipped):
    assert should_skip(topic, payload, retained) is skipped


def test_log_rows_take_unit_experiment_from_the_topic_and_uppercase_the_level():
    payload = json.dumps({"message": "Started", "level": "notice", "task": "stirring",
                          "timestamp": "2026-01-31T12:45:00.123456Z", "source": "app"}).encode()
    row = parse_log("t1/pioreactor/w1/exp1/logs/app/notice", payload)
    assert row == {"pioreactor_unit": "w1", "experiment": "exp1", "timestamp": "2026-01-31T12:45:00.123Z",
                   "message": "Started", "source": "app", "level": "NOTICE", "task": "stirring"}


def test_log_rows_fall_back_to_the_topic_for_source_and_level():
    payload = json.dumps({"message": "hi", "timestamp": "2026-01-31T12:45:00Z"}).encode()
    row = parse_log("pioreactor/w1/exp1/logs/ui/warning", payload)
    assert (row["source"], row["level"], row["task"]) == ("ui", "WARNING", None)


@pytest.mark.parametrize("payload", [b"not json", b"[1, 2]", b'{"message": "no time"}', b'{"timestamp": "x", "message": 1}'])
def test_malformed_log_payloads_raise(payload):
    with pytest.raises((ValueError, KeyError)):
        parse_log("pioreactor/w1/exp1/logs/app/info", payload)


def test_router_matches_patterns_under_the_prefix():
    mappings = [TopicMapping(topic="pioreactor/+/+/stirring/measured_rpm", table="stirring_rates", parse=lambda t, p: None),
                TopicMapping(topic="pioreactor/+/+/logs/#", table="logs", parse=lambda t, p: None)]
    router = TopicRouter(mappings, prefix="t9/")
    assert router.subscriptions == ["t9/pioreactor/+/+/stirring/measured_rpm", "t9/pioreactor/+/+/logs/#"]
    assert [m.table for m, _ in router.route("t9/pioreactor/w1/e/logs/app/info")] == ["logs"]
    assert router.route("pioreactor/w1/e/logs/app/info") == []  # another cluster's topic
    assert router.route("t9/pioreactor/w1/e/stirring/target_rpm") == []


def test_a_broken_parser_disables_only_its_mapping():
    mappings = [TopicMapping(topic="pioreactor/+/+/x", table="xs", parse="no.such.module:parse"),
                TopicMapping(topic="pioreactor/+/+/logs/#", table="logs", parse=parse_log)]
    router = TopicRouter(mappings)
    assert [m.table for _, m, _ in router.mappings] == ["logs"]
    assert router.broken[0][0].table == "xs"


def test_rows_of_reports_parse_errors_instead_of_raising():
    router = TopicRouter([TopicMapping(topic="pioreactor/+/+/logs/#", table="logs", parse=parse_log)])
    rows, errors = rows_of(router, "pioreactor/w1/e/logs/app/info", b"garbage")
    assert rows == [] and "logs" in errors[0]


@pytest.fixture
def writer_db(tmp_path, plugin_manager):
    plugin_manager.register(stirring, name="stirring")
    db = LeaderDB(tmp_path / "db.sqlite", registry=Registry.from_plugins(plugin_manager), foreign_keys=False)
    yield db
    db.close()


def test_batch_writer_keeps_good_rows_when_one_is_refused(writer_db):
    errors = []
    writer = BatchWriter(writer_db, on_error=errors.append)
    good = {"experiment": "e", "pioreactor_unit": "w1", "timestamp": "2026-01-01T00:00:00.000Z", "measured_rpm": 400.0}
    missing = {"experiment": "e", "pioreactor_unit": "w1", "timestamp": "2026-01-01T00:00:01.000Z", "measured_rpm": None}
    unknown_column = {**good, "nonsense": 1}
    stored = writer.write([("stirring_rates", good), ("stirring_rates", missing), ("stirring_rates", dict(good)),
                           ("stirring_rates", unknown_column), ("no_such_table", good)])
    assert stored == 2
    assert writer_db.query_one("SELECT count(*) AS n FROM stirring_rates")["n"] == 2
    assert writer.rows_rejected == 3 and len(errors) == 3


def test_batch_writer_accepts_rows_of_experiments_that_do_not_exist(writer_db):
    writer = BatchWriter(writer_db)
    row = {"experiment": "$experiment", "pioreactor_unit": "leader", "timestamp": "2026-01-01T00:00:00.000Z",
           "message": "boot", "source": "app", "level": "INFO", "task": "monitor"}
    assert writer.write([("logs", row)]) == 1


def test_batch_writer_rolls_up_each_batch_as_the_trigger_would(tmp_path, plugin_manager):
    plugin_manager.register(od_reading, name="od_reading")
    writer_db = LeaderDB(tmp_path / "db.sqlite", registry=Registry.from_plugins(plugin_manager), foreign_keys=False)
    writer = BatchWriter(writer_db)
    assert writer_db.batch_rollup("od_readings") is not None
    rows = [{"experiment": "e", "pioreactor_unit": f"w{i % 2}", "timestamp": f"2026-01-01T00:{i // 60 % 60:02d}:{i % 60:02d}.000Z",
             "od_reading": float(i), "angle": 90, "channel": 1 + i % 3 // 2} for i in range(0, 900, 7)]
    refused = {**rows[0], "od_reading": None}
    writer.write([("od_readings", r) for r in rows[40:]] + [("od_readings", refused)])
    writer.write([("od_readings", r) for r in rows[:40]])  # earlier readings arriving late
    assert writer.rows_rejected == 1
    for size in (10, 15, 40, 120, 960):
        expected = {(r["pioreactor_unit"], r["channel"], r["b"]): (r["ts"], r["v"]) for r in writer_db.query(
            "SELECT pioreactor_unit, channel, unixepoch(timestamp) / ? AS b, min(timestamp) AS ts, od_reading AS v"
            " FROM od_readings GROUP BY 1, 2, 3", (size,))}
        got = {(r["pioreactor_unit"], r["channel"], r["bucket"]): (r["timestamp"], r["value"]) for r in writer_db.query(
            "SELECT * FROM time_series_rollups WHERE data_source = 'od_readings' AND bucket_s = ?", (size,))}
        assert got == expected, size
    assert writer_db.query_one("SELECT count(*) AS n FROM time_series_rollups_paused")["n"] == 0


def test_the_job_module_imports_neither_asyncio_nor_pahos_client():
    # the unit's launcher imports every job's module before it forks jobs: asyncio there weighs on every job
    probe = ("import sys, reactorkit.builtin_plugins.mqtt_to_db.job; "
             "print(sorted(m for m in ('asyncio', 'gmqtt', 'paho.mqtt.client') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"
