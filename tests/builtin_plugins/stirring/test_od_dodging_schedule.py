"""Windows around OD readings and the thread that acts on them."""

import threading
import time

import pytest

from reactorkit.builtin_plugins.stirring.dodging import DodgeSchedule, OdDodger
from reactorkit.builtin_plugins.stirring.job import parse_od_setting
from reactorkit.core.clock import Clock


def test_window_opens_pre_delay_before_a_reading_and_closes_after_it():
    schedule = DodgeSchedule(interval_s=5.0, first_obs_time=1000.0, pre_delay_s=1.5, post_delay_s=0.25)
    assert schedule.window_at_or_after(1001.0) == (998.5, 1001.25)  # the reading at 1000 s still ends
    assert schedule.window_at_or_after(1001.5) == (1003.5, 1006.25)
    assert schedule.in_window(1004.0) and schedule.in_window(1006.0) and schedule.in_window(1001.0)
    assert not schedule.in_window(1002.0)


def test_before_the_first_reading_the_first_window_is_next():
    schedule = DodgeSchedule(interval_s=30.0, first_obs_time=1000.0, pre_delay_s=2.0, post_delay_s=1.0)
    assert schedule.window_at_or_after(900.0) == (998.0, 1002.0)


def test_clear_slot_is_the_gap_between_windows():
    schedule = DodgeSchedule(interval_s=10.0, first_obs_time=0.0, pre_delay_s=1.0, post_delay_s=1.0)
    # windows: [-1, 2), [9, 12), …
    assert schedule.clear_slot(3.0) == (3.0, 6.0)
    assert schedule.clear_slot(10.0) == (12.0, 7.0)


@pytest.mark.parametrize("interval", [2.0, 2.75])
def test_windows_covering_the_whole_period_are_refused(interval):
    with pytest.raises(ValueError, match="pre_delay_duration"):
        DodgeSchedule(interval_s=interval, first_obs_time=0.0, pre_delay_s=1.5, post_delay_s=0.25)


def test_dodger_alternates_before_and_after_around_each_reading():
    clock = Clock(speedup=100.0)
    calls = []
    lock = threading.Lock()

    def record(name):
        with lock:
            calls.append((name, clock.now()))

    dodger = OdDodger(lambda: record("before"), lambda: record("after"), clock=clock, pre_delay_s=1.0, post_delay_s=0.5)
    first = clock.now() + 3.0
    dodger.update(interval_s=5.0, first_obs_time=first)
    dodger.start()
    try:
        time.sleep(0.2)  # 20 simulated seconds: readings at first, first+5, …
    finally:
        dodger.stop()
    names = [n for n, _ in calls]
    assert names[:6] == ["before", "after"] * 3
    assert names[-1] == "after"  # stopping never leaves a window open
    for name, t in calls[:6]:
        phase = (t - first) % 5.0
        expected = 4.0 if name == "before" else 1.5  # 1 s before / 1 s reading + 0.5 s after
        assert abs(phase - expected) < 0.5, (name, phase)


def test_dodger_without_od_reading_does_nothing_and_is_inactive():
    clock = Clock(speedup=100.0)
    calls = []
    dodger = OdDodger(lambda: calls.append("before"), lambda: calls.append("after"), clock=clock).start()
    try:
        time.sleep(0.05)
        assert not dodger.active
        dodger.update(interval_s=5.0, first_obs_time=None)
        assert dodger.schedule is None
    finally:
        dodger.stop()
    assert calls == []


def test_infeasible_od_interval_is_reported_not_scheduled():
    dodger = OdDodger(lambda: None, lambda: None, clock=Clock(), pre_delay_s=1.5, post_delay_s=0.25)
    assert dodger.update(interval_s=2.0, first_obs_time=0.0) is None
    assert "interval" in dodger.problem


@pytest.mark.parametrize("payload, expected", [
    (b"5.0", 5.0), (b"1738324805.5", 1738324805.5), (b"", None), (b"2025-01-31T12:00:05Z", 1738324805.0),
    (b"garbage", None),
])
def test_od_settings_are_read_from_their_payloads(payload, expected):
    assert parse_od_setting(payload) == expected
