"""Fault drills of the data path: break the broker, the ingestion, the leader or the worker's network
while od_reading publishes (simulated vessel, 60× speed-up), then count every reading published
against the leader database. Each drill runs its own mosquitto on a free port.

Each asserts 0 readings lost and 0 duplicated and prints published / stored / lost / duplicated.
"""

import signal
import sqlite3
import time

import pytest

from reactorkit.core.fault_drills import DrillCluster, not_yet_stored, wait_until

pytestmark = pytest.mark.integration

OD = (("od_reading", "od2"), "od_readings", "channel = 2")
# resend sooner than the 30 s default so that a drill whose broker lost messages stays short
FAST_RESEND = "[outbox]\nresend_after_s = 3\nkeeper_interval_s = 1\n"


@pytest.fixture
def cluster(tmp_path):
    try:
        c = DrillCluster(tmp_path / "drill", speedup=60, link=True, worker_config=FAST_RESEND)
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    c.start()
    yield c
    c.stop()


def readings_so_far(cluster) -> int:
    return cluster.tally(*OD).published


def run_then_settle(cluster, fault_s: float, during=lambda: None):
    """Let od_reading publish through a fault of ``fault_s`` wall seconds; return the tally once all is stored."""
    before = readings_so_far(cluster)
    during()
    time.sleep(fault_s)
    return before


def finish(cluster):
    cluster.stop_jobs()
    cluster.wait_stored(timeout=120)
    tally = cluster.tally(*OD)
    print(tally.line())
    assert tally.published > 0
    assert (tally.lost, tally.duplicated, tally.declared_lost) == (0, 0, 0), tally.line()
    return tally


def published_grew_while(cluster, start: int) -> int:
    return wait_until(lambda: (n := readings_so_far(cluster)) > start + 20 and n, timeout=60,
                      what="od_reading kept publishing during the fault")


@pytest.mark.parametrize("how", ["clean stop", "crash"])
def test_broker_restart_loses_and_duplicates_nothing(cluster, how):
    cluster.start_ingestion()
    job = cluster.start_job("od_reading")
    wait_until(lambda: readings_so_far(cluster) >= 10, timeout=60, what="first readings")

    cluster.broker.stop(signal.SIGTERM if how == "clean stop" else signal.SIGKILL)
    during = readings_so_far(cluster)
    published_grew_while(cluster, during)  # kept in the outbox while the broker is away
    cluster.broker.start()

    # the job comes back as it is (re-announced, replacing its last will) within seconds
    cluster.wait_state(cluster.worker_name, cluster.experiment, "od_reading", "ready", timeout=30)
    assert job.poll() is None
    finish(cluster)


def test_ingestion_outage_and_crash_lose_and_duplicate_nothing(cluster):
    cluster.start_ingestion()
    cluster.start_job("od_reading")
    wait_until(lambda: readings_so_far(cluster) >= 10, timeout=60, what="first readings")

    cluster.stop_ingestion(signal.SIGKILL)  # a crash: the batch taken but not committed is not acknowledged
    published_grew_while(cluster, readings_so_far(cluster))
    cluster.start_ingestion()
    finish(cluster)


def test_leader_restart_loses_and_duplicates_nothing(cluster):
    cluster.start_ingestion()
    cluster.start_job("od_reading")
    wait_until(lambda: readings_so_far(cluster) >= 10, timeout=60, what="first readings")

    cluster.stop_ingestion(signal.SIGKILL)  # the leader goes down: its ingestion and its broker
    cluster.broker.stop(signal.SIGKILL)
    published_grew_while(cluster, readings_so_far(cluster))
    cluster.broker.start()
    cluster.start_ingestion()
    finish(cluster)


def test_worker_network_cut_loses_and_duplicates_nothing(cluster):
    cluster.start_ingestion()
    cluster.start_job("od_reading")
    wait_until(lambda: readings_so_far(cluster) >= 10, timeout=60, what="first readings")

    cluster.link.cut()
    published_grew_while(cluster, readings_so_far(cluster))
    assert not_yet_stored(cluster.worker_root, cluster.leader_root, cluster.worker_name) > 0
    cluster.link.restore()
    finish(cluster)


def test_a_full_outbox_keeps_the_oldest_and_reports_the_gap(tmp_path):
    try:
        cluster = DrillCluster(tmp_path / "drill", speedup=60, worker_config="[outbox]\nmax_messages = 15\n"
                                                                             "resend_after_s = 3\nkeeper_interval_s = 1\n")
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    with cluster:
        cluster.start_ingestion()  # so that the worker learns which topics are stored
        cluster.start_job("od_reading")
        wait_until(lambda: readings_so_far(cluster) >= 3, timeout=60, what="first readings")
        cluster.stop_ingestion()
        wait_until(lambda: readings_so_far(cluster) >= 40, timeout=60, what="readings during the outage")
        cluster.start_ingestion()
        cluster.stop_jobs()
        cluster.wait_stored(timeout=120)  # stored, or reported as lost by the worker
        tally = cluster.tally(*OD)
        print(tally.line())
        assert tally.declared_lost > 0 and tally.duplicated == 0
        assert tally.lost == tally.declared_lost  # every reading missing is one the worker said it could not keep
        db = sqlite3.connect(cluster.leader_root / "storage" / "pioreactor.sqlite")
        first, last, count = db.execute("SELECT min(first_seq), max(last_seq), sum(count) FROM ingestion_gaps"
                                        " WHERE topic LIKE '%/od_reading/od2'").fetchone()
        assert count == tally.declared_lost and last - first + 1 >= count
        stored = {int(v) for (v,) in db.execute("SELECT count(*) FROM od_readings WHERE channel = 2")}
        assert stored == {tally.published - tally.declared_lost}
        # the outbox is shared by the unit's topics, so other topics may be reported too; od2's must be among them
        logged = wait_until(lambda: db.execute("SELECT message FROM logs WHERE level = 'WARNING'"
                                               " AND message LIKE '%could not keep%'"
                                               " AND message LIKE '%od_reading/od2 %'").fetchall(), timeout=30,
                            what="the leader logs the gap of od2")
        assert all("outbox full" in message for (message,) in logged)
