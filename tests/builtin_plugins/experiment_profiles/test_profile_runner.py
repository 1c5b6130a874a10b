"""The profile runner against a fake cluster and a fake clock (no processes, no network)."""

import random
import textwrap
import threading

import pytest

from reactorkit.builtin_plugins.experiment_profiles.runner import ActionFailed, ProfileRunner
from reactorkit.builtin_plugins.experiment_profiles.schema import validate

T0 = 1_800_000_000.0


class FakeClock:
    """Simulated time that jumps forward when waited on."""

    def __init__(self):
        self.t = T0

    def now(self):
        return self.t

    def wait(self, event, seconds):
        self.t += max(0.0, seconds)
        return event.is_set()


class FakeCluster:
    """Records actions; jobs are 'running' between a start and a stop."""

    def __init__(self, clock, assigned=("w1", "w2"), values=None):
        self.clock = clock
        self.assigned = set(assigned)
        self.calls = []
        self.running = set()
        self.labels = {}
        self.values = values or {}
        self.fail_on = set()

    def hours(self):
        return round((self.clock.now() - T0) / 3600, 4)

    def assigned_units(self):
        return sorted(self.assigned)

    def is_assigned(self, unit):
        return unit in self.assigned

    def start_job(self, unit, job, options, args, config_overrides):
        if (unit, job) in self.fail_on:
            raise ActionFailed(f"{unit} refused {job}")
        self.calls.append((self.hours(), unit, job, "start", options))
        self.running.add((unit, job))

    def stop_job(self, unit, job):
        self.calls.append((self.hours(), unit, job, "stop", None))
        self.running.discard((unit, job))

    def update_job(self, unit, job, settings):
        self.calls.append((self.hours(), unit, job, "update", settings))

    def job_state(self, unit, job):
        return "ready" if (unit, job) in self.running else None

    def log(self, unit, message, level):
        self.calls.append((self.hours(), unit, "log", level, message))

    def push_label(self, unit, label):
        self.labels[unit] = label

    def read_setting(self, unit, job, setting):
        value = self.values.get((unit, job, setting))
        return value(self.hours()) if callable(value) else value


def profile(body):
    text = 'version: "1.0"\nexperiment_profile_name: test\n' + textwrap.dedent(body)
    result = validate(text)
    assert result.ok, [d.to_dict() for d in result.errors]
    return result.profile


def run(prof, cluster, clock, logs=None):
    logs = logs if logs is not None else []
    runner = ProfileRunner(prof, "exp1", cluster, clock, lambda level, msg: logs.append((level, msg)),
                           rng=random.Random(0))
    finished = runner.run(threading.Event())
    return runner, finished, logs


def test_actions_run_at_their_hours_in_the_same_time_order_on_every_assigned_unit():
    clock = FakeClock()
    cluster = FakeCluster(clock)
    prof = profile("""
        common:
          jobs:
            stirring:
              actions:
                - {type: log, t: 0, options: {message: "hello ${{ unit() }}"}}
                - {type: start, t: 0, options: {target_rpm: 300}}
                - {type: update, t: 1h, options: {target_rpm: 500}}
                - {type: stop, t: 2h}
    """)
    runner, finished, _ = run(prof, cluster, clock)
    assert finished and runner.pending == 0
    # units of one step run concurrently: compare each step as a set, steps in order
    steps = [(c[0], c[3]) for c in cluster.calls]
    assert steps == [(0.0, "start")] * 2 + [(0.0, "notice")] * 2 + [(1.0, "update")] * 2 + [(2.0, "stop")] * 2
    assert sorted(cluster.calls, key=repr) == sorted([
        (0.0, "w1", "stirring", "start", {"target_rpm": 300}),
        (0.0, "w2", "stirring", "start", {"target_rpm": 300}),
        (0.0, "w1", "log", "notice", "hello w1"),
        (0.0, "w2", "log", "notice", "hello w2"),
        (1.0, "w1", "stirring", "update", {"target_rpm": 500}),
        (1.0, "w2", "stirring", "update", {"target_rpm": 500}),
        (2.0, "w1", "stirring", "stop", None),
        (2.0, "w2", "stirring", "stop", None),
    ], key=repr)


def test_same_time_order_is_start_stop_pause_resume_update_when_repeat_log():
    clock = FakeClock()
    cluster = FakeCluster(clock, assigned=["w1"])
    prof = profile("""
        common:
          jobs:
            stirring:
              actions:
                - {type: log, t: 1, options: {message: last}}
                - {type: update, t: 1, options: {target_rpm: 1}}
                - {type: start, t: 1}
    """)
    run(prof, cluster, clock)
    assert [c[3] for c in cluster.calls] == ["start", "update", "notice"]


def test_if_false_skips_and_inputs_feed_options():
    clock = FakeClock()
    cluster = FakeCluster(clock)
    prof = profile("""
        inputs: {rpm: 250, only: w2}
        common:
          jobs:
            stirring:
              actions:
                - {type: start, t: 0, if: "unit() == only", options: {target_rpm: "${{ rpm * 2 }}"}}
    """)
    run(prof, cluster, clock)
    assert cluster.calls == [(0.0, "w2", "stirring", "start", {"target_rpm": 500})]


def test_assignment_is_checked_again_before_each_action():
    clock = FakeClock()
    cluster = FakeCluster(clock)
    prof = profile("""
        common:
          jobs:
            stirring:
              actions:
                - {type: start, t: 0}
                - {type: log, t: 0.5, options: {message: unassign}}
                - {type: stop, t: 1}
    """)

    def log(unit, message, level):
        cluster.assigned.discard("w2")

    cluster.log = log
    _, _, logs = run(prof, cluster, clock)
    stops = [c for c in cluster.calls if c[3] == "stop"]
    assert [c[1] for c in stops] == ["w1"]
    assert any("no longer assigned" in m for _, m in logs)


def test_unit_sections_run_only_on_assigned_units_and_push_labels():
    clock = FakeClock()
    cluster = FakeCluster(clock, assigned=["w1"])
    prof = profile("""
        pioreactors:
          w1:
            label: control
            jobs: {od_reading: {actions: [{type: start, t: 0}]}}
          w9:
            jobs: {od_reading: {actions: [{type: start, t: 0}]}}
    """)
    _, _, logs = run(prof, cluster, clock)
    assert cluster.calls == [(0.0, "w1", "od_reading", "start", {})]
    assert cluster.labels == {"w1": "control"}
    assert any("w9 is not assigned" in m for _, m in logs)


def test_when_waits_for_its_condition_then_schedules_relative_to_that_moment():
    clock = FakeClock()
    # OD crosses 0.5 at hour 3
    cluster = FakeCluster(clock, assigned=["w1"],
                          values={("w1", "od_reading", "od1"): lambda h: '{"od": %f}' % (0.1 + h * 0.15)})
    prof = profile("""
        common:
          jobs:
            dosing_automation:
              actions:
                - type: when
                  t: 0
                  wait_until: ::od_reading:od1.od > 0.5
                  actions:
                    - {type: start, t: 30m}
    """)
    run(prof, cluster, clock)
    (hours, unit, job, kind, _), = cluster.calls
    assert kind == "start" and job == "dosing_automation"
    # true first at h >= 2.667; re-checks every 15-25 s, start 30 min after the trigger
    assert 2.6667 + 0.5 <= hours <= 2.6667 + 25 / 3600 + 0.5


def test_repeat_runs_every_period_until_max_time():
    clock = FakeClock()
    cluster = FakeCluster(clock, assigned=["w1"])
    prof = profile("""
        common:
          jobs:
            stirring:
              actions:
                - {type: start, t: 0}
                - type: repeat
                  t: 1
                  every: 30m
                  max_time: 2h
                  actions:
                    - {type: update, t: 10m, options: {target_rpm: "${{ hours_elapsed() * 100 }}"}}
    """)
    run(prof, cluster, clock)
    updates = [c for c in cluster.calls if c[3] == "update"]
    assert [c[0] for c in updates] == pytest.approx([1 + 10 / 60, 1.5 + 10 / 60, 2 + 10 / 60, 2.5 + 10 / 60], abs=1e-3)
    assert updates[0][4]["target_rpm"] == pytest.approx(116.6667, abs=1e-2)


def test_repeat_while_is_checked_every_cycle():
    clock = FakeClock()
    cluster = FakeCluster(clock, assigned=["w1"])
    prof = profile("""
        common:
          jobs:
            stirring:
              actions:
                - type: repeat
                  t: 0
                  every: 1h
                  while: hours_elapsed() < 2.5
                  actions:
                    - {type: log, t: 0, options: {message: tick}}
    """)
    run(prof, cluster, clock)
    assert [c[0] for c in cluster.calls] == [0.0, 1.0, 2.0]


def test_led_intensity_stop_and_update_are_starts():
    clock = FakeClock()
    cluster = FakeCluster(clock, assigned=["w1"])
    prof = profile("""
        common:
          jobs:
            led_intensity:
              actions:
                - {type: start, t: 0, options: {A: 50}}
                - {type: update, t: 1, options: {B: 20}}
                - {type: stop, t: 2}
    """)
    run(prof, cluster, clock)
    assert cluster.calls == [
        (0.0, "w1", "led_intensity", "start", {"A": 50}),
        (1.0, "w1", "led_intensity", "start", {"B": 20}),
        (2.0, "w1", "led_intensity", "start", {"A": 0, "B": 0, "C": 0, "D": 0}),
    ]


def test_updates_of_jobs_that_are_not_running_are_skipped_and_failures_are_logged():
    clock = FakeClock()
    cluster = FakeCluster(clock, assigned=["w1"])
    cluster.fail_on.add(("w1", "od_reading"))
    prof = profile("""
        common:
          jobs:
            stirring:
              actions:
                - {type: update, t: 1, options: {target_rpm: 1}}
                - {type: pause, t: 1}
            od_reading:
              actions:
                - {type: start, t: 0}
    """)
    _, finished, logs = run(prof, cluster, clock)
    assert finished
    assert cluster.calls == []
    assert any(level == "error" and "w1 refused od_reading" in m for level, m in logs)
    assert sum("not running" in m for _, m in logs) == 2


def test_stopping_ends_the_run_with_actions_left():
    clock = FakeClock()
    cluster = FakeCluster(clock, assigned=["w1"])
    prof = profile("""
        common:
          jobs:
            stirring:
              actions:
                - {type: start, t: 0}
                - {type: stop, t: 5}
    """)
    runner = ProfileRunner(prof, "exp1", cluster, clock, lambda *a: None)
    stop = threading.Event()
    original = cluster.start_job

    def start_then_stop(*args):
        original(*args)
        stop.set()

    cluster.start_job = start_then_stop
    assert runner.run(stop) is False
    assert runner.pending == 1
    assert [c[3] for c in cluster.calls] == ["start"]


def test_dry_run_lists_the_schedule():
    clock = FakeClock()
    cluster = FakeCluster(clock, assigned=["w1"])
    prof = profile("""
        common:
          jobs:
            stirring:
              actions:
                - {type: stop, t: 2}
                - {type: start, t: 0}
    """)
    lines = ProfileRunner(prof, "exp1", cluster, clock, lambda *a: None).dry_run()
    assert [line.split()[-1] for line in lines] == ["start", "stop"]
    assert cluster.calls == []
