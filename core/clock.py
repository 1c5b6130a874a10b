"""The clock every timer and the simulated vessel use.

Simulated time runs ``speedup`` times faster than wall time from a shared
origin, so all processes of a cluster agree on "now"::

    now = origin + (wall_now - origin) * speedup

With ``speedup = 1`` (the default, and always on real hardware) this is the
wall clock. The factor comes from ``$REACTORKIT_SPEEDUP`` or ``[simulation]
speedup``; the origin from ``$REACTORKIT_CLOCK_ORIGIN`` (epoch seconds), else
``[simulation] clock_origin``, else the file ``$DOT_PIOREACTOR/storage/clock_origin`` (written on first use when
the speed-up is not 1).
"""

from __future__ import annotations

import os
import threading
import time
from datetime import datetime, timezone
from typing import Any, Callable

from reactorkit.core.paths import atomic_write, storage_dir


class Clock:
    """Simulated (or real) time.

    Args:
        speedup: Simulated seconds per wall second (≥ 1e-3).
        origin: Epoch second where simulated and wall time coincide.

    Raises:
        ValueError: ``speedup`` is not positive.
    """

    def __init__(self, speedup: float = 1.0, origin: float | None = None) -> None:
        if not speedup > 0:
            raise ValueError(f"speedup must be positive, got {speedup}")
        self.speedup = float(speedup)
        self.origin = float(origin) if origin is not None else time.time()

    def now(self) -> float:
        """Simulated epoch seconds."""
        wall = time.time()
        return self.origin + (wall - self.origin) * self.speedup

    def monotonic(self) -> float:
        """Simulated seconds on a monotonic scale (for measuring durations)."""
        return time.monotonic() * self.speedup

    def to_wall(self, seconds: float) -> float:
        """Wall seconds that ``seconds`` of simulated time take."""
        return max(0.0, seconds) / self.speedup

    def sleep(self, seconds: float) -> None:
        """Sleep ``seconds`` of simulated time."""
        time.sleep(self.to_wall(seconds))

    def wait(self, event: threading.Event, seconds: float) -> bool:
        """``event.wait`` for ``seconds`` of simulated time; True if the event was set."""
        return event.wait(self.to_wall(seconds))

    def utc_iso(self, ts: float | None = None) -> str:
        """ISO-8601 UTC with microseconds and ``Z`` (the payload timestamp format)."""
        ts = self.now() if ts is None else ts
        return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def utc_iso_ms(ts: float) -> str:
    """ISO-8601 UTC with milliseconds and ``Z`` (the database timestamp format)."""
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def iso_to_utc_iso_ms(text: str) -> str:
    """``utc_iso_ms(parse_iso(text))``, without the round trip through epoch seconds for UTC input
    (the ingestion normalises every reading's timestamp; this is about a third quicker).

    Raises:
        ValueError: not an ISO-8601 timestamp.
    """
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    offset = dt.utcoffset()
    if offset is not None and not offset and 1970 <= dt.year <= 2999:
        return (f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}"
                f".{dt.microsecond // 1000:03d}Z")
    return utc_iso_ms(parse_iso(text))


def parse_iso(text: str) -> float:
    """Epoch seconds of an ISO-8601 timestamp (``Z`` or offset; naive = UTC).

    Raises:
        ValueError: not an ISO-8601 timestamp.
    """
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


_clock: Clock | None = None
_built = False  # _clock was built by get_clock() from the environment and config (not installed with set_clock)
_lock = threading.Lock()


def _read_origin(speedup: float, config: Any = None) -> float | None:
    env = os.environ.get("REACTORKIT_CLOCK_ORIGIN")
    if env:
        return float(env)
    configured = config.get("simulation", "clock_origin", fallback="") if config is not None else ""
    if configured:
        return float(configured)
    if speedup == 1.0:
        return None
    path = storage_dir() / "clock_origin"
    try:
        return float(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        origin = time.time()
        atomic_write(path, repr(origin))
        return origin


def get_clock(config: Any = None) -> Clock:
    """The process-wide clock, built from env and config on first use (built again after
    :func:`forget_clock`)."""
    global _clock, _built
    with _lock:
        if _clock is None:
            if config is None:
                from reactorkit.core.config import get_config

                config = get_config()
            speedup_text = os.environ.get("REACTORKIT_SPEEDUP") or config.get("simulation", "speedup", fallback="1.0")
            speedup = float(speedup_text)
            _clock = Clock(speedup, _read_origin(speedup, config))
            _built = True
        return _clock


def set_clock(clock: Clock | None) -> None:
    """Replace the process-wide clock (tests)."""
    global _clock, _built
    with _lock:
        _clock = clock
        _built = False


def forget_clock() -> None:
    """Forget the process-wide clock if :func:`get_clock` built it from env and config, so that the next
    :func:`get_clock` reads ``[simulation] speedup`` and ``clock_origin`` again: a config file was written
    (:func:`reactorkit.core.config.forget_config_files`). A clock installed with :func:`set_clock` stays.
    Objects that kept the old clock (a timer already running) keep it."""
    global _clock, _built
    with _lock:
        if _built:
            _clock = None
            _built = False


class RepeatedTimer:
    """Call ``function`` every ``interval`` simulated seconds in a daemon thread.

    Args:
        interval: Seconds (simulated) between calls.
        function: Called with no arguments; exceptions are passed to ``on_error``
            (default: re-raised in the thread, which stops the timer).
        clock: The clock (default: the process-wide one).
        run_immediately: Call once at start.
        run_after: Simulated seconds before the first call (default ``interval``).
    """

    def __init__(
        self,
        interval: float,
        function: Callable[[], Any],
        *,
        clock: Clock | None = None,
        run_immediately: bool = False,
        run_after: float | None = None,
        on_error: Callable[[BaseException], Any] | None = None,
        name: str = "timer",
    ) -> None:
        self.interval = interval
        self.function = function
        self.clock = clock or get_clock()
        self.run_immediately = run_immediately
        self.run_after = interval if run_after is None else run_after
        self.on_error = on_error
        self._stop = threading.Event()
        self._paused = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> "RepeatedTimer":
        self._thread.start()
        return self

    def _call(self) -> None:
        if self._paused.is_set():
            return
        try:
            self.function()
        except Exception as exc:
            if self.on_error is None:
                raise
            self.on_error(exc)

    def _run(self) -> None:
        if self.run_immediately:
            self._call()
        next_at = self.clock.now() + self.run_after
        while not self._stop.is_set():
            if self.clock.wait(self._stop, next_at - self.clock.now()):
                break
            self._call()
            next_at += self.interval
            now = self.clock.now()
            if next_at < now:  # fell behind: skip missed beats rather than bursting
                next_at = now + self.interval

    def pause(self) -> None:
        self._paused.set()

    def unpause(self) -> None:
        self._paused.clear()

    def cancel(self) -> None:
        self._stop.set()

    def join(self, timeout: float | None = None) -> None:
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)
