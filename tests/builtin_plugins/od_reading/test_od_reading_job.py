"""The ODReader job in this process with a fake photodiode board, against the real broker.

The job is built in a worker thread (so it does not take over pytest's signal
handlers) with a 1-hour interval: its timer takes one reading at start, the
tests take the others with ``record_reading()``.
"""

import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from reactorkit.core.hardware.base import Hardware

pytestmark = pytest.mark.integration


class FakeBoard(Hardware):
    """Photodiodes that read ``lit[channel]`` V with the IR LED (A) on and ``dark[channel]`` V with it off."""

    def __init__(self, lit=None, dark=None):
        self.leds = {"A": 0.0, "B": 0.0, "C": 0.0, "D": 0.0}
        self.lit = dict(lit or {1: 0.25, 2: 0.5})
        self.dark = dict(dark or {})
        self.leds_at_read = []

    def set_led(self, channel, intensity):
        self.leds[channel] = float(intensity)

    def get_leds(self):
        return dict(self.leds)

    def read_photodiodes(self, channels=(1, 2, 3, 4)):
        self.leds_at_read.append(dict(self.leds))
        source = self.lit if self.leds["A"] > 0 else self.dark
        return {c: source.get(c, 0.0) for c in channels}

    def set_pwm(self, channel, duty_cycle):
        pass


@pytest.fixture
def start_reader(unit_env, monkeypatch):
    """``start_reader(board, config_text="", **kwargs)`` → a running ODReader (cleaned up after the test)."""
    for key, value in unit_env.env().items():
        monkeypatch.setenv(key, value)
    jobs = []

    def start(board, config_text="", **kwargs):
        from reactorkit.builtin_plugins.od_reading.job import ODReader
        from reactorkit.core.clock import Clock
        from reactorkit.core.config import load_config

        (unit_env.root / "config.ini").write_text(config_text)
        config = load_config()
        with ThreadPoolExecutor(1) as pool:
            job = pool.submit(lambda: ODReader(unit=unit_env.unit, experiment=unit_env.experiment, hardware=board,
                                               config=config, clock=Clock(1.0), interval=kwargs.pop("interval", 3600),
                                               **kwargs)).result()
        jobs.append(job)
        deadline = time.monotonic() + 5
        while job.first_od_obs_time is None and time.monotonic() < deadline:  # the timer's first reading
            time.sleep(0.01)
        return job

    yield start
    for job in jobs:
        job.clean_up()


def at(timestamp):
    """Predicate: a JSON payload with this timestamp."""
    return lambda p: bool(p) and json.loads(p).get("timestamp") == timestamp


FAST = "[od_reading.config]\nduration_between_led_off_and_od_reading = 0.01\npd_reference_ema = 0\n"


def test_dark_offset_is_removed_and_classic_divides_by_ref(start_reader):
    board = FakeBoard(lit={1: 0.25, 2: 0.51}, dark={1: 0.0, 2: 0.01})
    job = start_reader(board, FAST)
    payload = job.record_reading()
    assert payload["ods"]["2"]["od"] == pytest.approx((0.51 - 0.01) / 0.25)
    assert set(payload["ods"]) == {"2"}  # REF is not reported


def test_unity_normalisation_compensates_a_dimming_ir_led(start_reader):
    board = FakeBoard(lit={1: 0.25, 2: 0.5})
    job = start_reader(board, FAST + "ref_normalization = unity\n")
    assert job.record_reading()["ods"]["2"]["od"] == pytest.approx(0.5)
    board.lit = {1: 0.2, 2: 0.4}
    assert job.record_reading()["ods"]["2"]["od"] == pytest.approx(0.5)


def test_the_first_reference_of_the_experiment_survives_a_restart(start_reader):
    first = start_reader(FakeBoard(lit={1: 0.25, 2: 0.5}), FAST + "ref_normalization = unity\n")
    first.clean_up()
    second = start_reader(FakeBoard(lit={1: 0.2, 2: 0.4}), FAST + "ref_normalization = unity\n")
    assert second.record_reading()["ods"]["2"]["od"] == pytest.approx(0.5)


def test_the_experiments_blank_is_subtracted(start_reader, unit_env):
    from reactorkit.core.calibration_store import PersistentCache

    PersistentCache("od_blank").set(unit_env.experiment, {"2": 0.5})
    job = start_reader(FakeBoard(lit={1: 0.25, 2: 0.5}), FAST)
    assert job.record_reading()["ods"]["2"]["od"] == pytest.approx(2.0 - 0.5)


def test_ir_led_is_on_only_while_reading_and_other_leds_are_restored(start_reader):
    board = FakeBoard()
    board.leds["B"] = 30.0
    job = start_reader(board, FAST + "\n[leds]\nA = IR\nB = white\n", ir_led_intensity=70)
    job.record_reading()
    lit_reads = [leds for leds in board.leds_at_read if leds["A"] > 0]
    assert lit_reads and all(leds == {"A": 70.0, "B": 0.0, "C": 0.0, "D": 0.0} for leds in lit_reads)
    assert board.leds == {"A": 0.0, "B": 30.0, "C": 0.0, "D": 0.0}
    job.clean_up()
    assert board.leds["A"] == 0.0


def test_readings_are_published_in_the_contract_shape(start_reader, unit_env, mqtt_recorder):
    job = start_reader(FakeBoard(), FAST + "\n[od_config.photodiode_channel]\n1 = REF\n2 = 90\n3 = 135\n",
                       ir_led_intensity=75)
    payload = job.record_reading()
    ods = json.loads(mqtt_recorder.wait_for(unit_env.topic("od_reading", "ods"), at(payload["timestamp"])))
    assert ods == payload and set(ods["ods"]) == {"2", "3"}
    od3 = json.loads(mqtt_recorder.wait_for(unit_env.topic("od_reading", "od3"), at(payload["timestamp"])))
    assert od3 == {"calibrated": 0, "timestamp": ods["timestamp"], "angle": "135", "od": 0.0, "channel": "3",
                   "ir_led_intensity": 75.0}
    assert float(mqtt_recorder.wait_for(unit_env.topic("od_reading", "interval"))) == 3600.0
    assert float(mqtt_recorder.wait_for(unit_env.topic("od_reading", "first_od_obs_time"), lambda p: bool(p))) > 0
    relative = json.loads(mqtt_recorder.wait_for(unit_env.topic("od_reading", "relative_intensity_of_ir_led")))
    assert relative["relative_intensity_of_ir_led"] == pytest.approx(1.0)


def test_a_calibrated_channel_publishes_od600_raw_and_calibrated(start_reader, unit_env, mqtt_recorder):
    from reactorkit.core.calibration_store import save_calibration

    save_calibration("od90", {
        "calibration_type": "od600", "calibration_name": "line", "curve_data_": {"type": "poly", "coefficients": [0.5, 0.0]},
        "x": "OD600", "y": "Voltage", "recorded_data": {"x": [0.0, 1.0, 2.0], "y": [0.0, 0.5, 1.0]},
        "ir_led_intensity": 80, "angle": "90", "pd_channel": "2",
    }, set_active=True)
    board = FakeBoard(lit={1: 0.25, 2: 0.4})
    job = start_reader(board, FAST)
    payload = job.record_reading()
    assert payload["ods"]["2"]["od"] == pytest.approx(0.8)
    assert payload["ods"]["2"]["calibrated"] == 1 and payload["ods"]["2"]["calibration_name"] == "line"
    raw = json.loads(mqtt_recorder.wait_for(unit_env.topic("od_reading", "raw_od2"), at(payload["timestamp"])))
    assert raw["od"] == pytest.approx(0.4) and "calibrated" not in raw
    calibrated = json.loads(mqtt_recorder.wait_for(unit_env.topic("od_reading", "calibrated_od2"),
                                                   at(payload["timestamp"])))
    assert calibrated == payload["ods"]["2"]
    # beyond the calibrated range: clamped, and warned about once, not on every reading
    board.lit = {1: 0.25, 2: 1.5}
    assert job.record_reading()["ods"]["2"]["od"] == pytest.approx(2.0)
    assert job.record_reading()["ods"]["2"]["od"] == pytest.approx(2.0)
    mqtt_recorder.wait_for(unit_env.topic("logs", "app", "warning"), lambda p: b"outside calibration" in p)
    time.sleep(0.3)
    warnings = [p for p in mqtt_recorder.values(unit_env.topic("logs", "app", "warning")) if b"outside calibration" in p]
    assert len(warnings) == 1


def test_a_calibration_made_at_another_ir_intensity_is_not_used(start_reader, unit_env, mqtt_recorder):
    from reactorkit.core.calibration_store import save_calibration

    save_calibration("od90", {
        "calibration_type": "od600", "calibration_name": "at50", "curve_data_": {"type": "poly", "coefficients": [0.5, 0.0]},
        "x": "OD600", "y": "Voltage", "recorded_data": {"x": [0.0, 2.0], "y": [0.0, 1.0]}, "ir_led_intensity": 50,
    }, set_active=True)
    job = start_reader(FakeBoard(), FAST)
    assert job.record_reading()["ods"]["2"]["calibrated"] == 0
    mqtt_recorder.wait_for(unit_env.topic("logs", "app", "warning"), lambda p: b"at50" in p)


def test_auto_ir_intensity_follows_the_calibration(start_reader):
    from reactorkit.core.calibration_store import save_calibration

    save_calibration("od90", {
        "calibration_type": "od600", "calibration_name": "at60", "curve_data_": {"type": "poly", "coefficients": [0.5, 0.0]},
        "x": "OD600", "y": "Voltage", "recorded_data": {"x": [0.0, 2.0], "y": [0.0, 1.0]}, "ir_led_intensity": 60,
    }, set_active=True)
    job = start_reader(FakeBoard(), FAST + "ir_led_intensity = auto\n")
    assert job.ir_led_intensity == 60.0
    assert job.record_reading()["ods"]["2"]["calibrated"] == 1


def test_a_noisy_reference_pauses_the_dosing_automation(start_reader, unit_env, mqtt_recorder):
    board = FakeBoard(lit={1: 0.25, 2: 0.5})
    job = start_reader(board, FAST, interval=5)  # the noise threshold scales with √(interval / 5 s)
    for i in range(25):
        board.lit[1] = 0.25 * (1.1 if i % 2 else 0.9)
        job.record_reading()
    mqtt_recorder.wait_for(unit_env.topic("dosing_automation", "$state", "set"), lambda p: p == b"sleeping")
    mqtt_recorder.wait_for(unit_env.topic("logs", "app", "warning"), lambda p: b"REF photodiode is noisy" in p)


def test_a_quiet_reference_does_not(start_reader, unit_env, mqtt_recorder):
    job = start_reader(FakeBoard(), FAST, interval=5)
    for _ in range(25):
        job.record_reading()
    time.sleep(0.3)
    assert mqtt_recorder.values(unit_env.topic("dosing_automation", "$state", "set")) == []


def test_fused_od_with_an_active_estimator(start_reader, unit_env, mqtt_recorder):
    import math

    from reactorkit.core.calibration_store import save_estimator
    from reactorkit.builtin_plugins.od_reading.fusion import fit_estimator

    def response(od, angle):  # a made-up two-angle response, volts at 80 % IR
        return {"45": 0.02 + 0.3 * od, "90": 0.01 + 0.5 * od / (1 + 0.2 * od)}[angle]

    standards = [0.05, 0.1, 0.2, 0.4, 0.8, 1.6]
    observations = [(od, a, response(od, a) * (1 + 0.01 * k)) for od in standards for a in ("45", "90") for k in (-1, 0, 1)]
    record = fit_estimator(observations, estimator_name="fused1", unit=unit_env.unit, created_at="2026-01-01T00:00:00Z",
                           ir_led_intensity=80)
    save_estimator("od_fused", record, set_active=True)
    board = FakeBoard(lit={1: 0.25, 2: response(0.3, "45"), 3: response(0.3, "90")})
    job = start_reader(board, FAST + "\n[od_config.photodiode_channel]\n1 = REF\n2 = 45\n3 = 90\n")
    payload = job.record_reading()
    fused = json.loads(mqtt_recorder.wait_for(unit_env.topic("od_reading", "od_fused"), at(payload["timestamp"])))
    assert fused["od_fused"] == pytest.approx(0.3, rel=0.05)
    assert math.isfinite(fused["od_fused"]) and fused["timestamp"].endswith("Z")


def test_interval_can_be_set_over_mqtt(start_reader, unit_env, mqtt_recorder):
    job = start_reader(FakeBoard(), FAST)
    mqtt_recorder.publish(unit_env.topic("od_reading", "interval", "set"), "10")
    mqtt_recorder.wait_for(unit_env.topic("od_reading", "interval"), lambda p: p == b"10.0")
    mqtt_recorder.publish(unit_env.topic("od_reading", "interval", "set"), "0")  # refused, job keeps running
    mqtt_recorder.wait_for(unit_env.topic("logs", "app", "error"), lambda p: b"interval" in p)
    assert job.interval == 10.0 and job.state == "ready"


def test_bad_configuration_is_refused_with_the_key_named(start_reader):
    from reactorkit.builtin_plugins.od_reading.processing import ConfigurationError

    with pytest.raises(ConfigurationError, match="samples_per_second"):
        start_reader(FakeBoard(), "[od_reading.config]\nsamples_per_second = often\n", interval=None)


def test_a_refused_start_leaves_no_registry_row(start_reader, unit_env):
    import sqlite3

    from reactorkit.builtin_plugins.od_reading.processing import ConfigurationError

    with pytest.raises(ConfigurationError, match="IR"):
        start_reader(FakeBoard(), "[leds]\nA = white\n")
    path = unit_env.root / "storage" / "local_intermittent_pioreactor_metadata.sqlite"
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM pio_job_metadata WHERE job_name = 'od_reading'").fetchone()[0] == 0
