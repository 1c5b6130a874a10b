"""benchmarks/job_start.py paces a job's API starts from the API's answer, not from the request's sending.

The API refuses a job asked for again within 1 s of the request it handled (its debounce key is set while
handling it, any time up to its answer). Paced 1.5 s from the sending, a start whose handling came late (a
gunicorn worker's first request on a loaded machine) let the next start of the same job arrive inside the
window, and the API answered 429: what stopped three benchmark runs. Unit test: the API, the clock, the MQTT
recorder and the job process are fakes; the fake API sets its window when it answers (the latest it can).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
WINDOW_S = 1.0  # the API's RUN_DEBOUNCE_MS


@pytest.fixture
def job_start(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # the script imports its neighbour `machine`
    spec = importlib.util.spec_from_file_location("job_start_under_test", BENCHMARKS / "job_start.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Clock:
    """``time`` for the benchmark: monotonic seconds that move only when slept or when a fake says so."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)


class Api:
    """The unit API's run route: answers after ``delays`` (s, one per request), with the job's 1 s window
    opened at the answer; 429 inside an open window."""

    def __init__(self, clock: Clock, delays: list[float]) -> None:
        self.clock, self.delays = clock, list(delays)
        self.claims: list[float] = []
        self.refused = 0

    def post(self, url: str, **kwargs: object) -> SimpleNamespace:
        self.clock.now += self.delays.pop(0) if self.delays else 0.05
        if self.claims and self.clock.now - self.claims[-1] < WINDOW_S:
            self.refused += 1
            return SimpleNamespace(status_code=429, text='{"status": 429}')
        self.claims.append(self.clock.now)
        return SimpleNamespace(status_code=202, text="{}")


class Recorder:
    """The job's ``$state`` arrives 0.1 s after it is waited for."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    def wait_for(self, topic: str, predicate: object, timeout: float, since: float) -> None:
        self.clock.now += 0.1


def test_a_late_answered_api_start_does_not_put_the_next_start_of_the_job_inside_the_apis_window(
        job_start, monkeypatch, tmp_path):
    clock = Clock()
    # the first request is handled 0.8 s after it is sent (a cold worker, a loaded machine), the others at once
    api = Api(clock, [0.8, 0.05, 0.05])
    monkeypatch.setattr(job_start, "time", clock)
    monkeypatch.setattr(job_start, "interpreter_floor_ms", lambda runs: 20.0)
    monkeypatch.setattr(job_start.os, "kill", lambda pid, sig: None)
    monkeypatch.setattr(job_start, "_not_zombie", lambda pid: False)
    unit = job_start.Unit.__new__(job_start.Unit)  # no services: the fakes stand in for them
    unit.env_ = job_start.UnitEnv(root=tmp_path)
    unit.env_.extra["REACTORKIT_QUEUE_PREFIX"] = "pacing-test-"
    unit.port, unit.headers, unit.http, unit.recorder = 1, {}, api, Recorder(clock)
    unit.api_starts = {}
    unit.job_pid = lambda job, timeout=10: 2 ** 22 + 1  # beyond pid_max: no such process

    for _ in range(3):
        try:
            unit.one_run("stirring", "api")
        except SystemExit as exc:  # what the benchmark does on a refused start
            pytest.fail(f"a start inside the API's window: {exc}")

    assert api.refused == 0 and len(api.claims) == 3
    assert all(later - earlier >= WINDOW_S for earlier, later in zip(api.claims, api.claims[1:]))
    # the pacing is from the answer: the second start comes 1.5 s after the first's answer, not its sending
    assert api.claims[1] - 0.05 == pytest.approx(api.claims[0] + job_start.API_SPACING_S)
