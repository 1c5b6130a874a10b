"""The replay hardware backend: recorded OD played back through read_photodiodes.

Unit tests use small CSV files written here; one integration test runs the real
od_reading and growth_rate_calculating processes on the real recording.
"""

import csv
import gzip
import json
import math
import os
from datetime import datetime, timedelta, timezone

import pytest

from reactorkit.core.testing import stop_process
from repo_data import real_data_dir

from reactorkit.core.clock import Clock, parse_iso
from reactorkit.core.config import load_config
from reactorkit.core.hardware import HardwareError, backend_name
from reactorkit.core.hardware.replay import Recording, ReplayHardware

DATA_DIR = real_data_dir()
RECORDING = DATA_DIR / "pioreactor_1unit_5s_od_readings.csv.gz"
START = datetime(2025, 2, 26, 10, 0, 0, tzinfo=timezone.utc)


class FrozenClock(Clock):
    """A clock the test moves by hand (simulated seconds since ``origin``)."""

    def __init__(self) -> None:
        super().__init__(1.0, origin=1_000_000.0)
        self.t = self.origin

    def now(self) -> float:
        return self.t


def write_csv(path, values, interval_s=5.0, angle="90", compress=False):
    opener = gzip.open if compress else open
    with opener(path, "wt", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["timestamp", "od_reading", "angle", "channel"])
        for i, v in enumerate(values):
            ts = (START + timedelta(seconds=i * interval_s)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            writer.writerow([ts, v, angle, 2])
    return path


@pytest.fixture
def config(tmp_path, monkeypatch):
    monkeypatch.setenv("DOT_PIOREACTOR", str(tmp_path / "dot"))
    monkeypatch.delenv("REPLAY_FILE", raising=False)
    return load_config()


def hardware(config, path, clock, **section):
    config["hardware.replay"] = {"file": str(path), **{k: str(v) for k, v in section.items()}}
    return ReplayHardware(config, "u1", clock=clock)


def test_recorded_value_plays_on_the_channel_of_its_angle_with_the_ir_led_on(config, tmp_path):
    clock = FrozenClock()
    hw = hardware(config, write_csv(tmp_path / "r.csv", [0.1, 0.2, 0.3, 0.4]), clock)
    hw.set_led("A", 80.0)
    assert hw.read_photodiodes((1, 2)) == {1: 1.0, 2: 0.1}  # 1 = REF, 2 = 90°
    clock.t += 10.0
    assert hw.read_photodiodes((2,)) == {2: 0.3}
    clock.t += 4.9
    assert hw.read_photodiodes((2,)) == {2: 0.3}  # held until the next row
    clock.t += 0.1
    assert hw.read_photodiodes((2,)) == {2: 0.4}


def test_photodiodes_are_dark_with_the_ir_led_off_and_scale_with_intensity(config, tmp_path):
    hw = hardware(config, write_csv(tmp_path / "r.csv", [0.2, 0.2]), FrozenClock())
    assert hw.read_photodiodes((1, 2, 3)) == {1: 0.0, 2: 0.0, 3: 0.0}
    hw.set_led("A", 40.0)
    readings = hw.read_photodiodes((1, 2, 3))
    assert readings[2] / readings[1] == pytest.approx(0.2)
    assert readings == {1: pytest.approx(0.5), 2: pytest.approx(0.1), 3: 0.0}


def test_gzip_files_offset_and_end_of_recording(config, tmp_path):
    clock = FrozenClock()
    path = write_csv(tmp_path / "r.csv.gz", [0.1, 0.2, 0.3], compress=True)
    hw = hardware(config, path, clock, start_offset_s=5)
    hw.set_led("A", 80.0)
    assert hw.read_photodiodes((2,)) == {2: 0.2}
    clock.t += 3600
    assert hw.read_photodiodes((2,)) == {2: 0.3}  # holds the last value


def test_loop_starts_the_recording_again(config, tmp_path):
    clock = FrozenClock()
    hw = hardware(config, write_csv(tmp_path / "r.csv", [0.1, 0.2, 0.3]), clock, loop=1)
    hw.set_led("A", 80.0)
    clock.t += 10.0 + 5.0  # duration 10 s: 15 s wraps to 5 s
    assert hw.read_photodiodes((2,)) == {2: 0.2}


def test_replay_file_from_the_environment(config, tmp_path, monkeypatch):
    path = write_csv(tmp_path / "env.csv", [0.7])
    monkeypatch.setenv("REPLAY_FILE", str(path))
    hw = ReplayHardware(config, "u1", clock=FrozenClock())
    hw.set_led("A", 80.0)
    assert hw.read_photodiodes((2,)) == {2: 0.7}
    assert hw.ground_truth()["od_signal"] == {"90": 0.7}


def test_several_angles_play_side_by_side(config, tmp_path):
    path = tmp_path / "multi.csv"
    path.write_text(
        "timestamp,od_reading,angle,channel\n"
        "2025-02-26T10:00:00Z,0.1,90,2\n2025-02-26T10:00:00Z,0.05,135,3\n"
        "2025-02-26T10:00:05Z,0.2,90,2\n2025-02-26T10:00:05Z,0.06,135,3\n"
    )
    config["od_config.photodiode_channel"] = {"1": "REF", "2": "90", "3": "135"}
    clock = FrozenClock()
    hw = hardware(config, path, clock)
    hw.set_led("A", 80.0)
    clock.t += 5
    assert hw.read_photodiodes((2, 3)) == {2: 0.2, 3: 0.06}


def test_other_actuators_drive_the_simulated_vessel(config, tmp_path):
    hw = hardware(config, write_csv(tmp_path / "r.csv", [0.1]), FrozenClock())
    hw.set_pwm(1, 40.0)
    assert hw.get_pwm(1) == 40.0
    assert isinstance(hw.read_temperature(), float)


@pytest.mark.parametrize(
    "content,match",
    [
        (None, "does not exist"),
        ("a,b\n1,2\n", "timestamp and od_reading"),
        ("timestamp,od_reading\nyesterday,0.1\n", "line 2"),
        ("timestamp,od_reading\n", "no rows"),
    ],
)
def test_unusable_files_are_reported(config, tmp_path, content, match):
    path = tmp_path / "bad.csv"
    if content is not None:
        path.write_text(content)
    with pytest.raises(HardwareError, match=match):
        hardware(config, path, FrozenClock())


def test_a_recording_is_required(config):
    with pytest.raises(HardwareError, match="REPLAY_FILE"):
        ReplayHardware(config, "u1", clock=FrozenClock())


def test_hardware_env_selects_replay(config, monkeypatch):
    monkeypatch.setenv("HARDWARE", "replay")
    assert backend_name(config) == "replay"


def test_the_real_recording_loads_with_its_documented_span():
    recording = Recording(RECORDING)
    assert list(recording.times) == ["90"]
    assert len(recording.times["90"]) == 10944
    assert recording.duration_s / 3600 == pytest.approx(15.20, abs=0.01)


# ------------------------------------------------------------------ integration

@pytest.mark.integration
def test_real_jobs_estimate_the_recorded_growth_rate(unit_env, mqtt_recorder, spawn_job):
    """od_reading + growth_rate_calculating on ~1.8 h of the recording from its 6th minute, at 150×.

    * od_reading publishes the recorded values (REF-normalised replay);
    * the job's estimates are exactly those of the pure estimator fed the
      readings it received (the processes add nothing and lose nothing);
    * the mean estimate over 1.0–1.75 h after the first reading is of the order of a log-linear fit of
      the readings over that span (the README's fit of 1–2 h is 0.090 h⁻¹).

    What the estimate there is depends on the reading stream, and two things of the machine leaked into it.
    The readings' density: at 300× a 5-s reading had 17 ms of wall time, a busy machine dropped most of them,
    and the estimator, with fewer readings, came down from the recording's burst of growth (0.25–1 h) later
    (the pure estimator on the recording from 0.05–0.15 h with 90 % of the readings dropped: up to 1.29× the
    fit; a loaded run read 0.120 against 0.093); at 150× a reading has 33 ms. And where in the recording the
    first reading falls: the replay runs from the clock's origin (the fixture's start), so the jobs' start-up
    (wall seconds × the speed-up) moved it; the window follows the first reading, but the burst does not
    (with every reading: 1.19× the fit from 0 h, 1.01× from 0.1 h, 0.95× from 0.15 h). Starting 6 min into
    the recording keeps the first reading at 0.1–0.2 h (start-ups of up to 2.4 s), where the estimate is
    0.90–1.01× the fit with every reading and 0.93–1.10× with half of them.
    """
    from reactorkit.builtin_plugins.growth_rate.estimator import GrowthRateCalculator

    unit_env.speedup = 150
    unit_env.extra.update(HARDWARE="replay", REPLAY_FILE=str(RECORDING))
    unit_env.write_config("[hardware.replay]\nstart_offset_s = 360\n")
    gr_topic = unit_env.topic("growth_rate_calculating", "growth_rate")
    ods_topic = unit_env.topic("od_reading", "ods")
    spawn_job("growth_rate_calculating")
    mqtt_recorder.wait_for(unit_env.topic("growth_rate_calculating", "$state"), lambda p: p == b"ready", timeout=20)
    od_reading = spawn_job("od_reading")
    first_t = parse_iso(json.loads(mqtt_recorder.wait_for(ods_topic, lambda p: bool(p), timeout=20))["timestamp"])

    def past(hours):
        return lambda p: bool(p) and parse_iso(json.loads(p)["timestamp"]) - first_t >= hours * 3600

    mqtt_recorder.wait_for(gr_topic, past(1.75), timeout=90)
    # stop the readings, so that the readings and the estimates compared below are of the same span
    # (both jobs run on: ~30 readings a wall second)
    assert stop_process(od_reading) == 0
    mqtt_recorder.wait_for(unit_env.topic("od_reading", "$state"), lambda p: p == b"disconnected", timeout=20)
    readings = [(parse_iso(p["timestamp"]), p["ods"]["2"]["od"]) for p in mqtt_recorder.json_values(ods_topic)]
    last_t = readings[-1][0]
    mqtt_recorder.wait_for(gr_topic, lambda p: bool(p) and parse_iso(json.loads(p)["timestamp"]) >= last_t,
                           timeout=20)  # the estimate of the last reading
    recorded = set(Recording(RECORDING).values["90"])
    assert sum(od in recorded for _, od in readings) >= 0.95 * len(readings)

    published = {parse_iso(g["timestamp"]): g["growth_rate"] for g in mqtt_recorder.json_values(gr_topic)}
    calc = GrowthRateCalculator()
    replayed = {}
    for t, od in readings:
        estimate = calc.on_od(t, {"2": od})
        if estimate is not None:
            replayed[t] = estimate.growth_rate
    common = set(published) & set(replayed)
    assert len(common) >= 0.99 * len(published) and len(common) > 500
    assert max(abs(published[t] - replayed[t]) for t in common) < 1e-9

    window = [(t, od) for t, od in readings if 1.0 * 3600 <= t - first_t < 1.75 * 3600]
    n = len(window)
    mean_t = sum(t for t, _ in window) / n
    mean_y = sum(math.log(od) for _, od in window) / n
    slope = sum((t - mean_t) * (math.log(od) - mean_y) for t, od in window) / sum((t - mean_t) ** 2 for t, _ in window)
    fitted = slope * 3600
    rates = [g for t, g in published.items() if 1.0 * 3600 <= t - first_t < 1.75 * 3600]
    assert fitted == pytest.approx(0.09, rel=0.3)  # the recording's growth in that hour
    # the processes' part is the exact match above; how close the estimator comes to the recording's
    # growth right after its burst at 0.3–1 h is the estimator's accuracy, asserted (and benchmarked)
    # in tests/builtin_plugins/growth_rate; here the mean estimate is that growth within 25 % (see the docstring
    # for what the machine's load does to it)
    assert sum(rates) / len(rates) == pytest.approx(fitted, rel=0.25)
