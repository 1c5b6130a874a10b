"""Which units the leader can reach: ``reachable`` and ``last_seen_at`` in ``/api/workers`` and ``/api/units``.

A daemon thread of the leader's API process calls ``GET /unit_api/health`` on
every unit of the inventory, concurrently, every ``[cluster]
reachability_interval_s`` (15 s) with a ``reachability_timeout_s`` (5 s)
timeout, so a unit that lost power or its network reads ``reachable: false``
within about 20 s (well within a minute), and again ``true`` once it answers.
Before the first round has answered, ``reachable`` is null (unknown). The
leader itself is reachable while its API answers.
"""

from __future__ import annotations

import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any, Callable, Iterable

DEFAULT_INTERVAL_S = 15.0
DEFAULT_TIMEOUT_S = 5.0
_UNKNOWN: tuple[None, None] = (None, None)  # (reachable, last_seen_at) of a unit no round has answered for


_SECOND: tuple[int, str] = (-1, "")  # the last second formatted by _iso: (epoch second, "…T12:00:00.")


def _iso(ts: float) -> str:
    """``ts`` (epoch s) as :func:`reactorkit.core.clock.utc_iso_ms` formats it (``…T12:00:00.123Z``), the same
    string: microseconds rounded half to even as ``datetime.fromtimestamp`` rounds them (CPython's
    ``_PyTime_DoubleToDenominator``), then cut to milliseconds. The date and time of a second are formatted once
    (``strftime`` is most of the cost), so the leader's ``last_seen_at`` costs little on every request."""
    global _SECOND
    fraction, whole = math.modf(ts)
    micros = round(fraction * 1e6)
    second = int(whole)
    if micros >= 1_000_000:
        micros -= 1_000_000
        second += 1
    elif micros < 0:
        micros += 1_000_000
        second -= 1
    cached_second, text = _SECOND
    if cached_second != second:
        text = datetime.fromtimestamp(second, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.")
        _SECOND = (second, text)  # one tuple: threads read it whole
    return f"{text}{micros // 1000:03d}Z"


class Reachability:
    """Probes units in the background; :meth:`status` reads the latest answer.

    ``generation`` (int) grows whenever a round changed what :meth:`statuses` returns for a unit other than the
    leader, so a reader can keep what it built from them until it grows.

    Args:
        config: The leader's config (``[cluster.addresses]``, ``[cluster]`` interval and timeout), or
            ``() -> Config`` returning it as it is now: the addresses are then the current ones at each probe
            (interval and timeout stay those of the start).
        units: ``() -> [unit names]`` to probe (the inventory).
        leader: The leader's own name (always reachable).
    """

    def __init__(self, config: Any, units: Callable[[], Iterable[str]], leader: str) -> None:
        from reactorkit.api.context import as_config_source

        self._config, self.units, self.leader = as_config_source(config), units, leader
        config = self._config()
        self.interval_s = config.getfloat("cluster", "reachability_interval_s", fallback=DEFAULT_INTERVAL_S)
        self.timeout_s = config.getfloat("cluster", "reachability_timeout_s", fallback=DEFAULT_TIMEOUT_S)
        self._state: dict[str, dict[str, Any]] = {}
        # {unit: (reachable, last_seen_at as ISO-8601)}: formatted once per round, replaced whole (read unlocked)
        self._answers: dict[str, tuple[bool | None, str | None]] = {}
        self.generation = 0
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._client: Any = None

    @property
    def config(self) -> Any:
        """The leader's config as it is now, when built with ``() -> Config`` (the units' addresses)."""
        return self._config()

    def _http(self) -> Any:
        """One ``httpx.Client`` for every probe of this process (thread-safe). ``httpx.get`` builds a client, and
        with it a TLS context, per call: about 40 ms of CPU per unit and round, where a kept client takes 0.5 ms."""
        if self._client is None:
            import httpx

            with self._lock:
                if self._client is None:
                    # no kept-alive connections: each probe opens its own, as before (a unit's server closes
                    # idle ones long before the next round)
                    self._client = httpx.Client(timeout=self.timeout_s, follow_redirects=False,
                                                limits=httpx.Limits(max_keepalive_connections=0))
        return self._client

    def _probe(self, unit: str) -> tuple[bool, str | None]:
        from reactorkit.core.cluster import unit_url

        try:
            response = self._http().get(unit_url(unit, self.config) + "/unit_api/health")
            return response.status_code < 500, None if response.status_code < 500 else f"HTTP {response.status_code}"
        except Exception as exc:
            return False, f"{type(exc).__name__}: {exc}"

    def probe_all(self) -> None:
        """One round: every unit of the inventory (but the leader), concurrently."""
        targets = sorted(u for u in set(self.units()) if u != self.leader)
        if not targets:
            return
        with ThreadPoolExecutor(max_workers=min(16, len(targets))) as pool:
            answers = dict(zip(targets, pool.map(self._probe, targets)))
        now = time.time()
        with self._lock:
            for unit, (ok, error) in answers.items():
                entry = self._state.setdefault(unit, {"last_seen_at": None})
                entry.update(reachable=ok, checked_at=now, error=error)
                if ok:
                    entry["last_seen_at"] = now
            answers = {unit: (entry.get("reachable"), _iso(entry["last_seen_at"]) if entry.get("last_seen_at") else None)
                       for unit, entry in self._state.items()}
            if answers != self._answers:
                self._answers = answers
                self.generation += 1

    def _run(self) -> None:
        while True:
            try:
                self.probe_all()
            except Exception:  # a busy database or a bad address: try again next round
                pass
            if self._stop.wait(self.interval_s):
                return

    def start(self) -> "Reachability":
        """Start the probing thread (once)."""
        if self._thread is not None:  # started: no lock needed to know it
            return self
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="unit-reachability", daemon=True)
                self._thread.start()
        return self

    def status(self, unit: str) -> dict[str, Any]:
        """``{"reachable": bool | None, "last_seen_at": ISO-8601 | None}`` of ``unit``."""
        return self.statuses([unit])[0]

    def statuses(self, units: Iterable[str]) -> list[dict[str, Any]]:
        """:meth:`status` of each of ``units``, in order (one round's answers), new dicts."""
        self.start()
        answers = self._answers
        leader = None
        out = []
        for unit in units:
            if unit == self.leader:
                leader = leader or self.leader_status()
                out.append(dict(leader))
            else:
                reachable, seen = answers.get(unit, _UNKNOWN)
                out.append({"reachable": reachable, "last_seen_at": seen})
        return out

    def leader_status(self) -> dict[str, Any]:
        """The leader's :meth:`status`: reachable, seen now (its API is answering)."""
        return {"reachable": True, "last_seen_at": _iso(time.time())}
