"""growth_rate_calculating as a real process, fed OD messages published by the test (real broker)."""

import json
import math
import random
import statistics
import time

import pytest

from reactorkit.core.clock import parse_iso
from reactorkit.core.testing import stop_process

pytestmark = pytest.mark.integration

T0 = 1_800_000_000.0  # epoch s of the first synthetic reading


def iso(t):
    from reactorkit.core.clock import Clock

    return Clock().utc_iso(t)


def ods_payload(t, od, channel="2"):
    reading = {"calibrated": 0, "timestamp": iso(t), "angle": "90", "od": od, "channel": channel, "ir_led_intensity": 80.0}
    return json.dumps({"timestamp": iso(t), "ods": {channel: reading}})


# A long stream is published at most PACE readings ahead of the job's estimates. Published all at once, hundreds
# of readings and the job's three outputs for each pile up in the broker's queue for the recorder; past
# mosquitto's max_queued_messages (1000 by default) it drops the newest, and on a busy machine a test then
# counts fewer estimates than the job published.
PACE = 40


def keep_pace(recorder, unit_env, i, paced_from):
    """Before publishing reading ``i`` (index, 5 s apart from T0): every PACE // 2 readings, wait for the job's
    estimate of reading ``i - PACE`` once that reading is at least ``paced_from`` (the first that gives one)."""
    if paced_from is None or i - PACE < paced_from or (i - PACE - paced_from) % (PACE // 2):
        return
    stamp = iso(T0 + 5.0 * (i - PACE)).encode()
    recorder.wait_for(unit_env.topic("growth_rate_calculating", "growth_rate"), lambda p: stamp in p)


def publish_culture(recorder, unit_env, n, rate=0.3, od0=0.2, start=0, noise=0.01, seed=1, factor=1.0,
                    paced_from=None):
    """``n`` readings 5 s apart (indices ``start``…) of a culture growing at ``rate`` h⁻¹; returns the last one's
    epoch s. ``paced_from``: index of the first reading the job answers with an estimate (see PACE)."""
    rng = random.Random(seed)
    topic = unit_env.topic("od_reading", "ods")
    for i in range(start, start + n):
        keep_pace(recorder, unit_env, i, paced_from)
        t = T0 + 5.0 * i
        od = od0 * factor * math.exp(rate * (t - T0) / 3600) * (1 + rng.gauss(0, noise))
        recorder.publish(topic, ods_payload(t, od), qos=1)
    return T0 + 5.0 * (start + n - 1)


def start_job(spawn_job, recorder, unit_env, *args):
    since = time.monotonic()
    proc = spawn_job("growth_rate_calculating", *args)
    recorder.wait_for(unit_env.topic("growth_rate_calculating", "$state"), lambda p: p == b"ready", timeout=20,
                      since=since)
    return proc


def latest(recorder, unit_env, key):
    values = recorder.json_values(unit_env.topic("growth_rate_calculating", key))
    return values[-1] if values else None


def test_estimates_carry_the_od_timestamp_and_follow_the_culture(unit_env, mqtt_recorder, spawn_job):
    start_job(spawn_job, mqtt_recorder, unit_env)
    last = publish_culture(mqtt_recorder, unit_env, 720, paced_from=14)  # one hour at 0.3 h⁻¹
    gr_topic = unit_env.topic("growth_rate_calculating", "growth_rate")
    final = json.loads(mqtt_recorder.wait_for(gr_topic, lambda p: bool(p) and json.loads(p)["timestamp"] == iso(last)))
    assert final["growth_rate"] == pytest.approx(0.3, rel=0.1)
    estimates = mqtt_recorder.json_values(gr_topic)
    assert len(estimates) == 720 - 5 - 10 + 1  # 5 skipped, 10 for the baseline, then one per reading
    assert {parse_iso(e["timestamp"]) for e in estimates} <= {T0 + 5.0 * i for i in range(720)}
    od = mqtt_recorder.wait_for(unit_env.topic("growth_rate_calculating", "od_filtered"),
                                lambda p: bool(p) and json.loads(p)["timestamp"] == iso(last))
    assert json.loads(od)["od_filtered"] == pytest.approx(math.exp(0.3 * (last - T0 - 50) / 3600), rel=0.03)
    kf = latest(mqtt_recorder, unit_env, "kalman_filter_outputs")
    assert len(kf["state"]) == 3 and len(kf["covariance_matrix"]) == 3


def test_the_baseline_is_cached_per_experiment_and_reused_after_a_restart(unit_env, mqtt_recorder, spawn_job):
    from reactorkit.core.calibration_store import PersistentCache

    proc = start_job(spawn_job, mqtt_recorder, unit_env)
    publish_culture(mqtt_recorder, unit_env, 20, rate=0.0, od0=0.4, noise=0.002)
    mqtt_recorder.wait_for(unit_env.topic("growth_rate_calculating", "growth_rate"), lambda p: bool(p))
    cache = PersistentCache("od_normalization_mean", path=unit_env.root / "storage" / "local_persistent_pioreactor_metadata.sqlite")
    assert cache.get(unit_env.experiment)["2"] == pytest.approx(0.4, rel=0.01)
    assert stop_process(proc) == 0
    mqtt_recorder.wait_for(unit_env.topic("growth_rate_calculating", "$state"), lambda p: p == b"disconnected")

    start_job(spawn_job, mqtt_recorder, unit_env)
    before = len(mqtt_recorder.values(unit_env.topic("growth_rate_calculating", "growth_rate")))
    last = publish_culture(mqtt_recorder, unit_env, 6, rate=0.0, od0=0.4, start=100, noise=0.002, factor=1.1)
    # no warm-up this time: the 6th message (after the 5 skipped) already gives an estimate, against the cached baseline
    od = json.loads(mqtt_recorder.wait_for(unit_env.topic("growth_rate_calculating", "od_filtered"),
                                           lambda p: bool(p) and json.loads(p)["timestamp"] == iso(last)))
    assert od["od_filtered"] == pytest.approx(1.1, rel=0.02)
    assert len(mqtt_recorder.values(unit_env.topic("growth_rate_calculating", "growth_rate"))) >= before + 1


def test_ignore_cache_recomputes_the_baseline(unit_env, mqtt_recorder, spawn_job):
    from reactorkit.core.calibration_store import PersistentCache

    cache_path = unit_env.root / "storage" / "local_persistent_pioreactor_metadata.sqlite"
    PersistentCache("od_normalization_mean", path=cache_path).set(unit_env.experiment, {"2": 0.1})
    PersistentCache("od_normalization_variance", path=cache_path).set(unit_env.experiment, {"2": 1e-4})
    start_job(spawn_job, mqtt_recorder, unit_env, "--ignore-cache")
    last = publish_culture(mqtt_recorder, unit_env, 16, rate=0.0, od0=0.4, noise=0.002)
    od = json.loads(mqtt_recorder.wait_for(unit_env.topic("growth_rate_calculating", "od_filtered"),
                                           lambda p: bool(p) and json.loads(p)["timestamp"] == iso(last)))
    assert od["od_filtered"] == pytest.approx(1.0, rel=0.02)  # not 4.0 against the stale cached baseline


def test_malformed_messages_are_logged_and_the_job_keeps_going(unit_env, mqtt_recorder, spawn_job):
    proc = start_job(spawn_job, mqtt_recorder, unit_env)
    topic = unit_env.topic("od_reading", "ods")
    mqtt_recorder.publish(topic, b"not json")
    mqtt_recorder.publish(topic, json.dumps({"timestamp": iso(T0), "ods": {"2": {"angle": "90"}}}))
    mqtt_recorder.publish(unit_env.topic("dosing_events"), json.dumps({"volume_change": "lots", "event": "add_media"}))
    mqtt_recorder.wait_for(unit_env.topic("logs", "app", "warning"), lambda p: b"malformed" in p and b"dosing_events" in p)
    last = publish_culture(mqtt_recorder, unit_env, 16)
    mqtt_recorder.wait_for(unit_env.topic("growth_rate_calculating", "growth_rate"),
                           lambda p: bool(p) and json.loads(p)["timestamp"] == iso(last))
    assert proc.poll() is None


def test_a_dose_during_the_warm_up_restarts_it(unit_env, mqtt_recorder, spawn_job):
    start_job(spawn_job, mqtt_recorder, unit_env)
    publish_culture(mqtt_recorder, unit_env, 12, rate=0.0)  # 5 skipped + 7 of 10 baseline readings
    # QoS 2 as the pumps publish it: it reaches the job one round trip later than a QoS 1 reading, so on a busy
    # machine later readings may overtake it; the warm-up then keeps those after the dose's timestamp
    mqtt_recorder.publish(unit_env.topic("dosing_events"), json.dumps(
        {"volume_change": 1.0, "event": "add_media", "source_of_event": "test", "timestamp": iso(T0 + 58)}), qos=2)
    publish_culture(mqtt_recorder, unit_env, 2, rate=0.0, start=12)  # may overtake the dose: 9 of 10 baseline readings
    # before the warm-up could end without it, the job has handled the dose (its debug line in the unit's log file): on a
    # busy machine three readings could overtake it, end the warm-up and publish an estimate before the dose arrived
    log = unit_env.root / "logs" / "pioreactor.log"
    deadline = time.monotonic() + 60
    while "dosing event add_media" not in (log.read_text() if log.exists() else ""):
        assert time.monotonic() < deadline, "the job did not log the dosing event"
        time.sleep(0.05)
    last = publish_culture(mqtt_recorder, unit_env, 7, rate=0.0, start=14)  # 16 baseline readings in all: not enough
    mqtt_recorder.publish(unit_env.topic("od_reading", "ods"), ods_payload(last + 5, 0.2))
    mqtt_recorder.wait_for(unit_env.topic("growth_rate_calculating", "growth_rate"),
                           lambda p: bool(p) and json.loads(p)["timestamp"] == iso(last + 5))
    first = mqtt_recorder.json_values(unit_env.topic("growth_rate_calculating", "growth_rate"))[0]
    assert first["timestamp"] == iso(last + 5)  # the 10th reading after the dose, not the 10th after the skip


def test_retained_readings_are_ignored(unit_env, mqtt_recorder, spawn_job):
    topic = unit_env.topic("od_reading", "ods")
    for i in range(20):
        mqtt_recorder.publish(topic, ods_payload(T0 + 5 * i, 0.2), retain=True)
    try:
        start_job(spawn_job, mqtt_recorder, unit_env)
        last = publish_culture(mqtt_recorder, unit_env, 15, start=100)
        mqtt_recorder.wait_for(unit_env.topic("growth_rate_calculating", "growth_rate"),
                               lambda p: bool(p) and json.loads(p)["timestamp"] == iso(last))
        first = mqtt_recorder.json_values(unit_env.topic("growth_rate_calculating", "growth_rate"))[0]
        assert first["timestamp"] == iso(last)  # only the 15 live messages counted
    finally:
        mqtt_recorder.publish(topic, b"", retain=True)


def test_an_xr_model_with_an_active_estimator_follows_the_fused_od(unit_env, mqtt_recorder, spawn_job, monkeypatch):
    from reactorkit.core.calibration_store import save_estimator
    from reactorkit.builtin_plugins.od_reading.fusion import fit_estimator

    for key, value in unit_env.env().items():
        monkeypatch.setenv(key, value)
    observations = [(od, angle, gain * od + 0.01) for od in (0.1, 0.2, 0.4, 0.8, 1.6)
                    for angle, gain in (("45", 0.3), ("90", 0.5)) for _ in range(2)]
    save_estimator("od_fused", fit_estimator(observations, estimator_name="e1", unit=unit_env.unit,
                                             created_at="2026-01-01T00:00:00Z", ir_led_intensity=80), set_active=True)
    unit_env.extra["MODEL_NAME"] = "pioreactor_20ml_XR"
    start_job(spawn_job, mqtt_recorder, unit_env)
    topic = unit_env.topic("od_reading", "od_fused")
    for i in range(16):
        mqtt_recorder.publish(topic, json.dumps({"od_fused": 0.3 * math.exp(0.2 * 5 * i / 3600), "timestamp": iso(T0 + 5 * i)}))
    mqtt_recorder.publish(unit_env.topic("od_reading", "ods"), ods_payload(T0 + 80, 0.9))  # not followed on this model
    od = json.loads(mqtt_recorder.wait_for(unit_env.topic("growth_rate_calculating", "od_filtered"),
                                           lambda p: bool(p) and json.loads(p)["timestamp"] == iso(T0 + 75)))
    assert od["od_filtered"] == pytest.approx(1.0, rel=0.02)
    time.sleep(0.5)
    stamps = [v["timestamp"] for v in mqtt_recorder.json_values(unit_env.topic("growth_rate_calculating", "od_filtered"))]
    assert iso(T0 + 80) not in stamps



class OrderedPublisher:
    """One MQTT 5 client publishing everything at QoS 2, so the job receives it in order; a message may carry
    the numbering a unit's outbox gives it (``rk-stream``, ``rk-seq``), as a copy the outbox sends again does."""

    def __init__(self):
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.connect("127.0.0.1", 1883)
        self.client.loop_start()

    def publish(self, topic, payload, seq=None):
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        from reactorkit.core.outbox import SEQ_PROPERTY, STREAM_PROPERTY

        props = None
        if seq is not None:
            props = Properties(PacketTypes.PUBLISH)
            props.UserProperty = [(STREAM_PROPERTY, "test-stream"), (SEQ_PROPERTY, str(seq))]
        self.client.publish(topic, payload, qos=2, properties=props).wait_for_publish(5)

    def culture(self, unit_env, n, start, seed, factor=1.0, od0=0.2, noise=0.01, recorder=None, paced_from=None):
        """``n`` readings 5 s apart of a culture that does not grow; returns the last one's epoch s.
        With a ``recorder``, kept at most PACE readings ahead of the job's estimates from ``paced_from``."""
        rng = random.Random(seed)
        for i in range(start, start + n):
            if recorder is not None:
                keep_pace(recorder, unit_env, i, paced_from)
            self.publish(unit_env.topic("od_reading", "ods"), ods_payload(T0 + 5.0 * i, od0 * factor * (1 + rng.gauss(0, noise))))
        return T0 + 5.0 * (start + n - 1)

    def close(self):
        self.client.loop_stop()
        self.client.disconnect()


@pytest.mark.parametrize("numbered", [True, False], ids=["outbox-numbered", "same-payload"])
def test_a_copy_of_a_dosing_event_does_not_dilute_the_culture_twice(unit_env, mqtt_recorder, spawn_job, numbered):
    # a unit's outbox sends a dosing event again when the leader has not stored it within 30 s of wall time (on a
    # busy machine: hours of simulated time later); a dose too small to pass for a step in the signal that the
    # filter applied twice would turn into growth: about +0.1 h⁻¹ here for a culture that does not grow
    publisher = OrderedPublisher()
    try:
        start_job(spawn_job, mqtt_recorder, unit_env)
        gr_topic = unit_env.topic("growth_rate_calculating", "growth_rate")
        paced = {"recorder": mqtt_recorder, "paced_from": 14}  # 5 skipped, 10 for the baseline
        dose_ml, volume_ml = 0.3, 14.0
        last = publisher.culture(unit_env, 120, 0, seed=1, **paced)
        event = json.dumps({"volume_change": dose_ml, "event": "add_media", "source_of_event": "test",
                            "timestamp": iso(last + 2.5)})
        diluted = volume_ml / (volume_ml + dose_ml)
        publisher.publish(unit_env.topic("dosing_events"), event, seq=7 if numbered else None)
        last = publisher.culture(unit_env, 60, 120, seed=2, factor=diluted, **paced)
        publisher.publish(unit_env.topic("dosing_events"), event, seq=7 if numbered else None)  # the copy
        last = publisher.culture(unit_env, 120, 180, seed=3, factor=diluted, **paced)
        mqtt_recorder.wait_for(gr_topic, lambda p: bool(p) and json.loads(p)["timestamp"] == iso(last))
        after_copy = [e["growth_rate"] for e in mqtt_recorder.json_values(gr_topic)
                      if parse_iso(e["timestamp"]) > T0 + 5.0 * 179]
        assert len(after_copy) == 120
        assert abs(statistics.fmean(after_copy)) < 0.03, statistics.fmean(after_copy)
    finally:
        publisher.close()


def test_a_warm_up_at_zero_is_said_once_and_ends_when_the_readings_median_is_positive(unit_env, mqtt_recorder, spawn_job):
    """Blank-subtracted readings below 0 for 40 readings: one warning that the warm-up waits (before: an "ignored
    malformed message" warning for every reading), then a culture's readings give estimates."""
    proc = start_job(spawn_job, mqtt_recorder, unit_env)
    topic = unit_env.topic("od_reading", "ods")
    warnings = unit_env.topic("logs", "app", "warning")
    for i in range(40):
        mqtt_recorder.publish(topic, ods_payload(T0 + 5.0 * i, -0.001 if i % 3 else 0.001), qos=1)
    last = publish_culture(mqtt_recorder, unit_env, 16, start=40)
    mqtt_recorder.wait_for(unit_env.topic("growth_rate_calculating", "growth_rate"),
                           lambda p: bool(p) and json.loads(p)["timestamp"] == iso(last))
    said = [p for p in mqtt_recorder.values(warnings) if b"positive median" in p]
    assert len(said) == 1 and b"warm-up waits" in said[0]
    assert not [p for p in mqtt_recorder.values(warnings) if b"malformed" in p]
    assert proc.poll() is None
