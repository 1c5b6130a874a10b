"""Fault drills of a whole unit: power loss of a worker (SIGKILL of every process) and an od_reading crash under a
turbidostat, each on its own mosquitto and Redis (free ports), simulated vessel at 60× speed-up.

Each asserts 0 readings lost and 0 duplicated, and that the dosing books (the worker's bookkeeping and the leader's
dosing_events) equal what the simulated vessel received; each prints published / stored / lost / duplicated.
"""

import json
import os
import signal
import sqlite3
import subprocess
import time

import pytest

from reactorkit.core.fault_drills import DrillCluster, wait_until
from reactorkit.core.testing import pio_command, stop_process

pytestmark = pytest.mark.integration

OD = (("od_reading", "od2"), "od_readings", "channel = 2")
PUMP_DC = 20.0
CONFIG = ("[outbox]\nresend_after_s = 3\nkeeper_interval_s = 1\n\n"
          "[dosing_automation.config]\npause_between_subdoses_seconds = 1\nmax_od_age_seconds = 120\n\n"
          "[simulation]\npump_ml_per_second = 0.5\n")


@pytest.fixture
def cluster(tmp_path, monkeypatch):
    try:
        c = DrillCluster(tmp_path / "drill", speedup=60, link=False, redis=True, worker_config=CONFIG)
        c.start()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    env = c.env(c.worker_name)
    for key in ("DOT_PIOREACTOR", "HOSTNAME", "EXPERIMENT", "MQTT_TOPIC_PREFIX", "REACTORKIT_SPEEDUP",
                "REACTORKIT_CLOCK_ORIGIN", "HARDWARE"):
        monkeypatch.setenv(key, env[key])
    from reactorkit.builtin_plugins.dosing.calibration import pump_calibration_record
    from reactorkit.core.calibration_store import save_calibration
    from reactorkit.core.config import set_config

    set_config(None)
    for device in ("media_pump", "alt_media_pump", "waste_pump"):
        save_calibration(device, pump_calibration_record(device, 0.5 * PUMP_DC / 100, name=f"sim_{device}",
                                                         unit=c.worker_name, created_at="2025-01-01T00:00:00.000Z",
                                                         dc=PUMP_DC), set_active=True)
    yield c
    c.stop()
    set_config(None)


def truth(cluster):
    """The worker's simulated vessel now."""
    from reactorkit.core.clock import Clock
    from reactorkit.core.config import load_config
    from reactorkit.core.hardware.simulated import SimulatedHardware

    clock = Clock(cluster.speedup, cluster.origin)
    return SimulatedHardware(load_config(), cluster.worker_name, clock=clock).ground_truth()


def books(cluster):
    from reactorkit.builtin_plugins.dosing.bioreactor import BioreactorStore
    from reactorkit.core.config import load_config

    return BioreactorStore(load_config()).get(cluster.experiment)


def leader_dosing(cluster, event):
    db = cluster.leader_root / "storage" / "pioreactor.sqlite"
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT coalesce(sum(volume_change_ml), 0) FROM dosing_events WHERE event = ? "
                            "AND pioreactor_unit = ?", (event, cluster.worker_name)).fetchone()[0]


def pio(cluster, *args):
    return subprocess.run(pio_command(*args), env=cluster.env(cluster.worker_name), capture_output=True, text=True,
                          timeout=60)


def stop_unit_jobs(cluster):
    """Stop every job of the worker cleanly (also those restored, which are not children of the test)."""
    cluster.stop_jobs()
    pio(cluster, "kill", "--all-jobs")
    wait_until(lambda: not json.loads(pio(cluster, "jobs", "list", "--json").stdout or "[]"), timeout=60,
               what="the worker's jobs stopped")


def assert_books_match_the_vessel(cluster):
    vessel, booked = truth(cluster), books(cluster)
    assert vessel["pwm"].get("2", 0.0) == 0.0 and vessel["pwm"].get("4", 0.0) == 0.0  # no pump left on
    assert booked["cumulative_media_added_ml"] == pytest.approx(vessel["cumulative_media_ml"], rel=0.02, abs=0.02)
    assert booked["current_volume_ml"] == pytest.approx(vessel["volume_ml"], abs=0.1)
    cluster.wait_stored(timeout=120)
    assert leader_dosing(cluster, "add_media") == pytest.approx(vessel["cumulative_media_ml"], rel=0.02, abs=0.02)
    return vessel, booked


def finish(cluster):
    tally = cluster.tally(*OD)
    print(tally.line())
    assert tally.published > 0
    assert (tally.lost, tally.duplicated, tally.declared_lost) == (0, 0, 0), tally.line()
    return tally


def test_worker_power_loss_restores_its_jobs_and_keeps_the_books(cluster):
    cluster.start_ingestion()
    cluster.start_job("od_reading")
    cluster.start_job("stirring", "--target-rpm", "400")
    cluster.start_job("dosing_automation", "--automation-name", "chemostat", "--exchange-volume-ml", "0.5",
                      "--duration", "1")
    settings = cluster.topic(cluster.worker_name, cluster.experiment, "stirring", "target_rpm")
    wait_until(lambda: truth(cluster)["cumulative_media_ml"] > 1.0, timeout=120, what="the chemostat dosed")
    from reactorkit.core import mqtt as mq
    from reactorkit.core.config import load_config

    client = mq.create_client(config=load_config(), outbox=False)
    client.publish(settings + "/set", "500", qos=1).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()
    wait_until(lambda: cluster.retained(settings) == b"500.0", timeout=30, what="target_rpm 500")
    # the power goes: every process of the unit dies at once, whatever it was doing
    for proc in [*cluster.jobs.values(), cluster.keeper]:
        os.kill(proc.pid, signal.SIGKILL)
    for proc in [*cluster.jobs.values(), cluster.keeper]:
        proc.wait(10)
    cluster.jobs.clear()
    cluster.keeper = None
    # the unit comes back: its task worker starts, switches off what was left on, restores the jobs
    worker = subprocess.Popen(pio_command("worker"), env=cluster.env(cluster.worker_name),
                              stdout=open(cluster.worker_root / "worker.log", "wb"), stderr=subprocess.STDOUT)
    try:
        for job in ("od_reading", "stirring", "dosing_automation"):
            cluster.wait_state(cluster.worker_name, cluster.experiment, job, "ready", timeout=90)
        assert cluster.retained(settings) == b"500.0"  # restored with the setting it had, not its start option
        media = truth(cluster)["cumulative_media_ml"]
        wait_until(lambda: truth(cluster)["cumulative_media_ml"] > media + 1.0, timeout=120,
                   what="the restored chemostat dosed")
        log = (cluster.worker_root / "logs" / "pioreactor.log").read_text()
        assert "restored with its last settings" in log
        stop_unit_jobs(cluster)
        assert_books_match_the_vessel(cluster)
        finish(cluster)
    finally:
        stop_process(worker)


def test_stay_stopped_policy_says_what_stays_stopped(cluster):
    with open(cluster.worker_root / "config.ini", "a") as fh:
        fh.write("\n[reliability]\nrestore_policy = stay_stopped\n")
    cluster.start_job("od_reading")
    os.kill(cluster.jobs["od_reading"].pid, signal.SIGKILL)
    cluster.jobs["od_reading"].wait(10)
    cluster.jobs.clear()
    from reactorkit.core.config import set_config
    from reactorkit.core.restore import restore_after_unclean_stop

    set_config(None)
    done = restore_after_unclean_stop()
    assert [(d["job_name"], d["action"]) for d in done] == [("od_reading", "stayed_stopped")]
    log = (cluster.worker_root / "logs" / "pioreactor.log").read_text()
    assert "it stays stopped ([reliability] restore_policy = stay_stopped). Start it again with: pio run od_reading" in log
    assert json.loads(pio(cluster, "jobs", "list", "--json").stdout or "[]") == []


def test_od_reading_crash_under_a_turbidostat_pauses_dosing_until_readings_return(cluster):
    cluster.start_ingestion()
    cluster.start_job("od_reading")
    first = None
    wait_until(lambda: cluster.tally(*OD).published > 3, timeout=60, what="od readings")
    first = cluster.retained(cluster.topic(cluster.worker_name, cluster.experiment, "od_reading", "od2"))
    target = 0.5 * float(json.loads(first)["od"]) if first else 0.01  # below the culture: it doses on each reading
    cluster.start_job("dosing_automation", "--automation-name", "turbidostat", "--target-biomass", f"{target:.6f}",
                      "--exchange-volume-ml", "0.3", "--biomass-signal", "od")
    wait_until(lambda: truth(cluster)["cumulative_media_ml"] > 0.5, timeout=120, what="the turbidostat dosed")
    pause = cluster.topic(cluster.worker_name, cluster.experiment, "dosing_automation", "safety_pause")
    os.kill(cluster.jobs["od_reading"].pid, signal.SIGKILL)  # od_reading crashes
    cluster.jobs["od_reading"].wait(10)
    del cluster.jobs["od_reading"]
    wait_until(lambda: b"od_stale" in (cluster.retained(pause) or b""), timeout=60, what="the turbidostat paused")
    media = truth(cluster)["cumulative_media_ml"]
    time.sleep(5)  # five simulated minutes without readings
    assert truth(cluster)["cumulative_media_ml"] == pytest.approx(media, abs=0.35)  # at most the dose under way
    cluster.start_job("od_reading")
    wait_until(lambda: cluster.retained(pause) in (b"", None), timeout=60, what="the turbidostat resumed")
    wait_until(lambda: truth(cluster)["cumulative_media_ml"] > media + 0.5, timeout=120, what="dosing resumed")
    stop_unit_jobs(cluster)
    assert_books_match_the_vessel(cluster)
    finish(cluster)


@pytest.mark.parametrize("fault", ["broker crash", "leader restart"])
def test_a_chemostat_through_a_broker_or_leader_outage_keeps_the_books(cluster, fault):
    cluster.start_ingestion()
    cluster.start_job("od_reading")
    cluster.start_job("dosing_automation", "--automation-name", "chemostat", "--exchange-volume-ml", "0.5",
                      "--duration", "1")
    wait_until(lambda: truth(cluster)["cumulative_media_ml"] > 1.0, timeout=120, what="the chemostat dosed")
    if fault == "leader restart":
        cluster.stop_ingestion(signal.SIGKILL)
    cluster.broker.kill()
    log = cluster.worker_root / "logs" / "pioreactor.log"
    wait_until(lambda: "Doses paused: the MQTT broker cannot be reached" in log.read_text(), timeout=60,
               what="the chemostat paused")
    time.sleep(5)  # five simulated minutes of outage
    cluster.broker.start()
    if fault == "leader restart":
        cluster.start_ingestion()
    wait_until(lambda: "Doses resumed" in log.read_text(), timeout=60, what="the chemostat resumed")
    media = truth(cluster)["cumulative_media_ml"]
    wait_until(lambda: truth(cluster)["cumulative_media_ml"] > media + 1.0, timeout=120, what="dosing went on")
    stop_unit_jobs(cluster)
    assert_books_match_the_vessel(cluster)
    finish(cluster)


def test_a_pump_action_reannounces_its_state_when_its_network_returns(tmp_path):
    try:
        c = DrillCluster(tmp_path / "link", speedup=10, link=True, worker_config=CONFIG)
        c.start()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    try:
        proc = c.start_job("remove_waste", "--duration", "150")  # 15 s of wall time at the default rate
        state = c.topic(c.worker_name, c.experiment, "remove_waste", "$state")
        c.link.cut()  # the broker sees the connection drop and publishes the last will
        wait_until(lambda: c.retained(state) == b"lost", timeout=30, what="the last will 'lost'")
        time.sleep(2)
        c.link.restore()
        wait_until(lambda: c.retained(state) == b"ready", timeout=30, what="the pump re-announced 'ready'")
        assert proc.wait(60) == 0
        wait_until(lambda: c.retained(state) == b"disconnected", timeout=30, what="the pump's clean end")
    finally:
        c.stop()
