"""Schedules and executes a validated profile against the cluster (domain facts §7.2).

The runner keeps one queue of events in *simulated* time (the core clock, so a
sped-up simulation runs the profile sped up too). Each event is one action for
one unit and one job, due at ``start + hours``:

* ``common`` jobs run on the workers assigned (and active) when the profile
  starts; ``pioreactors.<unit>`` jobs only on that unit, and only if it was
  assigned at start (its label is pushed first).
* Actions due at the same time run in the order start, stop, pause, resume,
  update, when, repeat, log; within one step, different units run concurrently.
* Before each action the unit's assignment is checked again; ``if`` is
  evaluated (for ``repeat`` on its first cycle only).
* ``when``: a false condition is checked again 15–25 s later; once true, its
  actions are scheduled relative to that moment.
* ``repeat``: cycles every ``every``; ``while`` is checked each cycle; it ends
  when ``cycles × every ≥ max_time``.
* ``led_intensity`` is special: ``stop``/``pause`` start it with A–D at 0 and
  ``update`` starts it with the new options.

Problems with one action (an expression that cannot be evaluated, a unit that
answers with an error) are logged and the profile goes on.
"""

from __future__ import annotations

import heapq
import itertools
import random
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from . import expressions as ex
from .schema import Action, Profile

WHEN_RECHECK_S = (15.0, 25.0)
LED_JOB = "led_intensity"
LED_OFF = {"A": 0, "B": 0, "C": 0, "D": 0}
RUNNING_STATES = ("init", "ready", "sleeping")


class ActionFailed(RuntimeError):
    """The cluster refused or failed an action (message says which unit and why).

    Attributes:
        status_code: The HTTP status that reported it, when there was one.
    """

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class Cluster(Protocol):
    """What the runner needs from the cluster (:class:`~.cluster.HttpCluster` talks to the real one)."""

    def assigned_units(self) -> list[str]: ...
    def is_assigned(self, unit: str) -> bool: ...
    def start_job(self, unit: str, job: str, options: dict[str, Any], args: list[str],
                  config_overrides: dict[str, Any]) -> None: ...
    def stop_job(self, unit: str, job: str) -> None: ...
    def update_job(self, unit: str, job: str, settings: dict[str, Any]) -> None: ...
    def job_state(self, unit: str, job: str) -> str | None: ...
    def log(self, unit: str, message: str, level: str) -> None: ...
    def push_label(self, unit: str, label: str) -> None: ...
    def read_setting(self, unit: str, job: str, setting: str) -> str | None: ...


class ClockLike(Protocol):
    def now(self) -> float: ...
    def wait(self, event: threading.Event, seconds: float) -> bool: ...


@dataclass(order=True)
class _Entry:
    due: float
    rank: int
    seq: int
    event: "Event" = field(compare=False)


@dataclass
class Event:
    """One scheduled step: ``action`` of ``job`` on ``unit`` (``cycle``/``first`` for repeat and when)."""

    unit: str
    job: str
    action: Action
    cycle: int = 0
    first: bool = True
    cycle_start: float | None = None
    due: float = 0.0


class ProfileRunner:
    """Run ``profile`` for ``experiment`` against ``cluster``.

    Args:
        profile: A validated :class:`~.schema.Profile`.
        experiment: Experiment the actions belong to.
        cluster: The cluster (HTTP in production, a fake in unit tests).
        clock: ``now()`` in seconds and ``wait(event, seconds)`` (simulated time).
        log: ``log(level, message)`` for the profile's own log (``"info"``, ``"warning"``, ``"error"``).
        rng: Random source (``random()`` and the ``when`` re-check delay).
        when_recheck_s: Range of the ``when`` re-check delay, simulated seconds.
        max_parallel: Units acted on at once within one step.
    """

    def __init__(self, profile: Profile, experiment: str, cluster: Cluster, clock: ClockLike,
                 log: Callable[[str, str], None], *, rng: random.Random | None = None,
                 when_recheck_s: tuple[float, float] = WHEN_RECHECK_S, max_parallel: int = 16) -> None:
        self.profile = profile
        self.experiment = experiment
        self.cluster = cluster
        self.clock = clock
        self.log = log
        self.rng = rng or random.Random()
        self.when_recheck_s = when_recheck_s
        self.max_parallel = max_parallel
        self.start_time: float | None = None
        self._heap: list[_Entry] = []
        self._seq = itertools.count()
        self._lock = threading.Lock()
        self.units: set[str] = set()
        self.executed: list[tuple[float, str, str, str]] = []  # (hours, unit, job, type) of actions done

    # --------------------------------------------------------------- planning
    def targets(self) -> list[tuple[str, str, Action]]:
        """``(unit, job, action)`` of every top-level action, for the units assigned now."""
        assigned = sorted(self.cluster.assigned_units())
        out: list[tuple[str, str, Action]] = []
        for job in self.profile.common:
            for unit in assigned:
                out.extend((unit, job.job_name, a) for a in job.actions)
        for section in self.profile.pioreactors:
            if section.unit not in assigned:
                self.log("warning", f"{section.unit} is not assigned to {self.experiment}; its actions are skipped.")
                continue
            for job in section.jobs:
                out.extend((section.unit, job.job_name, a) for a in job.actions)
        return out

    def schedule(self, start_time: float | None = None) -> int:
        """Fix the start time, push labels, queue the top-level actions. Returns how many were queued."""
        self.start_time = self.clock.now() if start_time is None else start_time
        for section in self.profile.pioreactors:
            if section.label and section.unit in self.cluster.assigned_units():
                try:
                    self.cluster.push_label(section.unit, section.label)
                except Exception as exc:
                    self.log("warning", f"Could not set the label of {section.unit}: {exc}")
        targets = self.targets()
        for unit, job, action in targets:
            self.units.add(unit)
            self._push(self.start_time + action.hours * 3600, Event(unit, job, action))
        return len(targets)

    def dry_run(self) -> list[str]:
        """The top-level schedule as text lines ``"<hours> h  <unit>  <job>  <type>"`` (nothing is executed)."""
        rows = sorted(self.targets(), key=lambda t: (t[2].hours, t[2].rank, t[0], t[1]))
        return [f"{a.hours:>8.3f} h  {u:<16} {j:<24} {a.type}" + (f"  {a.options}" if a.options else "")
                for u, j, a in rows]

    def _push(self, due: float, event: Event) -> None:
        event.due = due
        with self._lock:
            heapq.heappush(self._heap, _Entry(due, event.action.rank, next(self._seq), event))

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._heap)

    def hours_elapsed(self) -> float:
        return (self.clock.now() - (self.start_time or self.clock.now())) / 3600

    # --------------------------------------------------------------- running
    def run(self, stop: threading.Event) -> bool:
        """Execute events as they fall due until none is left (True) or ``stop`` is set (False)."""
        if self.start_time is None:
            self.schedule()
        with ThreadPoolExecutor(max_workers=self.max_parallel, thread_name_prefix="profile") as pool:
            while not stop.is_set():
                with self._lock:
                    if not self._heap:
                        return True
                    head = self._heap[0]
                delay = head.due - self.clock.now()
                if delay > 0:
                    if self.clock.wait(stop, delay):
                        return False
                    continue
                with self._lock:
                    group = []
                    while self._heap and (self._heap[0].due, self._heap[0].rank) == (head.due, head.rank):
                        group.append(heapq.heappop(self._heap).event)
                if len(group) == 1:
                    self._execute(group[0])
                else:
                    list(pool.map(self._execute, group))
        return False

    def _context(self, event: Event) -> ex.Context:
        return ex.Context(inputs=dict(self.profile.inputs), unit=event.unit, experiment=self.experiment,
                          job_name=event.job, hours_elapsed=self.hours_elapsed,
                          read_setting=self.cluster.read_setting, rng=self.rng)

    def _execute(self, event: Event) -> None:
        action, unit, job = event.action, event.unit, event.job
        where = f"{action.type} {job} on {unit} ({action.path})"
        try:
            if not self.cluster.is_assigned(unit):
                self.log("warning", f"Skipped {where}: {unit} is no longer assigned to {self.experiment}.")
                return
            ctx = self._context(event)
            if event.first and not ex.evaluate_condition(action.condition, ctx):
                self.log("info", f"Skipped {where}: its if condition is false.")
                return
            getattr(self, f"_do_{action.type}")(event, ctx)
        except (ex.ExpressionError, ex.ExpressionSyntaxError) as exc:
            self.log("error", f"Skipped {where}: {exc}.")
        except ActionFailed as exc:
            self.log("error", f"{where} failed: {exc}")
        except Exception as exc:  # never let one action end the profile
            self.log("error", f"{where} failed unexpectedly: {type(exc).__name__}: {exc}")

    def _record(self, event: Event) -> None:
        with self._lock:
            self.executed.append((round(self.hours_elapsed(), 6), event.unit, event.job, event.action.type))

    def _options(self, action: Action, ctx: ex.Context) -> dict[str, Any]:
        return {k: ex.render_value(v, ctx) for k, v in action.options.items()}

    def _is_running(self, unit: str, job: str) -> bool:
        return self.cluster.job_state(unit, job) in RUNNING_STATES

    def _do_start(self, event: Event, ctx: ex.Context) -> None:
        options = self._options(event.action, ctx)
        self.cluster.start_job(event.unit, event.job, options, list(event.action.args),
                               dict(event.action.config_overrides))
        self._record(event)
        self.log("info", f"Started {event.job} on {event.unit}.")

    def _do_stop(self, event: Event, ctx: ex.Context) -> None:
        if event.job == LED_JOB:
            self.cluster.start_job(event.unit, LED_JOB, dict(LED_OFF), [], {})
        else:
            self.cluster.stop_job(event.unit, event.job)
        self._record(event)
        self.log("info", f"Stopped {event.job} on {event.unit}.")

    def _set_state(self, event: Event, state: str) -> None:
        if event.job == LED_JOB:
            if state == "sleeping":
                self.cluster.start_job(event.unit, LED_JOB, dict(LED_OFF), [], {})
                self._record(event)
            return
        if not self._is_running(event.unit, event.job):
            self.log("warning", f"Skipped {event.action.type} {event.job} on {event.unit}: it is not running.")
            return
        self.cluster.update_job(event.unit, event.job, {"$state": state})
        self._record(event)

    def _do_pause(self, event: Event, ctx: ex.Context) -> None:
        self._set_state(event, "sleeping")

    def _do_resume(self, event: Event, ctx: ex.Context) -> None:
        self._set_state(event, "ready")

    def _do_update(self, event: Event, ctx: ex.Context) -> None:
        options = self._options(event.action, ctx)
        if event.job == LED_JOB:
            self.cluster.start_job(event.unit, LED_JOB, options, [], {})
            self._record(event)
            return
        if not self._is_running(event.unit, event.job):
            self.log("warning", f"Skipped update of {event.job} on {event.unit}: it is not running.")
            return
        for key, value in options.items():
            self.cluster.update_job(event.unit, event.job, {key: value})
        self._record(event)
        self.log("info", f"Updated {event.job} on {event.unit}: {options}.")

    def _do_log(self, event: Event, ctx: ex.Context) -> None:
        message = ex.render_message(str(event.action.options.get("message", "")), ctx)
        level = str(event.action.options.get("level", "notice")).lower()
        self.cluster.log(event.unit, message, level)
        self._record(event)

    def _do_when(self, event: Event, ctx: ex.Context) -> None:
        now = self.clock.now()
        if ex.evaluate_condition(event.action.wait_until, ctx):
            self._record(event)
            for child in event.action.actions:
                self._push(now + child.hours * 3600, Event(event.unit, event.job, child))
            return
        delay = self.rng.uniform(*self.when_recheck_s)
        self._push(now + delay, Event(event.unit, event.job, event.action, first=False))

    def _do_repeat(self, event: Event, ctx: ex.Context) -> None:
        action = event.action
        every_s = (action.every_hours or 0) * 3600
        if every_s <= 0:
            return
        if action.max_hours is not None and event.cycle * action.every_hours >= action.max_hours:
            return
        if not ex.evaluate_condition(action.while_, ctx):
            self.log("info", f"repeat of {event.job} on {event.unit} ended: its while condition is false.")
            return
        cycle_start = event.due if event.cycle_start is None else event.cycle_start
        self._record(event)
        for child in action.actions:
            self._push(cycle_start + child.hours * 3600, Event(event.unit, event.job, child))
        self._push(cycle_start + every_s, Event(event.unit, event.job, action, cycle=event.cycle + 1, first=False,
                                                cycle_start=cycle_start + every_s))
