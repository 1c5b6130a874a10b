"""Acting around OD readings ("dodging"): a schedule of windows and a thread that keeps it.

``od_reading`` takes a reading every ``interval`` seconds, the first at
``first_od_obs_time`` (epoch seconds), both published as retained settings.
A job that disturbs the optics (the stirrer's vortex, bubbles …) can step out
of the way: its ``before`` action runs ``pre_delay_s`` ahead of each reading
and its ``after`` action ``post_delay_s`` + ``reading_duration_s`` after it
(Pioreactor ``[<job>.config] pre_delay_duration`` / ``post_delay_duration``;
a reading takes about 1 s). Dodging is only possible when
``interval − reading_duration_s > pre_delay_s + post_delay_s``, i.e. when
something of each period is left outside the windows.

Times are simulated seconds on the job's :class:`~reactorkit.core.clock.Clock`.
"""

from __future__ import annotations

import math
import threading
from typing import Any, Callable

from reactorkit.plugin import Record

READING_DURATION_S = 1.0  # time an OD reading takes (Pioreactor: ~1 s, LEDs off to ADC done)


class DodgeSchedule(Record, kw_only=False):
    """Where the dodging windows lie.

    Attributes:
        interval_s: Seconds between OD readings (> 0).
        first_obs_time: Epoch seconds of the first reading.
        pre_delay_s: The window opens this long before each reading.
        post_delay_s: … and closes this long after the reading has ended.
        reading_duration_s: Length of one reading.

    Raises:
        ValueError: the windows would cover the whole period (names the numbers).
    """

    interval_s: float
    first_obs_time: float
    pre_delay_s: float = 1.5
    post_delay_s: float = 0.25
    reading_duration_s: float = READING_DURATION_S

    def __post_init__(self) -> None:
        if not self.interval_s > 0:
            raise ValueError(f"od_reading interval must be positive, got {self.interval_s}")
        if not self.interval_s - self.reading_duration_s > self.pre_delay_s + self.post_delay_s:
            raise ValueError(
                f"cannot dodge OD readings every {self.interval_s:g} s with pre_delay_duration {self.pre_delay_s:g} s"
                f" and post_delay_duration {self.post_delay_s:g} s: need interval − {self.reading_duration_s:g} s >"
                " pre + post"
            )

    @property
    def window_length_s(self) -> float:
        return self.pre_delay_s + self.reading_duration_s + self.post_delay_s

    def window_at_or_after(self, t: float) -> tuple[float, float]:
        """``(opens, closes)`` of the first window that has not closed by ``t``."""
        k = math.ceil((t - self.first_obs_time - self.reading_duration_s - self.post_delay_s) / self.interval_s)
        read_at = self.first_obs_time + max(k, 0) * self.interval_s
        opens = read_at - self.pre_delay_s
        closes = read_at + self.reading_duration_s + self.post_delay_s
        if closes <= t:  # numerical edge: take the next one
            opens, closes = opens + self.interval_s, closes + self.interval_s
        return opens, closes

    def in_window(self, t: float) -> bool:
        opens, closes = self.window_at_or_after(t)
        return opens <= t < closes

    def clear_slot(self, t: float) -> tuple[float, float]:
        """``(start, length)`` of the next stretch outside every window, starting no earlier than ``t``."""
        opens, closes = self.window_at_or_after(t)
        if t < opens:
            return t, opens - t
        return closes, self.interval_s - self.window_length_s


class OdDodger:
    """Runs ``before()`` as each window opens and ``after()`` as it closes, in a daemon thread.

    Args:
        before, after: Callables without arguments (exceptions go to ``on_error``).
        clock: The job's clock (simulated time).
        pre_delay_s, post_delay_s: See :class:`DodgeSchedule`.
        on_error: Called with the exception of a failed action.

    The schedule is fed with :meth:`update` whenever ``od_reading``'s
    ``interval`` or ``first_od_obs_time`` changes (None: od_reading is not
    running). Any change, and :meth:`stop`, closes an open window first
    (``after()`` runs), so the job is never left in its "during" state.
    """

    def __init__(self, before: Callable[[], Any], after: Callable[[], Any], *, clock: Any, pre_delay_s: float = 1.5,
                 post_delay_s: float = 0.25, on_error: Callable[[BaseException], Any] | None = None) -> None:
        self.before = before
        self.after = after
        self.clock = clock
        self.pre_delay_s = float(pre_delay_s)
        self.post_delay_s = float(post_delay_s)
        self.on_error = on_error
        self.interval_s: float | None = None
        self.first_obs_time: float | None = None
        self.schedule: DodgeSchedule | None = None
        self.problem: str | None = None
        self.in_window = False
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    # --------------------------------------------------------------- schedule
    def update(self, *, interval_s: float | None = ..., first_obs_time: float | None = ...) -> DodgeSchedule | None:  # type: ignore[assignment]
        """Record new od_reading settings (omit the one that did not change); returns the schedule or None.

        An infeasible combination leaves no schedule and sets :attr:`problem`.
        """
        with self._lock:
            if interval_s is not ...:
                self.interval_s = interval_s
            if first_obs_time is not ...:
                self.first_obs_time = first_obs_time
            self.problem = None
            schedule = None
            if self.interval_s is not None and self.first_obs_time is not None:
                try:
                    schedule = DodgeSchedule(self.interval_s, self.first_obs_time, self.pre_delay_s, self.post_delay_s)
                except ValueError as exc:
                    self.problem = str(exc)
            changed = schedule != self.schedule
            self.schedule = schedule
        if changed:
            self._wake.set()
        return schedule

    @property
    def active(self) -> bool:
        """True while a feasible schedule exists and the thread runs."""
        return self.schedule is not None and self._thread is not None and not self._stop.is_set()

    # ----------------------------------------------------------------- thread
    def start(self) -> "OdDodger":
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="od-dodging", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread; an open window is closed (``after()``) before this returns."""
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(5.0)
        self._thread = None
        if self.in_window:  # the thread did not get to it
            self._close_window()

    def _call(self, action: Callable[[], Any]) -> None:
        try:
            action()
        except Exception as exc:
            if self.on_error is None:
                raise
            self.on_error(exc)

    def _close_window(self) -> None:
        self.in_window = False
        self._call(self.after)

    def _wait_until(self, t: float) -> bool:
        """Sleep until simulated time ``t``; True if woken early (schedule change or stop)."""
        while True:
            left = t - self.clock.now()
            if left <= 0:
                return False
            if self.clock.wait(self._wake, left):
                return True

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            schedule = self.schedule
            if schedule is None:
                self._wake.wait()
                continue
            opens, closes = schedule.window_at_or_after(self.clock.now())
            if self._wait_until(opens):
                continue
            if self._stop.is_set():
                break
            self.in_window = True
            self._call(self.before)
            self._wait_until(closes)  # a change or stop ends the window early
            self._close_window()
