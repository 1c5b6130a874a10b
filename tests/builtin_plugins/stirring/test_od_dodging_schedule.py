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


class SteppedClock(Clock):
    """Simulated time that moves only when the dodger waits: each wait jumps to its end at once, up to ``until``,
    where time stops (``reached`` is set) and the waiting thread blocks until it is woken (a change or a stop).

    The dodger's thread is then at the same simulated times however busy the machine is; on a wall clock sped up
    100×, every wall millisecond the thread was held up moved its calls by 0.1 simulated seconds.
    """

    def __init__(self, t, until):
        super().__init__(1.0, t)
        self.t = t
        self.until = until
        self.reached = threading.Event()

    def now(self):
        return self.t

    def wait(self, event, seconds):
        if event.is_set():
            return True
        if self.t + seconds > self.until:
            self.t = max(self.t, self.until)
            self.reached.set()
            return event.wait(30)  # woken by the test's stop (30 s only against a hang)
        self.t += max(0.0, seconds)
        return event.is_set()


def test_dodger_alternates_before_and_after_around_each_reading():
    first = 1000.0  # readings at first, first + 5, …; windows from 1 s before each to 0.5 s after its 1-s reading
    clock = SteppedClock(first - 3.0, until=first + 10.0)  # time stops inside the third window
    calls = []
    dodger = OdDodger(lambda: calls.append(("before", clock.now())), lambda: calls.append(("after", clock.now())),
                      clock=clock, pre_delay_s=1.0, post_delay_s=0.5)
    dodger.update(interval_s=5.0, first_obs_time=first)
    dodger.start()
    try:
        assert clock.reached.wait(30)
    finally:
        dodger.stop()
    assert [name for name, _ in calls] == ["before", "after"] * 3
    for name, t in calls[:5]:
        phase = (t - first) % 5.0
        expected = 4.0 if name == "before" else 1.5  # 1 s before / 1 s reading + 0.5 s after
        assert phase == pytest.approx(expected), (name, t)
    assert calls[-1] == ("after", first + 10.0)  # stopping inside a window closes it


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
